"""SQLAlchemy Core tables, shared by both dialects.

They mirror `migrations/<dialect>/*.sql`, which are what create them; `tests/store` checks that
the two agree. Times are integer milliseconds (see `herald_server.models`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text

metadata = MetaData()

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("type", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("topic", Text),
    Column("collapse_key", Text),
    Column("publisher", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("send_at", BigInteger),
    Column("expires_at", BigInteger),
    # The audience of a scheduled notification, as JSON, until it is released; NULL after.
    Column("pending_audience", Text),
    # 1 until a worker has planned the notification's deliveries beyond the inbox.
    Column("route_pending", Integer, nullable=False, server_default="0"),
    Column("channels", Text),
    Column("content", Text),
    Column("template", Text),
    # Recipients with no inbox item (in-app switched off), as JSON, for the router.
    Column("offline_recipients", Text),
)

# One row per user Herald has seen: the per-user sequence behind every cursor.
users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Stream tokens issued at or before this instant (ms) are refused.
    Column("streams_revoked_at", BigInteger),
)

inbox = Table(
    "inbox",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("notification_id", BigInteger, nullable=False),
    Column("seen_at", BigInteger),
    Column("read_at", BigInteger),
    Column("archived_at", BigInteger),
    Column("deleted_at", BigInteger),
)

# State changes (read, archive, delete, ...) take a seq too, so a resuming stream replays them.
user_events = Table(
    "user_events",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("action", Text, nullable=False),
    Column("notification_id", BigInteger),
    Column("up_to", BigInteger),
    Column("at", BigInteger, nullable=False),
    Column("unread", Integer, nullable=False),
    Column("unseen", Integer, nullable=False),
)

topics = Table(
    "topics",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    # 1: joined only by the backend or a token naming it (migration 0006).
    Column("private", Integer, nullable=False),
)

topic_subscriptions = Table(
    "topic_subscriptions",
    metadata,
    Column("topic", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    # 1: added by the backend, or by a user whose token named the topic; a private topic
    # reaches only these.
    Column("granted", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("publisher", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("notification_id", BigInteger),
    Column("recipients", Integer),
    Column("scheduled", Integer),
    Column("created_at", BigInteger, nullable=False),
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("muted", Integer, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("locale", Text),
    Column("quiet_start", Integer),
    Column("quiet_end", Integer),
    Column("digest", Text, nullable=False),
    Column("digest_at", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Owner '' holds the admin's type defaults; type '*' stands for every type.
channel_switches = Table(
    "channel_switches",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("type", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("enabled", Integer, nullable=False),
)

notification_types = Table(
    "notification_types",
    metadata,
    Column("type", Text, primary_key=True),
    Column("escalation", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text),
    Column("phone", Text),
    Column("updated_at", BigInteger, nullable=False),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("user_id", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("p256dh", Text, nullable=False),
    Column("auth", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("user_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("types", Text),
    Column("created_by", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

templates = Table(
    "templates",
    metadata,
    Column("key", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", Text, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("notification_id", BigInteger),
    Column("user_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("due_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("queued_at", BigInteger),
    Column("lease_until", BigInteger),
    Column("digest_id", BigInteger),
    Column("provider_id", Text),
    Column("provider_status", Text),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("delivery_id", BigInteger, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("outcome", Text, nullable=False),
    Column("detail", Text),
)

# Admin actions that changed something; only ever appended to.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("request_id", Text),
    Column("detail", Text, nullable=False),
)
