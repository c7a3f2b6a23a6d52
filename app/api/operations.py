"""Every route the API serves, as an `Operation`: one entry per route, in one place, from which
/openapi.json is built (herald_server.api.openapi). tests/api/test_operations.py checks that every
route
the app serves has its entry and no entry lacks a route."""

from __future__ import annotations

from typing import Any

from herald_server.api.operation import (
    BOOL,
    CURSOR,
    LIMIT,
    STATUS_TEXT,
    Operation,
    headers,
    json_content,
    param,
)
from herald_server.api.schemas import AUDIT_ACTION

TAGS: dict[str, str] = {
    "publishing": "What a backend with the publish scope does: send, and set where email and "
    "SMS go",
    "inbox": "A user's notifications: list, poll, read, archive, delete",
    "streams": "Live events over Server-Sent Events or WebSocket, and the tokens that open them",
    "topics": "Named audiences: public ones any user may join, private ones the backend fills",
    "preferences": "A user's delivery choices, and what this deployment can deliver",
    "push": "Web Push subscriptions of a user's browsers",
    "webhooks": "URLs that receive a user's notifications, signed per Standard Webhooks",
    "templates": "Per channel and locale, in sandboxed Jinja2 (admin scope)",
    "admin": "What an operator sees and does (admin scope)",
    "callbacks": "Links and callbacks that carry their own proof instead of a token",
    "operations": "Health, readiness, metrics and this document",
    "development": "Helpers for the demo; off in production",
}

PAGE = (
    param("limit", "Items per page", LIMIT),
    param("before", "A next_cursor from the previous page: older items", CURSOR),
)
_STREAM_EVENTS = (
    "notification, read, unread, seen, archived, unarchived, deleted, unread_count, reset and"
    " token_expiring"
)
_RESUME = param("last_event_id", "Resume after this event id (as Last-Event-ID)", CURSOR)
_ACTIONS = {
    "read": ("markNotificationRead", "Mark it read"),
    "unread": ("markNotificationUnread", "Mark it unread"),
    "seen": ("markNotificationSeen", "Mark it seen (shown, not yet read)"),
    "archive": ("archiveNotification", "Archive it"),
    "unarchive": ("unarchiveNotification", "Bring it back from the archive"),
}
_BULK = {
    "read": ("markAllNotificationsRead", "Mark everything read"),
    "seen": ("markAllNotificationsSeen", "Mark everything seen"),
    "archive": ("archiveAllNotifications", "Archive everything"),
}


def _not_modified() -> dict[int, dict[str, Any]]:
    return {304: {"description": STATUS_TEXT[304], "headers": headers("ETag")}}


def _inbox() -> list[Operation]:
    single = [
        Operation(
            "POST",
            f"/api/notifications/{{id}}/{action}",
            op_id,
            "inbox",
            summary,
            "Changes the caller's state of one notification and answers it as it is now; every"
            " open stream of the caller hears of the change.",
            schema="NotificationOut",
        )
        for action, (op_id, summary) in _ACTIONS.items()
    ]
    bulk = [
        Operation(
            "POST",
            f"/api/notifications/{action}-all",
            op_id,
            "inbox",
            summary,
            "Changes every notification of the caller, or only those up to `up_to` (a cursor)"
            " when given, so that items that arrived since are left alone. Answers the counts.",
            schema="BulkResult",
            body="UpToBody",
            body_required=False,
        )
        for action, (op_id, summary) in _BULK.items()
    ]
    return [
        Operation(
            "GET",
            "/api/notifications",
            "listNotifications",
            "inbox",
            "List the caller's notifications",
            "Newest first, paged back with `before`; with `after`, what is newer, oldest first"
            " (a poll). The ETag changes with the page: send it in If-None-Match to get a 304"
            " and no body while nothing changed.",
            schema="NotificationPage",
            params=(
                *PAGE,
                param("after", "Only what is newer than this cursor, oldest first", CURSOR),
                param("unread", "Only unread (true) or only read (false) items", BOOL),
                param("archived", "The archive instead of the inbox", BOOL),
                param("type", "Only this notification type"),
                param("topic", "Only notifications sent to this topic"),
                param("If-None-Match", "The ETag of a page already held", where="header"),
            ),
            errors=(400,),
            ok_headers=("ETag",),
            other=_not_modified(),
        ),
        Operation(
            "GET",
            "/api/notifications/unread-count",
            "getUnreadCount",
            "inbox",
            "Count unread and unseen notifications",
            "Exact as of the cursor `counts_at`: events after it change them.",
            schema="CountsOut",
        ),
        Operation(
            "GET",
            "/api/notifications/{id}",
            "getNotification",
            "inbox",
            "Get one of the caller's notifications",
            "Another user's notification is not found, as is one that does not exist.",
            schema="NotificationOut",
        ),
        Operation(
            "DELETE",
            "/api/notifications/{id}",
            "deleteNotification",
            "inbox",
            "Delete a notification from the caller's inbox",
            "Only the caller's copy goes; other recipients keep theirs.",
            ok=204,
        ),
        *single,
        *bulk,
    ]


