-- API keys and console sessions. A key is shown once when created; only its SHA-256 is kept,
-- found by its public prefix. A session is kept as the SHA-256 of its cookie value, tied to the
-- key that logged in (its role is that key's), and dies with the key or at expires_at.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE sessions (
    hash TEXT PRIMARY KEY,
    key_id BIGINT NOT NULL REFERENCES api_keys (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
