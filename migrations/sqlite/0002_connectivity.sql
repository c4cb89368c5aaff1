-- Connectivity evidence per agent, derived from its reports at ingest so figures never parse
-- stored JSON. Times are Unix seconds; NULL means "no evidence yet".

-- 1 when the latest inventory showed an up, non-loopback interface carrying the default route.
ALTER TABLE agents ADD COLUMN lan_up INTEGER;
-- When a probe of each class last succeeded (agent time, never later than receipt).
ALTER TABLE agents ADD COLUMN internet_ok_at INTEGER;
ALTER TABLE agents ADD COLUMN gov_wan_ok_at INTEGER;
ALTER TABLE agents ADD COLUMN datacentre_ok_at INTEGER;
-- The latest speed test, in bits per second.
ALTER TABLE agents ADD COLUMN speed_at INTEGER;
ALTER TABLE agents ADD COLUMN download_bps REAL;
ALTER TABLE agents ADD COLUMN upload_bps REAL;