def _publishing() -> list[Operation]:
    return [
        Operation(
            "POST",
            "/api/notifications",
            "publishNotification",
            "publishing",
            "Publish a notification",
            "To named recipients (publish scope, or only to oneself without it), to a topic's"
            " subscribers, or to everyone (admin scope). Give `title` and `body`, or a"
            " `template` with its `vars`. With an Idempotency-Key, a retry within the key's"
            " lifetime answers the first result with Idempotent-Replayed and sends nothing.",
            ok=202,
            schema="PublishResult",
            body="PublishBody",
            params=(
                param(
                    "Idempotency-Key",
                    "Makes a retry safe: 1 to 200 printable characters",
                    {"type": "string", "maxLength": 200},
                    "header",
                ),
            ),
            access="scoped",
            errors=(409,),
            limited=True,
            ok_headers=("Idempotent-Replayed",),
        ),
        Operation(
            "GET",
            "/api/contacts/{user}",
            "getContact",
            "publishing",
            "Get a user's email address and phone number",
            "A user may read their own; anyone else's needs the publish scope.",
            schema="ContactOut",
            access="scoped",
        ),
        Operation(
            "PUT",
            "/api/contacts/{user}",
            "setContact",
            "publishing",
            "Set a user's email address and phone number",
            "Set by a trusted backend (publish scope), never by the user, so that nobody can"
            " point Herald's email at someone else's inbox. 201 when the user had none.",
            schema="ContactOut",
            also=(201,),
            access="scoped",
            body="ContactBody",
        ),
        Operation(
            "DELETE",
            "/api/contacts/{user}",
            "deleteContact",
            "publishing",
            "Forget a user's email address and phone number",
            "Needs the publish scope.",
            ok=204,
            access="scoped",
        ),
    ]


def _streams() -> list[Operation]:
    optional_empty: dict[str, Any] = {"body": "EmptyBody", "body_required": False}
    return [
        Operation(
            "POST",
            "/api/stream/token",
            "createStreamToken",
            "streams",
            "Get a short-lived stream token",
            "For `?token=` on /api/stream and /api/ws, since EventSource cannot send headers. It"
            " opens streams and nothing else, and never outlives the token that asked for it.",
            ok=201,
            schema="StreamToken",
            store=False,
            **optional_empty,
        ),
        Operation(
            "POST",
            "/api/stream/revoke",
            "revokeMyStreams",
            "streams",
            "Sign out everywhere",
            "Refuses every stream token the caller holds and ends their open streams.",
            ok=204,
            **optional_empty,
        ),
        Operation(
            "GET",
            "/api/stream",
            "streamEvents",
            "streams",
            "Receive events over Server-Sent Events",
            f"An endless text/event-stream of {_STREAM_EVENTS}. Each event has an id: reconnect"
            " with Last-Event-ID (or `last_event_id`) to get what was missed. Open it with a"
            " stream token in `?token=`, or a bearer token.",
            media="text/event-stream",
            params=(
                _RESUME,
                param("Last-Event-ID", "Resume after this event id", CURSOR, "header"),
            ),
            errors=(400,),
            limited=True,
            security=("streamToken", "bearer"),
        ),
        Operation(
            "GET",
            "/api/ws",
            "streamWebSocket",
            "streams",
            "Receive events over a WebSocket",
            "The same events as /api/stream, as JSON frames {event, id, data}; the client may"
            ' send {"type": "ping"} or {"type": "read", "id": ...}. A refusal is a problem'
            " answer before the upgrade, or a close with code 4000 + its status.",
            ok=101,
            params=(_RESUME,),
            errors=(400, 403),
            limited=True,
            security=("streamToken", "bearer"),
        ),
        Operation(
            "POST",
            "/api/admin/users/{user}/revoke-streams",
            "revokeUserStreams",
            "admin",
            "Sign a user out of every stream",
            "Refuses the user's stream tokens and ends their streams: a lost device, a departing"
            " employee. Recorded in the audit log.",
            ok=204,
            access="scoped",
            **optional_empty,
        ),
    ]


