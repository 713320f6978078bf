-- Document-shaped read models when FAIRSTREAM_DOCUMENT_STORE=postgres (jsonb per collection);
-- per-partition positions of the last change applied to each document in `positions`.
CREATE TABLE IF NOT EXISTS doc_campaigns (
    id text PRIMARY KEY, doc jsonb NOT NULL DEFAULT '{}'::jsonb,
    positions jsonb NOT NULL DEFAULT '{}'::jsonb, updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS doc_opportunities (
    id text PRIMARY KEY, doc jsonb NOT NULL DEFAULT '{}'::jsonb,
    positions jsonb NOT NULL DEFAULT '{}'::jsonb, updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS doc_agent_tasks (
    id text PRIMARY KEY, doc jsonb NOT NULL DEFAULT '{}'::jsonb,
    positions jsonb NOT NULL DEFAULT '{}'::jsonb, updated_at timestamptz NOT NULL DEFAULT now()
);
