-- Consumer-lag history: one row per consumer group and collection (every 10 s by default),
-- pruned by age (operations.lag.history), so its size is bounded by groups x retention.
CREATE TABLE lag_history (
    group_id        text             NOT NULL,
    observed_at     timestamptz      NOT NULL,
    status          text             NOT NULL,
    max_lag         bigint           NOT NULL,
    max_lag_seconds double precision NOT NULL,
    total_lag       bigint           NOT NULL,
    PRIMARY KEY (group_id, observed_at)
);
CREATE INDEX lag_history_observed_at ON lag_history (observed_at);

-- Consumer groups rebuilding a read model through a replay: the lag dashboards show them as
-- replaying instead of raising an alarm. The replay tooling inserts a row when it starts and
-- deletes it (or sets expires_at) when it is done.
CREATE TABLE replaying_groups (
    group_id   text        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    reason     text
);
