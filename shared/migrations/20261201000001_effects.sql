-- Slack effects as durable, claimed work (DESIGN §5).
--
-- A Slack call is an *effect* of a state change: it is written here in the
-- same transaction as the change (like the outbox), then carried out by the
-- effect worker, which claims it with a lease, calls Slack holding no
-- database connection, lock or transaction, and records the outcome in a
-- short transaction of its own.
--
-- Effects are ordered per *lane*: the Slack conversation they write into
-- (a channel id, or `dm:<user>` for a person's DM, `eph:<channel>:<user>`
-- for private answers, `home:<user>` for the App Home). Only the oldest unfinished effect of a lane is
-- worked on, so one conversation's messages keep their order, while lanes
-- run in parallel: one channel's trouble never delays another's.
CREATE TABLE effects (
    effect_id          uuid        PRIMARY KEY,
    -- Creation order within a lane.
    seq                bigint      GENERATED ALWAYS AS IDENTITY,
    lane               text        NOT NULL CHECK (lane <> ''),
    -- The channel the effect is about (for operators); none for a person's
    -- App Home.
    channel_id         text        CHECK (channel_id <> ''),
    run_id             uuid        REFERENCES runs (run_id) ON DELETE CASCADE,
    -- `effects::EffectKind` in the code; the JSON below is its payload.
    kind               text        NOT NULL CHECK (kind <> ''),
    payload            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- `pending`: waiting (maybe backing off until `due_at`); `in_flight`:
    -- claimed until `lease_until` (an expired lease means the worker died
    -- mid-call: the outcome is in doubt and is reconciled before any
    -- resend); `done`; `failed` (Slack refused for good, settled);
    -- `unknown` (in doubt and could not be reconciled: never resent);
    -- `dead` (gave up after the deadline or too many attempts, parked in
    -- `dead_letters`).
    status             text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_flight', 'done', 'failed', 'unknown', 'dead')),
    due_at             timestamptz NOT NULL DEFAULT now(),
    lease_until        timestamptz,
    attempts           integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the current (or last) attempt began: what reconciliation reads
    -- Slack's history back from.
    attempt_started_at timestamptz,
    -- Set when an attempt's outcome is in doubt (timeout after sending, 5xx):
    -- the next claim reconciles instead of sending.
    in_doubt           boolean     NOT NULL DEFAULT false,
    -- What earlier attempts achieved (e.g. the `ts` of each page posted), so
    -- a retry continues where the last one stopped.
    progress           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    last_error         text,
    deadline_at        timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    CONSTRAINT effects_in_flight_has_lease CHECK (status <> 'in_flight' OR lease_until IS NOT NULL)
);

-- The worker's claim: the head of every lane among unfinished effects.
CREATE INDEX effects_unfinished_lane ON effects (lane, seq) WHERE status IN ('pending', 'in_flight');
-- At most one pending refresh of the same message: it renders the state at
-- send time, so one is enough however many changes queued it.
CREATE UNIQUE INDEX effects_one_pending_refresh ON effects (run_id, kind)
    WHERE status = 'pending' AND kind = 'update_run_message';
-- Repair and operators: a run's effects.
CREATE INDEX effects_run ON effects (run_id);
CREATE INDEX effects_finished ON effects (finished_at) WHERE finished_at IS NOT NULL;

-- Where an event or an effect that can never succeed is parked (DESIGN §5),
-- for metrics, logs and the operators' API. `POST /dead-letters` (the
-- KafkaSources' deadLetterSink) lands here too.
CREATE TABLE dead_letters (
    dead_letter_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `effect`, `outbox` or `sink` (a Knative dead-letter delivery).
    source         text        NOT NULL CHECK (source IN ('effect', 'outbox', 'sink')),
    -- The effect id, outbox event id or CloudEvent id.
    ref_id         text        NOT NULL,
    -- The effect kind or the event type.
    kind           text        NOT NULL,
    channel_id     text,
    payload        jsonb       NOT NULL,
    error          text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, ref_id)
);

CREATE INDEX dead_letters_created_at ON dead_letters (created_at DESC);

-- Slack `response_url`s, kept only by the function that answers with them
-- and only for their 30-minute life: a credential to post into the
-- conversation, so it never travels in events.
CREATE TABLE slack_responses (
    request_id   uuid        PRIMARY KEY,
    response_url text        NOT NULL CHECK (response_url <> ''),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX slack_responses_expires_at ON slack_responses (expires_at);

-- Per-event retry pacing for the outbox relay: a failed event waits for its
-- own backoff without holding back other channels' events; later events of
-- the same channel wait behind it (order within a channel is kept).
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
CREATE INDEX outbox_unpublished_key ON outbox (partition_key, created_at) WHERE published_at IS NULL;
