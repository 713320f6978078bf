-- API keys of the query API: only a salted scrypt hash of the secret is stored.
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    name        text        NOT NULL,
    scopes      text[]      NOT NULL,
    kdf         text        NOT NULL,
    salt        bytea       NOT NULL,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_active ON api_keys (created_at) WHERE revoked_at IS NULL;
