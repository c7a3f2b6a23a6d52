-- Retention: notifications older than HERALD_RETENTION_DAYS are deleted in short batches, and
-- on PostgreSQL whole months are dropped at once. `notifications` becomes a table partitioned
-- by RANGE (created_at), one partition per calendar month (UTC), plus a DEFAULT partition so
-- an insert never fails. The monthly partitions themselves are created by Herald (for the
-- current and the next month) after every `migrate`, by the hourly retention and by
-- `herald retention`; rows that were here before this migration stay in the DEFAULT
-- partition until retention deletes them.
--
-- A primary key of a partitioned table must include the partition key, so it is
-- (id, created_at); ids still come from one sequence and stay unique. PostgreSQL 15 cannot
-- have an IDENTITY column on a partitioned table: the sequence is owned by the column and
-- continues from the old identity. Foreign keys to a partitioned table would need created_at
-- too, so inbox and deliveries no longer reference notifications: retention deletes their
-- rows itself.
ALTER TABLE inbox DROP CONSTRAINT IF EXISTS inbox_notification_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_notification_id_fkey;

CREATE TEMPORARY TABLE herald_last_notification_id ON COMMIT DROP AS
SELECT GREATEST(
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM notifications_id_seq),
    (SELECT COALESCE(MAX(id), 0) FROM notifications)
) AS last_id;

ALTER TABLE notifications RENAME TO notifications_unpartitioned;

CREATE TABLE notifications (
    id BIGINT NOT NULL,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT NOT NULL,
    priority TEXT NOT NULL,
    topic TEXT,
    collapse_key TEXT,
    publisher TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    send_at BIGINT,
    expires_at BIGINT,
    pending_audience TEXT,
    route_pending INTEGER NOT NULL DEFAULT 0,
    channels TEXT,
    content TEXT,
    template TEXT,
    offline_recipients TEXT
) PARTITION BY RANGE (created_at);
CREATE TABLE notifications_default PARTITION OF notifications DEFAULT;

INSERT INTO notifications (
    id, type, title, body, data, priority, topic, collapse_key, publisher, created_at, send_at,
    expires_at, pending_audience, route_pending, channels, content, template, offline_recipients
)
SELECT
    id, type, title, body, data, priority, topic, collapse_key, publisher, created_at, send_at,
    expires_at, pending_audience, route_pending, channels, content, template, offline_recipients
FROM notifications_unpartitioned;

DROP TABLE notifications_unpartitioned;

CREATE SEQUENCE notifications_id_seq AS BIGINT OWNED BY notifications.id;
SELECT setval('notifications_id_seq', GREATEST(last_id, 1), last_id > 0)
FROM herald_last_notification_id;
ALTER TABLE notifications ALTER COLUMN id SET DEFAULT nextval('notifications_id_seq');

ALTER TABLE notifications ADD CONSTRAINT notifications_pkey PRIMARY KEY (id, created_at);
CREATE INDEX notifications_due ON notifications (send_at) WHERE pending_audience IS NOT NULL;
CREATE INDEX notifications_collapse ON notifications (collapse_key) WHERE collapse_key IS NOT NULL;
CREATE INDEX notifications_routing ON notifications (id) WHERE route_pending = 1;
-- Retention finds what is old by these.
CREATE INDEX notifications_created ON notifications (created_at);
CREATE INDEX user_events_at ON user_events (at);
