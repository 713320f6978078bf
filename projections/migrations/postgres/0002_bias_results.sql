-- Bias results per content and model version; raw text is never stored here.
CREATE TABLE bias_results (
    content_id     text             NOT NULL,
    model_version  text             NOT NULL,
    model_name     text             NOT NULL,
    event_id       uuid             NOT NULL,
    overall_score  double precision NOT NULL,
    confidence     double precision NOT NULL,
    level          text             NOT NULL,
    dimensions     jsonb            NOT NULL,
    evidence       jsonb            NOT NULL,
    content_hash   text             NOT NULL,
    text_length    integer          NOT NULL,
    word_count     integer          NOT NULL,
    language       text             NOT NULL,
    flags          text[]           NOT NULL,
    latency_ms     double precision NOT NULL,
    content_type   text,
    campaign_id    text,
    source         text             NOT NULL,
    correlation_id text,
    scored_at      timestamptz      NOT NULL,
    applied_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (content_id, model_version)
);
CREATE INDEX bias_results_scored_at ON bias_results (scored_at);
CREATE INDEX bias_results_level ON bias_results (level);

-- Alert history per content.
CREATE TABLE bias_alerts (
    event_id               uuid             PRIMARY KEY,
    content_id             text             NOT NULL,
    level                  text             NOT NULL,
    overall_score          double precision NOT NULL,
    confidence             double precision NOT NULL,
    reason                 text             NOT NULL,
    dimensions             text[]           NOT NULL,
    model_version          text             NOT NULL,
    escalate_after_seconds integer          NOT NULL,
    raised_at              timestamptz      NOT NULL
);
CREATE INDEX bias_alerts_content ON bias_alerts (content_id, raised_at);
