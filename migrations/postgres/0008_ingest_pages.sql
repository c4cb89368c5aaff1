-- Every report inserted into reports_agent at a random place, one more index page dirtied and
-- logged per report, for one reader: the per-agent report count, now a column kept with the
-- agent's row (which every report rewrites anyway). The inventory stays in the agents row here:
-- PostgreSQL keeps a value that large out of line (TOAST) and an UPDATE that leaves it as it was
-- does not copy it.
ALTER TABLE agents ADD COLUMN reports_stored BIGINT NOT NULL DEFAULT 0;
UPDATE agents a SET reports_stored = c.n
    FROM (SELECT agent_id, COUNT(*) AS n FROM reports GROUP BY agent_id) c
    WHERE a.id = c.agent_id;
DROP INDEX reports_agent;
