-- When each event id entered the ledger, so the ledger can be pruned by age: a re-emitted
-- event arrives within minutes of the first, while the event's own time may be years old.
ALTER TABLE projection_applied_events
    ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX projection_applied_events_recorded ON projection_applied_events (projection, recorded_at);
