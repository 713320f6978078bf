-- Event ids applied by projections whose effect is not idempotent per event (counters such
-- as model-usage), written in the same transaction as the change: an event re-published at
-- another offset is recognised and counted once.
CREATE TABLE projection_applied_events (
    projection  text        NOT NULL,
    event_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (projection, event_id)
);
CREATE INDEX projection_applied_events_occurred ON projection_applied_events (occurred_at);
