-- Herald's initial schema on SQLite. Times are integer milliseconds since the epoch.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT NOT NULL,
    priority TEXT NOT NULL,
    topic TEXT,
    collapse_key TEXT,
    publisher TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    send_at INTEGER,
    expires_at INTEGER,
    pending_audience TEXT
);
CREATE INDEX notifications_due ON notifications (send_at) WHERE pending_audience IS NOT NULL;

CREATE TABLE users (
    user_id TEXT NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE inbox (
    user_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    seen_at INTEGER,
    read_at INTEGER,
    archived_at INTEGER,
    deleted_at INTEGER,
    PRIMARY KEY (user_id, seq)
);
CREATE UNIQUE INDEX inbox_user_notification ON inbox (user_id, notification_id);
CREATE INDEX inbox_unread ON inbox (user_id)
    WHERE read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL;

CREATE TABLE user_events (
    user_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    notification_id INTEGER,
    up_to INTEGER,
    at INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    unseen INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
);

CREATE TABLE topics (
    name TEXT NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE topic_subscriptions (
    topic TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, user_id)
);
CREATE INDEX topic_subscriptions_user ON topic_subscriptions (user_id, topic);

CREATE TABLE idempotency_keys (
    publisher TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    notification_id INTEGER,
    recipients INTEGER,
    scheduled INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (publisher, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX notifications_collapse ON notifications (collapse_key) WHERE collapse_key IS NOT NULL;
