-- Herald's initial schema on PostgreSQL. Times are integer milliseconds since the epoch.
CREATE TABLE notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    pending_audience TEXT
);
CREATE INDEX notifications_due ON notifications (send_at) WHERE pending_audience IS NOT NULL;

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE inbox (
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    seen_at BIGINT,
    read_at BIGINT,
    archived_at BIGINT,
    deleted_at BIGINT,
    PRIMARY KEY (user_id, seq)
);
CREATE UNIQUE INDEX inbox_user_notification ON inbox (user_id, notification_id);
CREATE INDEX inbox_unread ON inbox (user_id)
    WHERE read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL;

CREATE TABLE user_events (
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    action TEXT NOT NULL,
    notification_id BIGINT,
    up_to BIGINT,
    at BIGINT NOT NULL,
    unread INTEGER NOT NULL,
    unseen INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
);

CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE topic_subscriptions (
    topic TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, user_id)
);
CREATE INDEX topic_subscriptions_user ON topic_subscriptions (user_id, topic);

CREATE TABLE idempotency_keys (
    publisher TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    notification_id BIGINT,
    recipients INTEGER,
    scheduled INTEGER,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (publisher, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX notifications_collapse ON notifications (collapse_key) WHERE collapse_key IS NOT NULL;
