-- Revocation and limits (as migrations/postgres/0004_revocation.sql). Times are Unix seconds.
-- A token's fingerprint (the first 12 hex digits of its SHA-256 digest) is derived from
-- token_hash when it is listed, not stored: nothing to keep in sync and no hex SQL per engine.

-- How many enrolments an enrolment token allows (NULL: no limit); `uses` already counts them.
ALTER TABLE enrol_tokens ADD COLUMN max_uses INTEGER CHECK (max_uses IS NULL OR max_uses > 0);
-- When an admin revoked the agent's key (NULL: the key works). Enrolling the machine again
-- issues a new key and clears it.
ALTER TABLE agents ADD COLUMN revoked_at INTEGER;
