-- hatang schema, version 1 (PostgreSQL): the same tables, columns and indexes as
-- migrations/sqlite/0001_init.sql, so both stores answer alike.
-- Times are Unix seconds (BIGINT) on the collector's clock unless named agent_*, as in SQLite:
-- the figures compare them as numbers, and one representation keeps the two stores' code alike.
-- Secrets (tokens, agent keys) are stored only as SHA-256 digests (BYTEA).

-- The administrative tree. A unit absent from the latest import is retired, not deleted:
-- agents and history still refer to it.
CREATE TABLE units (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,
    parent_code TEXT,
    staff       BIGINT NOT NULL CHECK (staff >= 0),
    depth       BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX units_current ON units (retired_at, position);

-- Tokens that enrol machines into one unit with one role.
CREATE TABLE enrol_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  BYTEA NOT NULL UNIQUE,
    unit_code   TEXT NOT NULL REFERENCES units (code),
    role        TEXT NOT NULL CHECK (role IN ('workstation', 'server')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0
);

-- Tokens for people and scripts reading (viewer) or also changing (admin) things.
CREATE TABLE api_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  BYTEA NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

-- One row per machine; identity is the machine id, so re-enrolling reuses the row (the
-- UNIQUE constraint is also what makes two replicas enrolling one machine at once agree).
CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    machine_id      TEXT NOT NULL UNIQUE,
    unit_code       TEXT NOT NULL REFERENCES units (code),
    role            TEXT NOT NULL CHECK (role IN ('workstation', 'server')),
    hostname        TEXT NOT NULL,
    key_hash        BYTEA NOT NULL UNIQUE,
    enrolled_at     BIGINT NOT NULL,
    last_report_at  BIGINT,
    interval_secs   BIGINT,
    agent_version   TEXT,
    inventory       TEXT,
    sample          TEXT,
    probes          TEXT
);
CREATE INDEX agents_unit ON agents (unit_code);

-- Every accepted report, exactly once (report_id is the agent's idempotency key).
CREATE TABLE reports (
    report_id   TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    received_at BIGINT NOT NULL,
    agent_time  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX reports_agent ON reports (agent_id, received_at);
