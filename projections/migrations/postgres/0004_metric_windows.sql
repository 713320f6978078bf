-- Closed metric windows, one row per window key (the latest emission wins).
CREATE TABLE metric_windows (
    window_key     text             PRIMARY KEY,
    family         text             NOT NULL,
    window_kind    text             NOT NULL,
    window_start   timestamptz      NOT NULL,
    window_end     timestamptz      NOT NULL,
    group_by       text             NOT NULL,
    group_value    text             NOT NULL,
    count          bigint           NOT NULL,
    score_sum      double precision NOT NULL,
    score_avg      double precision,
    score_max      double precision,
    score_buckets  bigint[]         NOT NULL,
    latency_avg_ms double precision,
    latency_p95_ms double precision,
    tokens         bigint           NOT NULL,
    cost           double precision NOT NULL,
    error_count    bigint           NOT NULL,
    alert_counts   jsonb            NOT NULL,
    late_count     bigint           NOT NULL,
    event_id       uuid             NOT NULL,
    closed_at      timestamptz      NOT NULL,
    emitted_count  integer          NOT NULL DEFAULT 1,
    source         text             NOT NULL,
    applied_at     timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX metric_windows_family ON metric_windows (family, window_kind, window_start);
CREATE INDEX metric_windows_group ON metric_windows (group_by, group_value, window_start);
