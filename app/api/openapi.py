"""GET /openapi.json: the contract as OpenAPI 3.1, schemas generated from `app.api.schemas`."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import __version__
from app.api._http import json_response
from app.api.schemas import SCHEMAS

REF = "#/components/schemas/{name}"
_PROBLEM = {"application/problem+json": {"schema": {"$ref": REF.format(name="ProblemDoc")}}}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=name)}}}


def _op(summary: str, ok: tuple[int, str | None], **extra: Any) -> dict[str, Any]:
    status, schema = ok
    ok_response: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok_response["content"] = _json(schema)
    responses: dict[str, Any] = {str(status): ok_response}
    for code in extra.pop("errors", (400, 401, 404, 422)):
        responses[str(code)] = {"description": "problem", "content": _PROBLEM}
    return {"summary": summary, "responses": responses, **extra}


def _param(name: str, where: str = "query", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = schema or {"type": "string"}
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


_ID = _param("id", "path", {"type": "string", "pattern": "^[0-9]{1,18}$"})
_CURSOR: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{1,18}$"}
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
                errors=(400, 401, 403, 409, 413, 415, 422, 503),
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
            "get": _op("Topics, and whether the caller subscribes", (200, "TopicList"))
        },
        "/api/topics/{name}/subscription": {
            "parameters": [_param("name", "path")],
            "put": _op("Subscribe the caller", (201, "SubscriptionOut")),
            "delete": _op("Unsubscribe the caller", (204, None)),
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
