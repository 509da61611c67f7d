-- Issue 9 (DESIGN §1.9–§1.14): auto-close, runner follow-through, "why
-- you", stats, and the Events API's retry ledger.

-- §1.10: a run with a pickup time closes itself this many minutes before
-- pickup. NULL = off (the default).
ALTER TABLE channels
    ADD COLUMN auto_close_minutes integer
        CHECK (auto_close_minutes BETWEEN 1 AND 60);

ALTER TABLE runs
    -- §1.10: when this run closes by itself, decided once when it starts
    -- (`domain::auto_close::auto_close_at`), so a later change of the
    -- channel's setting never moves a time the run message already shows.
    -- NULL = only closes by hand.
    ADD COLUMN auto_close_at timestamptz,
    -- §1.9: the runner's first "Picked up" and "Delivered" presses. Only
    -- the first press of each is recorded (later ones change nothing).
    ADD COLUMN picked_up_at  timestamptz,
    ADD COLUMN delivered_at  timestamptz,
    -- §1.12: the "why you" line, rendered by the same pure function that
    -- picked the runner (only our own ids and numbers, never user text).
    ADD COLUMN runner_why    text,
    ADD CONSTRAINT runs_delivered_after_close CHECK (delivered_at IS NULL OR closed_at IS NOT NULL),
    ADD CONSTRAINT runs_picked_up_after_close CHECK (picked_up_at IS NULL OR closed_at IS NOT NULL);

-- The tick's question: which open runs are due to close by themselves.
CREATE INDEX runs_auto_close_due ON runs (auto_close_at)
    WHERE status = 'open' AND auto_close_at IS NOT NULL;

-- §1.14 App Home: the runs a person served (per channel), and the channels
-- where they ordered.
CREATE INDEX runs_runner_closed ON runs (runner_id) WHERE status = 'closed';
CREATE INDEX orders_user_active ON orders (user_id) WHERE active;

-- §1.14: Events API deliveries already received, by Slack's `event_id`.
-- Slack retries an event it thinks we missed (`X-Slack-Retry-Num`); the
-- first delivery inserts the row in the transaction that acts on it, a
-- retry finds it and changes nothing. Trimmed after a week by retention.
CREATE TABLE slack_event_receipts (
    event_id    text        PRIMARY KEY CHECK (event_id <> ''),
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX slack_event_receipts_received_at ON slack_event_receipts (received_at);
