-- CoffeeBuddy schema (DESIGN §1, §3). The single source of the data model:
-- every function migrates to it at start. Rules that must hold under
-- concurrency (one open run per channel, one active order per person per
-- run) are constraints here, not only checks in code.
--
-- Slack ids (channel, user, team) are kept as text exactly as Slack sends
-- them. Times are timestamptz (UTC on the wire; channel time zones are only
-- for display and for reading "HH:MM" pickups).

-- A Slack channel CoffeeBuddy has seen, with its configuration.
-- Operators' contract: `runs.channel_id` references this row.
CREATE TABLE channels (
    channel_id              text PRIMARY KEY CHECK (channel_id <> ''),
    team_id                 text,
    enabled                 boolean     NOT NULL DEFAULT true,
    reminders_enabled       boolean     NOT NULL DEFAULT true,
    reminder_offset_minutes integer     NOT NULL DEFAULT 5
        CHECK (reminder_offset_minutes BETWEEN 0 AND 60),
    retention_days          integer     NOT NULL DEFAULT 90
        CHECK (retention_days BETWEEN 1 AND 3650),
    -- IANA name, validated by the application (chrono-tz) before writing.
    timezone                text        NOT NULL DEFAULT 'UTC' CHECK (timezone <> ''),
    -- When the daily retention purge last ran for this channel.
    retention_checked_at    timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Channel admins named through /coffee-admin (workspace admins and owners
-- are admins everywhere and are not listed here).
CREATE TABLE channel_admins (
    channel_id text        NOT NULL REFERENCES channels (channel_id) ON DELETE CASCADE,
    user_id    text        NOT NULL CHECK (user_id <> ''),
    added_by   text        NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

-- Fairness ledger: how often each person has been the runner in a channel.
CREATE TABLE channel_user_stats (
    channel_id        text        NOT NULL REFERENCES channels (channel_id) ON DELETE CASCADE,
    user_id           text        NOT NULL CHECK (user_id <> ''),
    runs_served_count integer     NOT NULL DEFAULT 0 CHECK (runs_served_count >= 0),
    last_served_at    timestamptz,
    PRIMARY KEY (channel_id, user_id)
);

-- A person's preferences, across channels (DESIGN §4: "a saved usual belongs
-- to the person").
CREATE TABLE user_preferences (
    user_id       text        PRIMARY KEY CHECK (user_id <> ''),
    usual_order   text        CHECK (char_length(usual_order) BETWEEN 1 AND 150),
    -- The last answer to "Happy to be the runner again", to pre-fill the modal.
    runner_opt_in boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A coffee run. `open` takes orders; `closing` is the short window between
-- the Close click and the runner pick; `closed` has a runner; `cancelled`
-- closed with no orders.
CREATE TABLE runs (
    run_id             uuid        PRIMARY KEY,
    channel_id         text        NOT NULL REFERENCES channels (channel_id) ON DELETE CASCADE,
    team_id            text,
    initiator_id       text        NOT NULL CHECK (initiator_id <> ''),
    status             text        NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'closing', 'closed', 'cancelled')),
    pickup_at          timestamptz,
    note               text        CHECK (char_length(note) <= 140),
    -- The `ts` of the run message in the channel, once posted.
    message_ts         text,
    runner_id          text,
    close_requested_by text,
    close_requested_at timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    CONSTRAINT runs_closed_has_runner CHECK (status <> 'closed' OR (runner_id IS NOT NULL AND closed_at IS NOT NULL)),
    CONSTRAINT runs_cancelled_has_no_runner CHECK (status <> 'cancelled' OR (runner_id IS NULL AND closed_at IS NOT NULL))
);

-- One run in progress per channel, enforced under concurrency.
CREATE UNIQUE INDEX runs_one_open_per_channel ON runs (channel_id) WHERE status IN ('open', 'closing');
-- "Previous runner" lookups and retention scans.
CREATE INDEX runs_channel_closed_at ON runs (channel_id, closed_at DESC);
CREATE INDEX runs_closed_at ON runs (closed_at) WHERE closed_at IS NOT NULL;

-- An order. Editing replaces the text of the one active row; a withdrawn
-- order stays as history with active = false.
CREATE TABLE orders (
    order_id      uuid        PRIMARY KEY,
    run_id        uuid        NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    user_id       text        NOT NULL CHECK (user_id <> ''),
    order_text    text        NOT NULL CHECK (char_length(order_text) BETWEEN 1 AND 150),
    -- "Happy to be the runner again", as ticked for this run.
    runner_opt_in boolean     NOT NULL DEFAULT false,
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One active order per person per run, enforced under concurrency.
CREATE UNIQUE INDEX orders_one_active_per_user ON orders (run_id, user_id) WHERE active;

-- The runner's pickup reminder for a closed run (at most one per run).
CREATE TABLE reminders (
    run_id     uuid        PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    channel_id text        NOT NULL,
    runner_id  text        NOT NULL,
    due_at     timestamptz NOT NULL,
    status     text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'skipped')),
    sent_at    timestamptz,
    attempts   integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reminders_sent_has_time CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);

CREATE INDEX reminders_pending_due ON reminders (due_at) WHERE status = 'pending';

-- Every configuration change, who made it and what it was before and after.
-- Operators' contract. Not tied to `channels` by a foreign key on purpose:
-- the audit trail outlives whatever it describes.
CREATE TABLE audit_log (
    audit_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id text        NOT NULL,
    -- A Slack user id, an operator's JWT `sub`, or `system` (retention).
    actor      text        NOT NULL CHECK (actor <> ''),
    action     text        NOT NULL CHECK (action <> ''),
    before     jsonb,
    after      jsonb,
    at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_channel_at ON audit_log (channel_id, at DESC, audit_id DESC);

-- Admin actions waiting for confirmation (`reset` then `reset confirm` by the
-- same person within five minutes).
CREATE TABLE pending_confirmations (
    channel_id   text        NOT NULL,
    action       text        NOT NULL,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, action)
);

-- Transactional outbox: an event is written in the same transaction as the
-- state change that causes it, published to Kafka right after commit, and
-- republished by the sweep if that failed. Nothing is lost while Kafka is down.
CREATE TABLE outbox (
    event_id      uuid        PRIMARY KEY,
    event_type    text        NOT NULL,
    source        text        NOT NULL,
    subject       text,
    -- The Kafka key: the channel id, so a channel's events stay in order.
    partition_key text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error    text
);

CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

-- Idempotency ledger: which consumer has handled which event id. Delivery is
-- at least once; a handler records the id in the transaction that applies
-- the event, and a redelivery finds it here.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
