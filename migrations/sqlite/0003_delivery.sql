-- Delivery beyond the browser: preferences, templates, channel targets, deliveries.

-- A notification waits for routing (route_pending = 1) until a worker has planned its
-- deliveries; channels, content and template say what the publisher asked for, and
-- offline_recipients who receive no inbox item (in-app switched off) but may get the rest.
ALTER TABLE notifications ADD COLUMN route_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN channels TEXT;
ALTER TABLE notifications ADD COLUMN content TEXT;
ALTER TABLE notifications ADD COLUMN template TEXT;
ALTER TABLE notifications ADD COLUMN offline_recipients TEXT;
CREATE INDEX notifications_routing ON notifications (id) WHERE route_pending = 1;

CREATE TABLE preferences (
    user_id TEXT NOT NULL PRIMARY KEY,
    muted INTEGER NOT NULL,
    timezone TEXT NOT NULL,
    locale TEXT,
    quiet_start INTEGER,
    quiet_end INTEGER,
    digest TEXT NOT NULL,
    digest_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Channel on/off per owner, notification type ('*' for every type) and channel. The owner is
-- a user id, or '' for the admin's type defaults.
CREATE TABLE channel_switches (
    owner TEXT NOT NULL,
    type TEXT NOT NULL,
    channel TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    PRIMARY KEY (owner, type, channel)
);

CREATE TABLE notification_types (
    type TEXT NOT NULL PRIMARY KEY,
    escalation TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE contacts (
    user_id TEXT NOT NULL PRIMARY KEY,
    email TEXT,
    phone TEXT,
    updated_at INTEGER NOT NULL
);

CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    types TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_user ON webhooks (user_id);

CREATE TABLE templates (
    key TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

-- One notification (or digest: notification_id NULL) to one target of one user's channel.
-- step 0 goes out at once (or when quiet hours or the digest allow); step n > 0 is the n-th
-- escalation step. tries counts attempts since the last (re)start, attempts all of them.
-- provider_status is a provider's later report (Twilio's status callback: delivered, failed),
-- kept even when it arrives before the attempt that sent it is recorded.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER REFERENCES notifications (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    step INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    tries INTEGER NOT NULL,
    queued_at INTEGER,
    lease_until INTEGER,
    digest_id INTEGER,
    provider_id TEXT,
    provider_status TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (notification_id, user_id, channel, target, step);
CREATE INDEX deliveries_due ON deliveries (status, due_at);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE delivery_attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