_TOPIC = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}


def _topics() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/topics",
            "listTopics",
            "topics",
            "List topics",
            "The topics the caller may see, by name, and whether the caller subscribes. Private"
            " topics appear only to their members and to holders of a token claim naming them;"
            " subscriber counts only to callers with the publish or admin scope.",
            schema="TopicList",
            params=(
                param("limit", "Topics per page", LIMIT),
                param("after", "A next_cursor from the previous page", _TOPIC),
            ),
            errors=(400,),
        ),
        Operation(
            "PUT",
            "/api/topics/{name}/subscription",
            "subscribeTopic",
            "topics",
            "Subscribe the caller to a topic",
            "201 when the subscription is new, 200 when the caller already subscribed; 422 when"
            " the caller subscribes to as many topics as allowed; 404 for a private topic the"
            " caller's token does not name.",
            ok=201,
            schema="SubscriptionOut",
            also=(200,),
            body="EmptyBody",
            body_required=False,
        ),
        Operation(
            "DELETE",
            "/api/topics/{name}/subscription",
            "unsubscribeTopic",
            "topics",
            "Unsubscribe the caller from a topic",
            "404 when the caller did not subscribe.",
            ok=204,
        ),
        Operation(
            "PUT",
            "/api/topics/{name}/access",
            "setTopicAccess",
            "topics",
            "Make a topic private or public",
            "Publish scope. A private topic is joined only through the backend or by a user"
            " whose token's `topics` claim names it; making a topic private ends the"
            " subscriptions users made themselves. 201 when the topic had no row before.",
            schema="TopicAccessOut",
            also=(201,),
            access="scoped",
            body="TopicAccessBody",
        ),
        Operation(
            "PUT",
            "/api/topics/{name}/subscribers/{user}",
            "addTopicSubscriber",
            "topics",
            "Subscribe a user to a topic",
            "Publish scope; private topics too. 201 when new, 200 when the user already was.",
            ok=201,
            schema="SubscriptionOut",
            also=(200,),
            access="scoped",
            body="EmptyBody",
            body_required=False,
        ),
        Operation(
            "DELETE",
            "/api/topics/{name}/subscribers/{user}",
            "removeTopicSubscriber",
            "topics",
            "Unsubscribe a user from a topic",
            "Publish scope. 404 when the user did not subscribe.",
            ok=204,
            access="scoped",
        ),
    ]


def _preferences() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/preferences",
            "getPreferences",
            "preferences",
            "Get the caller's delivery preferences",
            "Channels on or off in general and per type, quiet hours, digest, time zone.",
            schema="PreferencesBody",
        ),
        Operation(
            "PUT",
            "/api/preferences",
            "setPreferences",
            "preferences",
            "Replace the caller's delivery preferences",
            "The whole document: what is left out takes its default.",
            schema="PreferencesBody",
            body="PreferencesBody",
        ),
        Operation(
            "GET",
            "/api/channels",
            "getChannels",
            "preferences",
            "What a preferences page needs",
            "The channels this deployment can send, where the caller's email and SMS go, the"
            " Web Push key to subscribe with, and the admin's defaults per type.",
            schema="ChannelsOut",
        ),
    ]


def _push() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/push-subscriptions",
            "listPushSubscriptions",
            "push",
            "List the caller's Web Push subscriptions",
            "One per browser that subscribed.",
            schema="PushSubscriptionList",
        ),
        Operation(
            "POST",
            "/api/push-subscriptions",
            "createPushSubscription",
            "push",
            "Store a browser's PushSubscription",
            "201 when new; 200 when the caller already holds the endpoint (its keys are"
            " refreshed). 409 when another user holds the endpoint, or Web Push is not configured"
            " here; 422 when the caller has as many subscriptions as allowed.",
            ok=201,
            schema="PushSubscriptionOut",
            also=(200,),
            body="PushSubscriptionBody",
            errors=(409,),
        ),
        Operation(
            "DELETE",
            "/api/push-subscriptions",
            "deletePushSubscription",
            "push",
            "Remove one of the caller's subscriptions",
            "By its endpoint, given in the body.",
            ok=204,
            body="PushEndpointBody",
            errors=(404,),
        ),
    ]


