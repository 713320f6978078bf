-- Current contribution of each (content, model version) to the daily bias roll-up.
CREATE TABLE bias_daily_contributions (
    content_id    text             NOT NULL,
    model_version text             NOT NULL,
    day           date             NOT NULL,
    overall_score double precision NOT NULL,
    level         text             NOT NULL,
    latency_ms    double precision NOT NULL,
    scored_at     timestamptz      NOT NULL,
    PRIMARY KEY (content_id, model_version)
);
CREATE INDEX bias_daily_contributions_day
    ON bias_daily_contributions (day, model_version, overall_score);

-- Daily bias roll-up per model version, maintained incrementally from the contributions.
CREATE TABLE bias_daily (
    day            date             NOT NULL,
    model_version  text             NOT NULL,
    scored_count   bigint           NOT NULL DEFAULT 0,
    score_sum      double precision NOT NULL DEFAULT 0,
    score_avg      double precision GENERATED ALWAYS AS
                       (CASE WHEN scored_count > 0 THEN score_sum / scored_count END) STORED,
    score_min      double precision,
    score_max      double precision,
    level_low      bigint           NOT NULL DEFAULT 0,
    level_medium   bigint           NOT NULL DEFAULT 0,
    level_high     bigint           NOT NULL DEFAULT 0,
    level_critical bigint           NOT NULL DEFAULT 0,
    bucket_lt_02   bigint           NOT NULL DEFAULT 0,
    bucket_lt_04   bigint           NOT NULL DEFAULT 0,
    bucket_lt_06   bigint           NOT NULL DEFAULT 0,
    bucket_lt_08   bigint           NOT NULL DEFAULT 0,
    bucket_ge_08   bigint           NOT NULL DEFAULT 0,
    latency_sum_ms double precision NOT NULL DEFAULT 0,
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (day, model_version)
);
