-- Web UI sessions (as migrations/sqlite/0005_sessions.sql). Times are Unix seconds.
-- The browser holds a random 256-bit session id; only its SHA-256 digest is stored, next to the
-- digest of the API token that signed in. Every request joins the session to api_tokens, so
-- revoking (or the expiry of) that token ends its sessions at once, on every replica.
CREATE TABLE sessions (
    session_hash BYTEA PRIMARY KEY,
    token_hash   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
