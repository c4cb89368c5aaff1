-- The inventory change log outlives the reports it names. Report retention (collector/src/
-- retention.rs) deletes reports past `report_retention_days` and leaves the change log alone, but
-- this key refused to delete a report any change pointed at, so once one such report was old
-- enough every retention batch failed and the reports table grew without bound. A change's
-- report_id stays what it was: the id of the report that brought the change, which the agent's
-- spool and the collector's logs also name, whether or not the report is still stored.
ALTER TABLE inventory_changes DROP CONSTRAINT IF EXISTS inventory_changes_report_id_fkey;
