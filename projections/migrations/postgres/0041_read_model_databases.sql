-- Blue/green document read models (fairstream replay with the MongoDB document store): which
-- MongoDB database serves each rebuilt document projection. PostgreSQL rows leave both NULL
-- (their `active_schema` serves them); document rows keep `active_schema` at the live schema.
ALTER TABLE read_model_versions
    ADD COLUMN active_database   text,
    ADD COLUMN previous_database text;

-- The database a document rebuild writes into (NULL for PostgreSQL rebuilds).
ALTER TABLE replay_runs ADD COLUMN target_database text;
