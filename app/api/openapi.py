"""GET /openapi.json: the contract as OpenAPI 3.1, schemas generated from
`herald_server.api.schemas`."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server import __version__
from herald_server.api._http import json_response
from herald_server.api.schemas import AUDIT_ACTION, SCHEMAS

REF = "#/components/schemas/{name}"
_PROBLEM = {"application/problem+json": {"schema": {"$ref": REF.format(name="ProblemDoc")}}}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=name)}}}


def _op(
    summary: str, ok: tuple[int, str | None], also: tuple[int, ...] = (), **extra: Any
) -> dict[str, Any]:
    """`also`: other success statuses with the same body (201 for a PUT that created)."""
    status, schema = ok
    ok_response: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok_response["content"] = _json(schema)
    responses: dict[str, Any] = {str(code): ok_response for code in (status, *also)}
    for code in extra.pop("errors", (400, 401, 404, 422)):
        responses[str(code)] = {"description": "problem", "content": _PROBLEM}
    return {"summary": summary, "responses": responses, **extra}


def _param(name: str, where: str = "query", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = schema or {"type": "string"}
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


_ID = _param("id", "path", {"type": "string", "pattern": "^[0-9]{1,18}$"})
_CURSOR: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{1,18}$"}
_TOPIC_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_BOOL: dict[str, Any] = {"type": "string", "enum": ["true", "false", "1", "0"]}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(name)}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/notifications": {
            "post": _op(
                "Publish to recipients, a topic, or everyone",
                (202, "PublishResult"),
                requestBody=_body("PublishBody"),
                parameters=[
                    _param("Idempotency-Key", "header", {"type": "string", "maxLength": 200})
                ],
                errors=(400, 401, 403, 409, 413, 415, 422, 429, 503),
            ),
            "get": _op(
                "The caller's inbox, newest first; with after=, what is newer, oldest first",
                (200, "NotificationPage"),
                parameters=[
                    _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
                    _param("before", schema=_CURSOR),
                    _param("after", schema=_CURSOR),
                    _param("unread", schema=_BOOL),
                    _param("archived", schema=_BOOL),
                    _param("type"),
                    _param("topic"),
                    _param("If-None-Match", "header"),
                ],
                errors=(400, 401),
            ),
        },
        "/api/notifications/unread-count": {
            "get": _op("Unread and unseen counts", (200, "CountsOut"), errors=(401,))
        },
        "/api/notifications/{id}": {
            "parameters": [_ID],
            "get": _op("One of the caller's notifications", (200, "NotificationOut")),
            "delete": _op("Delete it from the caller's inbox", (204, None)),
        },
        "/api/stream/token": {
            "post": _op("A short-lived token for ?token= on the streams", (201, "StreamToken"))
        },
        "/api/stream/revoke": {
            "post": _op(
                "Sign out everywhere: refuse the caller's stream tokens, end their streams",
                (204, None),
                requestBody=_body("EmptyBody", required=False),
                errors=(400, 401, 415, 422),
            )
        },
        "/api/admin/users/{user}/revoke-streams": {
            "parameters": [_USER],
            "post": _op(
                "Refuse a user's stream tokens and end their streams (admin)",
                (204, None),
                requestBody=_body("EmptyBody", required=False),
                errors=(400, 401, 403, 404, 415, 422),
            ),
        },
        "/api/dev/login": {
            "post": _op(
                "Development only: a one-hour token for ?sub=, with the scopes in ?scope=",
                (201, "DevLogin"),
                security=[],
                parameters=[
                    {**_param("sub", schema={"type": "string"}), "required": True},
                    _param("scope"),
                ],
                errors=(400, 404, 415, 422),
            )
        },
        "/api/admin/stats": {
            "get": _op("This node's live figures (admin)", (200, "NodeStats"), errors=(401, 403))
        },
        "/api/admin/notifications": {
            "get": _op(
                "Every user's notifications, newest first, with recipient and read counts (admin)",
                (200, "SentNotificationPage"),
                parameters=[
                    _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
                    _param("before", schema=_CURSOR),
                ],
                errors=(400, 401, 403),
            )
        },
        "/api/admin/audit": {
            "get": _op(
                "Admin actions that changed something, newest first (admin)",
                (200, "AuditPage"),
                parameters=[
                    _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
                    _param("before", schema=_CURSOR),
                    _param("action", schema={"type": "string", "pattern": AUDIT_ACTION}),
                ],
                errors=(400, 401, 403),
            )
        },
        "/api/stream": {
            "get": {
                "summary": "Server-Sent Events: notification, read, unread, seen, archived,"
                " unarchived, deleted, unread_count, reset, token_expiring",
                "parameters": [
                    _param("token"),
                    _param("last_event_id", schema=_CURSOR),
                    _param("Last-Event-ID", "header", _CURSOR),
                ],
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": {"description": "problem", "content": _PROBLEM},
                    "401": {"description": "problem", "content": _PROBLEM},
                },
            }
        },
        "/api/ws": {
            "get": {
                "summary": "WebSocket: the same events as JSON frames {event, id, data}",
                "parameters": [_param("token"), _param("last_event_id", schema=_CURSOR)],
                "responses": {"101": {"description": "switching protocols"}},
            }
        },
        "/api/topics": {
            "get": _op(
                "Topics the caller may see, by name, and whether the caller subscribes",
                (200, "TopicList"),
                parameters=[
                    _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
                    _param("after", schema={"type": "string", "pattern": _TOPIC_PATTERN}),
                ],
                errors=(400, 401),
            )
        },
        "/api/topics/{name}/subscription": {
            "parameters": [_param("name", "path")],
            "put": _op(
                "Subscribe the caller (200: already subscribed; 404: a private topic)",
                (201, "SubscriptionOut"),
                also=(200,),
            ),
            "delete": _op("Unsubscribe the caller", (204, None)),
        },
        "/api/topics/{name}/access": {
            "parameters": [_param("name", "path")],
            "put": _op(
                "Make a topic private or public (publish scope; 201: the topic is new)",
                (200, "TopicAccessOut"),
                also=(201,),
                requestBody=_body("TopicAccessBody"),
                errors=(400, 401, 403, 404, 413, 415, 422),
            ),
        },
        "/api/topics/{name}/subscribers/{user}": {
            "parameters": [_param("name", "path"), _USER],
            "put": _op(
                "Subscribe a user, to a private topic too (publish scope; 200: already was)",
                (201, "SubscriptionOut"),
                also=(200,),
                errors=(400, 401, 403, 404, 415, 422),
            ),
            "delete": _op(
                "Unsubscribe a user (publish scope)", (204, None), errors=(401, 403, 404)
            ),
        },
        "/healthz": {"get": _op("The process is alive", (200, "Health"), errors=())},
        "/readyz": {"get": _op("Store and bus reachability", (200, "Health"), errors=(503,))},
        "/openapi.json": {"get": _op("This document", (200, None), errors=())},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this node",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    paths.update(_delivery_paths())
    for action in ("read", "unread", "seen", "archive", "unarchive"):
        paths[f"/api/notifications/{{id}}/{action}"] = {
            "parameters": [_ID],
            "post": _op(f"Mark it {action}", (200, "NotificationOut")),
        }
    for action in ("read", "seen", "archive"):
        paths[f"/api/notifications/{action}-all"] = {
            "post": _op(
                f"Mark everything {action}, up to a cursor when given",
                (200, "BulkResult"),
                requestBody=_body("UpToBody", required=False),
            )
        }
    return paths


_USER = _param("user", "path", {"type": "string", "minLength": 1, "maxLength": 200})
_KEY = _param("key", "path", {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"})
_TYPE = _param("type", "path", {"type": "string", "pattern": "^(\\*|[A-Za-z0-9_.:-]{1,100})$"})
_ADMIN_ERRORS = (400, 401, 403, 404, 415, 422)


def _delivery_paths() -> dict[str, Any]:
    """Preferences, channel targets, templates and deliveries (herald_server.api.preferences
    and on)."""
    page = [
        _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
        _param("before", schema=_CURSOR),
    ]
    return {
        "/api/preferences": {
            "get": _op(
                "The caller's delivery preferences", (200, "PreferencesBody"), errors=(401,)
            ),
            "put": _op(
                "Replace the caller's delivery preferences",
                (200, "PreferencesBody"),
                requestBody=_body("PreferencesBody"),
                errors=(400, 401, 413, 415, 422),
            ),
        },
        "/api/channels": {
            "get": _op(
                "Channels available here, the caller's contact, the Web Push key, type defaults",
                (200, "ChannelsOut"),
                errors=(401,),
            )
        },
        "/api/contacts/{user}": {
            "parameters": [_USER],
            "get": _op(
                "A user's email and phone (own, or publish scope)",
                (200, "ContactOut"),
                errors=(401, 403, 404),
            ),
            "put": _op(
                "Set a user's email and phone (publish scope)",
                (200, "ContactOut"),
                also=(201,),
                requestBody=_body("ContactBody"),
                errors=_ADMIN_ERRORS,
            ),
            "delete": _op(
                "Forget a user's contact (publish scope)", (204, None), errors=(401, 403, 404)
            ),
        },
        "/api/push-subscriptions": {
            "get": _op(
                "The caller's Web Push subscriptions", (200, "PushSubscriptionList"), errors=(401,)
            ),
            "post": _op(
                "Store a browser's PushSubscription (200: it was known, and now is the caller's)",
                (201, "PushSubscriptionOut"),
                also=(200,),
                requestBody=_body("PushSubscriptionBody"),
                errors=(400, 401, 409, 413, 415, 422),
            ),
            "delete": _op(
                "Remove one of the caller's subscriptions by endpoint",
                (204, None),
                requestBody=_body("PushEndpointBody"),
                errors=(400, 401, 404, 415, 422),
            ),
        },
        "/api/webhooks": {
            "get": _op(
                "The caller's webhooks (everyone's with all=true, admin scope)",
                (200, "WebhookList"),
                parameters=[_param("all", schema={"type": "string", "enum": ["true", "false"]})],
                errors=(401, 403),
            ),
            "post": _op(
                "Register a webhook; the answer holds its signing secret, shown once",
                (201, "WebhookOut"),
                requestBody=_body("WebhookBody"),
                errors=(400, 401, 403, 413, 415, 422),
            ),
        },
        "/api/webhooks/{id}": {
            "parameters": [_ID],
            "delete": _op("Remove a webhook", (204, None), errors=(401, 404)),
        },
        "/api/templates": {
            "get": _op("Every template (admin)", (200, "TemplateList"), errors=(401, 403))
        },
        "/api/templates/{key}": {
            "parameters": [_KEY],
            "get": _op("One template (admin)", (200, "TemplateOut"), errors=(401, 403, 404)),
            "put": _op(
                "Store a template; every field must compile (admin)",
                (200, "TemplateOut"),
                also=(201,),
                requestBody=_body("TemplateBody"),
                errors=(400, 401, 403, 404, 413, 415, 422),
            ),
            "delete": _op("Delete a template (admin)", (204, None), errors=(401, 403, 404)),
        },
        "/api/templates/{key}/preview": {
            "parameters": [_KEY],
            "post": _op(
                "Render with these variables without sending (admin)",
                (200, "PreviewOut"),
                requestBody=_body("PreviewBody", required=False),
                errors=_ADMIN_ERRORS,
            ),
        },
        "/api/unsubscribe": {
            "get": {
                "summary": "The page of an email's unsubscribe link (changes nothing)",
                "security": [],
                "parameters": [{**_param("token"), "required": True}],
                "responses": {
                    "200": {"description": "a confirmation page", "content": {"text/html": {}}},
                    "400": {"description": "problem", "content": _PROBLEM},
                },
            },
            "post": {
                "summary": "One-click unsubscribe (RFC 8058): email off for the link's type",
                "security": [],
                "parameters": [{**_param("token"), "required": True}],
                "responses": {
                    "200": {"description": "done", "content": {"text/html": {}}},
                    "400": {"description": "problem", "content": _PROBLEM},
                    "413": {"description": "problem", "content": _PROBLEM},
                },
            },
        },
        "/api/sms/status": {
            "post": {
                "summary": "Twilio's status callback: form-encoded, signed with X-Twilio-Signature",
                "security": [],
                "responses": {
                    "204": {"description": "taken (an unknown or interim report changes nothing)"},
                    **{
                        str(code): {"description": "problem", "content": _PROBLEM}
                        for code in (403, 404, 413)
                    },
                },
            }
        },
        "/api/admin/deliveries": {
            "get": _op(
                "Deliveries, newest first (admin)",
                (200, "DeliveryPage"),
                parameters=[
                    *page,
                    _param("status"),
                    _param("channel"),
                    _param("notification", schema=_CURSOR),
                    _param("user"),
                ],
                errors=(400, 401, 403),
            )
        },
        "/api/admin/deliveries/{id}": {
            "parameters": [_ID],
            "get": _op(
                "One delivery and its attempts (admin)",
                (200, "DeliveryDetail"),
                errors=(401, 403, 404),
            ),
        },
        "/api/admin/dead-letters": {
            "get": _op(
                "Deliveries that failed for good, newest first (admin)",
                (200, "DeliveryPage"),
                parameters=page,
                errors=(400, 401, 403),
            )
        },
        "/api/admin/dead-letters/{id}/retry": {
            "parameters": [_ID],
            "post": _op(
                "Send a dead-lettered delivery again (admin)",
                (202, "DeliveryOut"),
                errors=(401, 403, 404, 409),
            ),
        },
        "/api/admin/types": {
            "get": _op(
                "Per-type channel defaults and escalation (admin)",
                (200, "TypeDefaultsList"),
                errors=(401, 403),
            )
        },
        "/api/admin/types/{type}": {
            "parameters": [_TYPE],
            "put": _op(
                "Set a type's defaults; type * is every type (admin)",
                (200, "TypeDefaultsOut"),
                also=(201,),
                requestBody=_body("TypeDefaultsBody"),
                errors=_ADMIN_ERRORS,
            ),
            "delete": _op("Remove a type's defaults (admin)", (204, None), errors=(401, 403, 404)),
        },
    }


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(SCHEMAS, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Herald", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
    }


_DOCUMENT = document()


async def openapi(request: Request) -> Response:
    return json_response(_DOCUMENT)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
