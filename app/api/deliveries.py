"""Deliveries for operators (admin scope): every delivery's status and attempts, the
admin's per-type defaults, and the dead-letter queue with its replay.

The dead-letter queue is the store's `failed` deliveries: it survives a Redis restart, and a
replay sends the same delivery again (same idempotency key, a fresh set of tries).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import (
    json_response,
    limit_param,
    path_id,
    path_name,
    principal_with,
    read_json,
    services,
)
from herald_server.api.schemas import TypeDefaultsBody
from herald_server.core.params import parse_cursor
from herald_server.errors import InvalidParameter, NotDeadLettered, NotFound
from herald_server.models import (
    CHANNELS,
    SCOPE_ADMIN,
    Delivery,
    DeliveryQuery,
    EscalationStep,
    TypeDefaults,
    iso,
    now_ms,
)

STATUSES = frozenset(
    {"held", "pending", "sending", "sent", "delivered", "read", "failed", "cancelled", "digested"}
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
TYPE_OR_EVERY = re.compile(r"^(\*|[A-Za-z0-9_.:-]{1,100})$")


def delivery_body(delivery: Delivery) -> dict[str, Any]:
    def ident(value: int | None) -> str | None:
        return None if value is None else str(value)

    return {
        "id": str(delivery.id),
        "notification_id": ident(delivery.notification_id),
        "user": delivery.user,
        "channel": delivery.channel,
        "target": delivery.target,
        "status": delivery.status,
        "reason": delivery.reason,
        "attempts": delivery.attempts,
        "due_at": iso(delivery.due_at),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
        "last_error": delivery.last_error,
        "provider_id": delivery.provider_id,
        "digest_id": ident(delivery.digest_id),
    }


def _query(request: Request, status: str | None) -> DeliveryQuery:
    params = request.query_params
    if status is None:
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(sorted(STATUSES))}")
    channel = params.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise InvalidParameter(f"channel must be one of {', '.join(CHANNELS)}")
    user = params.get("user")
    if user is not None and not (0 < len(user) <= 200 and user.isprintable()):
        raise InvalidParameter("user must be 1 to 200 printable characters")
    return DeliveryQuery(
        limit=limit_param(request, DEFAULT_LIMIT, MAX_LIMIT),
        before=parse_cursor(params.get("before")),
        status=status,
        channel=channel,
        notification_id=parse_cursor(params.get("notification")),
        user=user,
    )


async def _page(request: Request, status: str | None) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    query = _query(request, status)
    found = await services(request).store.deliveries(query)
    items = [delivery_body(delivery) for delivery in found]
    next_cursor = items[-1]["id"] if len(items) == query.limit else None
    return json_response(
        {"items": items, "next_cursor": next_cursor}, headers={"Cache-Control": "no-store"}
    )


async def list_deliveries(request: Request) -> Response:
    """Newest first; filters `status`, `channel`, `notification`, `user`; `before` pages."""
    return await _page(request, None)


async def dead_letters(request: Request) -> Response:
    return await _page(request, "failed")


async def get_delivery(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    delivery_id = path_id(request, "delivery")
    found = await services(request).store.delivery(delivery_id)
    if found is None:
        raise NotFound(f"delivery {delivery_id} not found")
    delivery, attempts = found
    history = [
        {
            "attempt": attempt.attempt,
            "started_at": iso(attempt.started_at),
            "finished_at": iso(attempt.finished_at),
            "outcome": attempt.outcome,
            "detail": attempt.detail,
        }
        for attempt in attempts
    ]
    return json_response({**delivery_body(delivery), "history": history})


async def retry_dead_letter(request: Request) -> Response:
    caller = await principal_with(request, SCOPE_ADMIN)
    delivery_id = path_id(request, "delivery")
    found = services(request)
    delivery = await found.store.replay(delivery_id, now_ms())
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if delivery.status != "pending":
        raise NotDeadLettered(f"delivery {delivery_id} is {delivery.status}, not failed")
    await found.audit.record(caller.sub, "dead_letter.retry", str(delivery_id))
    if found.worker is not None:
        found.worker.wake()
    return json_response(delivery_body(delivery), 202)


def _defaults_body(defaults: TypeDefaults) -> dict[str, Any]:
    return {
        "type": defaults.type,
        "channels": defaults.channels,
        "escalation": [
            {"after_seconds": step.after // 1000, "unless": step.unless, "channel": step.channel}
            for step in defaults.escalation
        ],
        "updated_at": iso(defaults.updated_at or None),
    }


async def list_type_defaults(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    found = await services(request).store.type_defaults()
    return json_response({"items": [_defaults_body(entry) for entry in found]})


async def put_type_defaults(request: Request) -> Response:
    """Channels on or off by default for a type (or `*`, every type), and its escalation."""
    caller = await principal_with(request, SCOPE_ADMIN)
    kind = path_name(request, "type", TYPE_OR_EVERY, "notification type")
    body = await read_json(request, TypeDefaultsBody)
    now = now_ms()
    defaults = TypeDefaults(
        kind,
        {str(channel): on for channel, on in body.channels.items()},
        tuple(
            EscalationStep(step.after_seconds * 1000, step.unless, step.channel)
            for step in body.escalation
        ),
        now,
    )
    created = await services(request).store.set_type_defaults(defaults, now)
    body_out = _defaults_body(defaults)
    await services(request).audit.record(
        caller.sub,
        "type_defaults.put",
        kind,
        {"channels": body_out["channels"], "escalation": body_out["escalation"]},
    )
    return json_response(body_out, 201 if created else 200)


async def delete_type_defaults(request: Request) -> Response:
    caller = await principal_with(request, SCOPE_ADMIN)
    kind = path_name(request, "type", TYPE_OR_EVERY, "notification type")
    if not await services(request).store.delete_type_defaults(kind):
        raise NotFound(f"no defaults for {kind!r}")
    await services(request).audit.record(caller.sub, "type_defaults.delete", kind)
    return Response(status_code=204)


routes = [
    Route("/api/admin/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/admin/deliveries/{id}", get_delivery, methods=["GET"]),
    Route("/api/admin/dead-letters", dead_letters, methods=["GET"]),
    Route("/api/admin/dead-letters/{id}/retry", retry_dead_letter, methods=["POST"]),
    Route("/api/admin/types", list_type_defaults, methods=["GET"]),
    Route("/api/admin/types/{type}", put_type_defaults, methods=["PUT"]),
    Route("/api/admin/types/{type}", delete_type_defaults, methods=["DELETE"]),
]
