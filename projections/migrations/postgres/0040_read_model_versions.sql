-- Blue/green read models (fairstream replay): which PostgreSQL schema serves each projection.
-- A projection without a row is served by the live schema itself. The switch is one UPDATE.
CREATE TABLE read_model_versions (
    projection      text        PRIMARY KEY,
    active_schema   text        NOT NULL,
    version         integer     NOT NULL,
    previous_schema text,
    switched_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per rebuild: what it reads, where it writes, how far it must go; `--resume` reads it.
CREATE TABLE replay_runs (
    projection    text        NOT NULL,
    version       integer     NOT NULL,
    target_schema text        NOT NULL,
    group_id      text        NOT NULL,
    status        text        NOT NULL,  -- running | switched | abandoned
    plan          jsonb       NOT NULL,  -- [{topic, partition, start, end}]
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (projection, version)
);
