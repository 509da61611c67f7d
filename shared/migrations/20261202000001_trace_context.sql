-- Issue 11, item 5: follow one request across functions. Every outbox row
-- and Slack effect remembers the trace context of the hop that wrote it
-- (shared::trace): the W3C `traceparent` (version 00: trace id + that hop's
-- span id + flags), its `tracestate`, and the Slack request's correlation
-- id. The relay publishes the event as the next hop of that trace; the
-- effect worker carries the effect out inside it. NULL for rows written
-- before this migration or outside any request (they start a trace of
-- their own when published or carried out).

ALTER TABLE outbox
    ADD COLUMN traceparent    text,
    ADD COLUMN tracestate     text,
    ADD COLUMN correlation_id text;

ALTER TABLE effects
    ADD COLUMN traceparent    text,
    ADD COLUMN tracestate     text,
    ADD COLUMN correlation_id text;

-- A pickup reminder is sent by a later ping tick, but it is the close's
-- doing: the tick sends it inside the trace of the hop that scheduled it
-- (the reminder function handling `run.closed`).
ALTER TABLE reminders
    ADD COLUMN traceparent    text,
    ADD COLUMN tracestate     text,
    ADD COLUMN correlation_id text;
