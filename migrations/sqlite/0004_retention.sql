-- Retention: notifications older than HERALD_RETENTION_DAYS are deleted in short batches,
-- with their inbox rows, deliveries, attempts, state events and idempotency keys. (On
-- PostgreSQL the table is also partitioned by month; SQLite only needs the indexes that find
-- what is old.)
CREATE INDEX notifications_created ON notifications (created_at);
CREATE INDEX user_events_at ON user_events (at);
