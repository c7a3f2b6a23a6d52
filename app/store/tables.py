"""SQLAlchemy Core tables, shared by both dialects.

They mirror `migrations/<dialect>/*.sql`, which are what create them; `tests/store` checks that
the two agree. Times are integer milliseconds (see `app.models`).
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
)

# One row per user Herald has seen: the per-user sequence behind every cursor.
users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
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
)

topic_subscriptions = Table(
    "topic_subscriptions",
    metadata,
    Column("topic", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
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
