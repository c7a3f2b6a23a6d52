"""How notifications and events look on the wire: one shape for REST, SSE and WebSocket.

Cursors are the user's sequence numbers as decimal strings; the same string resumes a stream,
a WebSocket or a REST poll (`herald_server.core.params` parses them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald_server import codec
from herald_server.models import (
    Counts,
    InboxItem,
    LiveEvent,
    Notification,
    Published,
    StateEvent,
    iso,
)

# Wire names of the state events, by the action that caused them.
EVENT_NAMES = {
    "read": "read",
    "unread": "unread",
    "seen": "seen",
    "archive": "archived",
    "unarchive": "unarchived",
    "delete": "deleted",
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One event for a stream; `id` is set for events a client can resume after."""

    event: str
    data: str
    id: str | None = None


# Not an event: the stream was idle for its heartbeat interval (see `Hub.stream`).
HEARTBEAT = Frame("heartbeat", "")


def notification_body(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "type": notification.type,
        "title": notification.title,
        "body": notification.body,
        "data": notification.data,
        "priority": notification.priority,
        "topic": notification.topic,
        "collapse_key": notification.collapse_key,
        "created_at": iso(notification.created_at),
        "expires_at": iso(notification.expires_at),
    }


def item_body(item: InboxItem) -> dict[str, Any]:
    body = notification_body(item.notification)
    body["cursor"] = str(item.seq)
    body["seen_at"] = iso(item.seen_at)
    body["read_at"] = iso(item.read_at)
    body["archived_at"] = iso(item.archived_at)
    return body


def counts_body(counts: Counts) -> dict[str, Any]:
    return {
        "unread_count": counts.unread,
        "unseen_count": counts.unseen,
        "counts_at": str(counts.head),
    }


def state_body(event: StateEvent) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": None if event.notification_id is None else str(event.notification_id),
        "at": iso(event.at),
        **counts_body(event.counts),
    }
    if event.up_to is not None:
        body["up_to"] = str(event.up_to)
    return body


def published_event(published: Published) -> LiveEvent:
    """The live event for a delivered notification: state fields are those of a new item."""
    assert published.notification is not None
    body = notification_body(published.notification)
    body.update(seen_at=None, read_at=None, archived_at=None)
    return LiveEvent("notification", codec.dumps_str(body), published.targets)


def state_event(user: str, event: StateEvent) -> LiveEvent:
    return LiveEvent(
        EVENT_NAMES[event.action], codec.dumps_str(state_body(event)), ((user, event.seq),)
    )


def stored_frame(event: InboxItem | StateEvent) -> Frame:
    """A frame for an event replayed from the store."""
    if isinstance(event, InboxItem):
        body = item_body(event)
        del body["cursor"]
        return Frame("notification", codec.dumps_str(body), str(event.seq))
    return Frame(EVENT_NAMES[event.action], codec.dumps_str(state_body(event)), str(event.seq))


def counts_frame(counts: Counts) -> Frame:
    return Frame("unread_count", codec.dumps_str(counts_body(counts)))