def _webhooks() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/webhooks",
            "listWebhooks",
            "webhooks",
            "List webhooks",
            "The caller's; everyone's with `all=true` (admin scope).",
            schema="WebhookList",
            params=(
                param(
                    "all", "Everyone's (admin scope)", {"type": "string", "enum": ["true", "false"]}
                ),
            ),
            errors=(403,),
        ),
        Operation(
            "POST",
            "/api/webhooks",
            "createWebhook",
            "webhooks",
            "Register a webhook",
            "For the caller, or for any `user` with the admin scope. The answer holds the"
            " signing secret, shown this once. 422 when that user has as many webhooks as"
            " allowed.",
            ok=201,
            schema="WebhookOut",
            body="WebhookBody",
            errors=(403,),
        ),
        Operation(
            "DELETE",
            "/api/webhooks/{id}",
            "deleteWebhook",
            "webhooks",
            "Remove a webhook",
            "The caller's own; any with the admin scope.",
            ok=204,
        ),
    ]


def _templates() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/templates",
            "listTemplates",
            "templates",
            "List templates",
            "Every template with its version.",
            schema="TemplateList",
            access="scoped",
        ),
        Operation(
            "GET",
            "/api/templates/{key}",
            "getTemplate",
            "templates",
            "Get a template",
            "Its locales, per channel, as stored.",
            schema="TemplateOut",
            access="scoped",
        ),
        Operation(
            "PUT",
            "/api/templates/{key}",
            "setTemplate",
            "templates",
            "Store a template",
            "Every field must compile, or nothing is stored (422). 201 when the key is new;"
            " each store makes a new version. Recorded in the audit log.",
            schema="TemplateOut",
            also=(201,),
            access="scoped",
            body="TemplateBody",
        ),
        Operation(
            "DELETE",
            "/api/templates/{key}",
            "deleteTemplate",
            "templates",
            "Delete a template",
            "Recorded in the audit log.",
            ok=204,
            access="scoped",
        ),
        Operation(
            "POST",
            "/api/templates/{key}/preview",
            "previewTemplate",
            "templates",
            "Render a template without sending",
            "With these variables and locale, as a publish would render it.",
            schema="PreviewOut",
            access="scoped",
            body="PreviewBody",
            body_required=False,
        ),
    ]


def _admin() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/admin/stats",
            "getNodeStats",
            "admin",
            "This node's live figures",
            "Open streams, users connected, events out; each node answers for itself.",
            schema="NodeStats",
            access="scoped",
            store=False,
        ),
        Operation(
            "GET",
            "/api/admin/notifications",
            "listSentNotifications",
            "admin",
            "List every user's notifications",
            "Newest first, with publisher, recipient and read counts.",
            schema="SentNotificationPage",
            access="scoped",
            params=PAGE,
            errors=(400,),
        ),
        Operation(
            "GET",
            "/api/admin/audit",
            "listAuditEntries",
            "admin",
            "List the audit log",
            "Admin actions that changed something, newest first; `action` narrows it.",
            schema="AuditPage",
            access="scoped",
            params=(
                *PAGE,
                param(
                    "action",
                    "Only this action, e.g. template.put",
                    {"type": "string", "pattern": AUDIT_ACTION},
                ),
            ),
            errors=(400,),
        ),
        Operation(
            "GET",
            "/api/admin/deliveries",
            "listDeliveries",
            "admin",
            "List deliveries",
            "Every email, push, SMS and webhook delivery, newest first, with filters.",
            schema="DeliveryPage",
            access="scoped",
            params=(
                *PAGE,
                param("status", "Only deliveries in this status"),
                param("channel", "Only this channel"),
                param("notification", "Only deliveries of this notification", CURSOR),
                param("user", "Only deliveries to this user"),
            ),
            errors=(400,),
        ),
        Operation(
            "GET",
            "/api/admin/deliveries/{id}",
            "getDelivery",
            "admin",
            "Get a delivery and its attempts",
            "Each attempt with its outcome and the provider's answer.",
            schema="DeliveryDetail",
            access="scoped",
        ),
        Operation(
            "GET",
            "/api/admin/dead-letters",
            "listDeadLetters",
            "admin",
            "List the dead-letter queue",
            "Deliveries that failed for good, newest first.",
            schema="DeliveryPage",
            access="scoped",
            params=PAGE,
            errors=(400,),
        ),
        Operation(
            "POST",
            "/api/admin/dead-letters/{id}/retry",
            "retryDeadLetter",
            "admin",
            "Send a dead-lettered delivery again",
            "The same delivery (same idempotency key) with a fresh set of tries; 409 when it is"
            " not in the dead-letter queue.",
            ok=202,
            schema="DeliveryOut",
            access="scoped",
            errors=(409,),
        ),
        Operation(
            "GET",
            "/api/admin/types",
            "listTypeDefaults",
            "admin",
            "List per-type channel defaults",
            "Channels on or off by default, and the escalation steps, per notification type.",
            schema="TypeDefaultsList",
            access="scoped",
        ),
        Operation(
            "PUT",
            "/api/admin/types/{type}",
            "setTypeDefaults",
            "admin",
            "Set a type's channel defaults and escalation",
            "Type * is every type. 201 when the type had none. Recorded in the audit log.",
            schema="TypeDefaultsOut",
            also=(201,),
            access="scoped",
            body="TypeDefaultsBody",
        ),
        Operation(
            "DELETE",
            "/api/admin/types/{type}",
            "deleteTypeDefaults",
            "admin",
            "Remove a type's defaults",
            "Recorded in the audit log.",
            ok=204,
            access="scoped",
        ),
    ]


