-- The inventory change log outlives the reports it names. Report retention (collector/src/
-- retention.rs) deletes reports past `report_retention_days` and leaves the change log alone, but
-- the key on report_id refused to delete a report any change pointed at, so once one such report
-- was old enough every retention batch failed and the reports table grew without bound. A
-- change's report_id stays what it was: the id of the report that brought the change, which the
-- agent's spool and the collector's logs also name, whether or not the report is still stored.
--
-- SQLite cannot drop a foreign key, so the table is made again without it, ids kept (they are
-- the log's order and its paging cursor).
CREATE TABLE inventory_changes_new (
    id          INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    report_id   TEXT NOT NULL,
    at          INTEGER NOT NULL,
    component   TEXT NOT NULL,
    key         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
    before      TEXT,
    after       TEXT
);
INSERT INTO inventory_changes_new (id, agent_id, report_id, at, component, key, kind, before, after)
    SELECT id, agent_id, report_id, at, component, key, kind, before, after FROM inventory_changes;
DROP TABLE inventory_changes;
ALTER TABLE inventory_changes_new RENAME TO inventory_changes;
CREATE INDEX inventory_changes_agent ON inventory_changes (agent_id, id);
