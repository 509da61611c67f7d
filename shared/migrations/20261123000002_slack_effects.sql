-- Ledger of Slack side effects already performed for a run (the summary,
-- each DM, the final run-message update). Event delivery is at least once;
-- a handler consults this before posting, and records each effect right
-- after Slack accepted it, so a redelivered event sends only what is missing.
CREATE TABLE slack_effects (
    run_id  uuid        NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    -- e.g. 'summary', 'dm:U123', 'run_message:closed'
    effect  text        NOT NULL CHECK (effect <> ''),
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, effect)
);