def _callbacks() -> list[Operation]:
    token = param("token", "The signed token of the email's link", required=True)
    return [
        Operation(
            "GET",
            "/api/unsubscribe",
            "showUnsubscribePage",
            "callbacks",
            "The page behind an email's unsubscribe link",
            "Changes nothing (mail scanners fetch links): its button POSTs to the same URL.",
            media="text/html",
            access="public",
            params=(token,),
            errors=(400,),
            store=False,
        ),
        Operation(
            "POST",
            "/api/unsubscribe",
            "unsubscribeByLink",
            "callbacks",
            "One-click unsubscribe (RFC 8058)",
            "Turns email off for the link's user and notification type.",
            media="text/html",
            access="public",
            params=(token,),
            errors=(400, 413),
        ),
        Operation(
            "POST",
            "/api/sms/status",
            "reportSmsStatus",
            "callbacks",
            "Twilio's status callback",
            "Form-encoded and signed with X-Twilio-Signature (403 otherwise); 404 when SMS is"
            " not configured. An unknown or interim report changes nothing.",
            ok=204,
            access="public",
            errors=(403, 404, 413),
        ),
    ]


def _operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/healthz",
            "getHealth",
            "operations",
            "Liveness",
            "200 while the process serves HTTP; checks nothing else.",
            schema="Health",
            access="public",
            store=False,
        ),
        Operation(
            "GET",
            "/readyz",
            "getReadiness",
            "operations",
            "Readiness",
            "The store and the bus, reported apart: without its bus a node still serves (from"
            " the store), so only a store that is down answers 503.",
            schema="Health",
            access="public",
            store=False,
            other={503: {"description": "The store is down", "content": json_content("Health")}},
        ),
        Operation(
            "GET",
            "/metrics",
            "getMetrics",
            "operations",
            "Prometheus metrics of this process",
            "This process's own figures in the Prometheus text format: scrape every node and"
            " worker, and sums across them are right. Served on HERALD_METRICS_PORT instead when"
            " that is set.",
            media="text/plain",
            access="public",
            store=False,
        ),
        Operation(
            "GET",
            "/metrics/cluster",
            "getClusterMetrics",
            "operations",
            "Prometheus metrics of the cluster",
            "The delivery backlog and queue, read from the store: the same on every node, so"
            " scrape it once.",
            media="text/plain",
            access="public",
        ),
        Operation(
            "GET",
            "/openapi.json",
            "getOpenApiDocument",
            "operations",
            "This document",
            "OpenAPI 3.1; /docs renders it for people.",
            media="application/json",
            access="public",
            store=False,
        ),
        Operation(
            "POST",
            "/api/dev/login",
            "devLogin",
            "development",
            "Get a one-hour token for any user (development only)",
            "What `herald token` does, over HTTP, so the demo page can sign in without an"
            " identity provider; 404 when HERALD_DEV_LOGIN is off, as in production.",
            ok=201,
            schema="DevLogin",
            access="public",
            params=(
                param("sub", "The user id", required=True),
                param(
                    "scope", "Space-separated scopes: notifications:publish, notifications:admin"
                ),
            ),
            body="EmptyBody",
            body_required=False,
            errors=(404,),
            store=False,
        ),
    ]


OPERATIONS: tuple[Operation, ...] = (
    *_publishing(),
    *_inbox(),
    *_streams(),
    *_topics(),
    *_preferences(),
    *_push(),
    *_webhooks(),
    *_templates(),
    *_admin(),
    *_callbacks(),
    *_operations(),
)
