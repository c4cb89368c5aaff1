-- hatang schema, version 1 (SQLite).
-- Times are Unix seconds (INTEGER) on the collector's clock unless named agent_*.
-- Secrets (tokens, agent keys) are stored only as SHA-256 digests.

-- The administrative tree. A unit absent from the latest import is retired, not deleted:
-- agents and history still refer to it.
CREATE TABLE units (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,
    parent_code TEXT,
    staff       INTEGER NOT NULL CHECK (staff >= 0),
    depth       INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    imported_at INTEGER NOT NULL,
    retired_at  INTEGER
);
CREATE INDEX units_current ON units (retired_at, position);

-- Tokens that enrol machines into one unit with one role.
CREATE TABLE enrol_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    unit_code   TEXT NOT NULL REFERENCES units (code),
    role        TEXT NOT NULL CHECK (role IN ('workstation', 'server')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0
);

-- Tokens for people and scripts reading (viewer) or also changing (admin) things.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

-- One row per machine; identity is the machine id, so re-enrolling reuses the row.
CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    machine_id      TEXT NOT NULL UNIQUE,
    unit_code       TEXT NOT NULL REFERENCES units (code),
    role            TEXT NOT NULL CHECK (role IN ('workstation', 'server')),
    hostname        TEXT NOT NULL,
    key_hash        BLOB NOT NULL UNIQUE,
    enrolled_at     INTEGER NOT NULL,
    last_report_at  INTEGER,
    interval_secs   INTEGER,
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
    received_at INTEGER NOT NULL,
    agent_time  INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX reports_agent ON reports (agent_id, received_at);
