-- Model usage per model and UTC day; p95 latency from a log-bucket histogram (5 % steps).
CREATE TABLE model_usage_daily (
    day               date             NOT NULL,
    model             text             NOT NULL,
    provider          text             NOT NULL,
    requests          bigint           NOT NULL,
    successes         bigint           NOT NULL,
    failures          bigint           NOT NULL,
    cached            bigint           NOT NULL,
    input_tokens      bigint           NOT NULL,
    output_tokens     bigint           NOT NULL,
    total_tokens      bigint           NOT NULL,
    cost              double precision NOT NULL,
    latency_sum_ms    double precision NOT NULL,
    latency_min_ms    double precision NOT NULL,
    latency_max_ms    double precision NOT NULL,
    latency_avg_ms    double precision GENERATED ALWAYS AS
                          (CASE WHEN requests > 0 THEN latency_sum_ms / requests END) STORED,
    latency_p95_ms    double precision NOT NULL,
    latency_histogram jsonb            NOT NULL,
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (day, model)
);
CREATE INDEX model_usage_daily_model ON model_usage_daily (model, day);
