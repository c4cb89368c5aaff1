-- A report row is written only by the ingest statement that also updates its agent's row, and
-- that statement is undone (hatang_batch_check, migration 0009) unless every agent it names was
-- updated; the careful path inserts only for agents it has locked. Agents are never deleted.
-- The foreign key therefore guarded nothing, while its check ran a trigger and took a KEY SHARE
-- lock on the agent's new row version for every report: about a seventh of PostgreSQL's CPU per
-- report at full ingest load (docs/benchmarks.md). Whatever deletes agents one day must delete
-- their reports first. SQLite keeps the key: there the check is one index lookup.
ALTER TABLE reports DROP CONSTRAINT IF EXISTS reports_agent_id_fkey;
