-- Revenue projections: one row per projection, one row per projected month.
CREATE TABLE revenue_projections (
    projection_id    text             PRIMARY KEY,
    business_model   text             NOT NULL,
    total_revenue    double precision NOT NULL,
    final_users      bigint           NOT NULL,
    final_paid_users bigint           NOT NULL,
    arpu             double precision NOT NULL,
    ltv              double precision,
    currency         text             NOT NULL,
    months_count     integer          NOT NULL,
    event_id         uuid             NOT NULL,
    projected_at     timestamptz      NOT NULL,
    source           text             NOT NULL,
    correlation_id   text,
    applied_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX revenue_projections_projected_at ON revenue_projections (projected_at);

CREATE TABLE revenue_projection_months (
    projection_id   text             NOT NULL
        REFERENCES revenue_projections (projection_id) ON DELETE CASCADE,
    month           integer          NOT NULL,
    users           bigint           NOT NULL,
    free_users      bigint           NOT NULL,
    paid_users      bigint           NOT NULL,
    revenue         double precision NOT NULL,
    revenue_by_tier jsonb            NOT NULL,
    PRIMARY KEY (projection_id, month)
);
