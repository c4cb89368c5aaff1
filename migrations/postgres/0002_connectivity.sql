-- Connectivity evidence per agent, derived from its reports at ingest so figures never parse
-- stored JSON (as migrations/sqlite/0002_connectivity.sql). Times are Unix seconds; NULL means
-- "no evidence yet".

-- True when the latest inventory showed an up, non-loopback interface carrying the default route.
ALTER TABLE agents ADD COLUMN lan_up BOOLEAN;
-- When a probe of each class last succeeded (agent time, never later than receipt).
ALTER TABLE agents ADD COLUMN internet_ok_at BIGINT;
ALTER TABLE agents ADD COLUMN gov_wan_ok_at BIGINT;
ALTER TABLE agents ADD COLUMN datacentre_ok_at BIGINT;
-- The latest speed test, in bits per second.
ALTER TABLE agents ADD COLUMN speed_at BIGINT;
ALTER TABLE agents ADD COLUMN download_bps DOUBLE PRECISION;
ALTER TABLE agents ADD COLUMN upload_bps DOUBLE PRECISION;
