-- The agent's spool as its latest report told it (report field `spool`): reports waiting to be
-- sent when the report was made, and reports dropped since the agent was installed. NULL until
-- a report carries the figures. Kept per agent so the figures can add them up per unit.
ALTER TABLE agents ADD COLUMN spool_waiting BIGINT;
ALTER TABLE agents ADD COLUMN spool_dropped BIGINT;
