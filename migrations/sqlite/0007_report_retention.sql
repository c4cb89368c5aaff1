-- Reports older than the retention period are deleted by the time they arrived.
CREATE INDEX reports_received ON reports (received_at);
