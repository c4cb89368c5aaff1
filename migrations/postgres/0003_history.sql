-- History (PostgreSQL; the same tables as migrations/sqlite/0003_history.sql): the inventory
-- change log of every agent and daily snapshots of the figures.
-- Nothing here is ever updated or rewritten: a past day's figures stay as they were computed,
-- whatever unit tree is imported later.

-- One row per difference between an agent's stored inventory and the one a report brought
-- (collector/src/changes.rs says what is compared). Written in the transaction that stores the
-- report, so a duplicate report (not stored) adds nothing, and an agent's first inventory (no
-- earlier one to compare with) is not a change. `id` orders the log: newest is highest.
CREATE TABLE inventory_changes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    report_id   TEXT NOT NULL REFERENCES reports (report_id),
    at          BIGINT NOT NULL,
    component   TEXT NOT NULL,
    key         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
    before      TEXT,
    after       TEXT
);
CREATE INDEX inventory_changes_agent ON inventory_changes (agent_id, id);

-- The days a snapshot was taken. Claiming the date here first (INSERT … ON CONFLICT DO NOTHING)
-- is what makes a snapshot whole: of two replicas writing one date, the second finds it claimed
-- and writes nothing, rather than adding rows computed a moment later to the first one's.
CREATE TABLE figure_snapshot_dates (
    date        TEXT PRIMARY KEY,                   -- 'YYYY-MM-DD' in the collector's utc_offset
    taken_at    BIGINT NOT NULL                     -- Unix seconds the figures were computed at
);

-- The figures of one day: one row per level (scope 'level', code = the level's name) and one per
-- unit of the tree of that day (scope 'unit', code = the unit's code). `position` keeps the order
-- the figures had (levels from the root down, units in file order).
-- lan, broadband, internet, gov_wan, datacentre: on a unit row 1 or 0 (the unit has it); on a
-- level row the number of the level's units with staff > 0 that have it. `units` is, on a level
-- row, the number of its units with staff > 0 (the ratios are taken over them); on a unit row 1
-- when its staff > 0 (it counts in its level's ratios), else 0.
CREATE TABLE figure_snapshots (
    date                TEXT NOT NULL REFERENCES figure_snapshot_dates (date),
    scope               TEXT NOT NULL CHECK (scope IN ('level', 'unit')),
    code                TEXT NOT NULL,
    position            BIGINT NOT NULL,
    level               TEXT NOT NULL,
    name                TEXT NOT NULL,
    parent_code         TEXT,
    units               BIGINT NOT NULL,
    staff               BIGINT NOT NULL,
    equipped_staff      BIGINT NOT NULL,
    active_workstations BIGINT,                     -- unit rows only
    servers             BIGINT,                     -- unit rows only
    equipment_ratio     DOUBLE PRECISION,           -- NULL without staff
    target_ratio        DOUBLE PRECISION,           -- the target configured that day (level rows)
    lan                 BIGINT NOT NULL,
    broadband           BIGINT NOT NULL,
    internet            BIGINT NOT NULL,
    gov_wan             BIGINT NOT NULL,
    datacentre          BIGINT NOT NULL,
    download_bps        DOUBLE PRECISION,           -- unit rows: best latest speed test, bits per second
    PRIMARY KEY (date, scope, code)
);
CREATE INDEX figure_snapshots_level ON figure_snapshots (scope, level, date);
