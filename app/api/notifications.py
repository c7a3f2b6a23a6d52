"""The inbox over HTTP: publish, list and poll, read and mark."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import (
    json_response,
    limit_param,
    path_id,
    principal,
    read_json,
    services,
)
from herald_server.api.schemas import PublishBody, UpToBody
from herald_server.core.params import parse_cursor
from herald_server.core.publishing import TemplateUse
from herald_server.errors import InvalidParameter, ValidationFailed
from herald_server.models import (
    Audience,
    BulkAction,
    Draft,
    Everyone,
    InboxQuery,
    Principal,
    Recipients,
    StateAction,
    TopicAudience,
    now_ms,
)

MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_IDEMPOTENCY_KEY = 200


def _ms(stamp: datetime | None) -> int | None:
    return None if stamp is None else int(stamp.timestamp() * 1000)


def _audience(body: PublishBody) -> Audience:
    chosen = [body.recipients is not None, body.topic is not None, body.broadcast]
    if sum(chosen) != 1:
        raise ValidationFailed("give exactly one of recipients, topic or broadcast")
    if body.recipients is not None:
        if not body.recipients:
            raise ValidationFailed("recipients is empty")
        return Recipients(tuple(body.recipients))
    if body.topic is not None:
        return TopicAudience(body.topic)
    return Everyone()


def _template(body: PublishBody) -> TemplateUse | None:
    """A publish gives `title` (and `body`) or `template` (and `vars`), never both."""
    if body.template is None:
        if body.title is None:
            raise ValidationFailed("give title, or template with its vars")
        if body.vars is not None or body.locale is not None:
            raise ValidationFailed("vars and locale go with a template")
        return None
    if body.title is not None or body.body is not None:
        raise ValidationFailed("give title and body, or a template, not both")
    return TemplateUse(body.template, body.vars or {}, body.locale)


def _draft(caller: Principal, body: PublishBody) -> Draft:
    send_at, expires_at = _ms(body.send_at), _ms(body.expires_at)
    if expires_at is not None and expires_at <= max(send_at or 0, now_ms()):
        raise ValidationFailed("expires_at must be in the future and after send_at")
    return Draft(
        type=body.type,
        # A template's rendering takes their place before anything is stored.
        title=body.title or "",
        body=body.body or "",
        data=body.data,
        priority=body.priority,
        publisher=caller.sub,
        topic=body.topic,
        collapse_key=body.collapse_key,
        send_at=send_at,
        expires_at=expires_at,
        channels=None if body.channels is None else tuple(dict.fromkeys(body.channels)),
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise InvalidParameter(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable chars")
    return key


async def publish(request: Request) -> Response:
    caller = await principal(request)
    key = _idempotency_key(request)
    body = await read_json(request, PublishBody)
    draft, audience, template = _draft(caller, body), _audience(body), _template(body)
    found = services(request)
    published = await found.publisher.publish(caller, draft, audience, key, template)
    headers = {"Idempotent-Replayed": "true"} if published.replayed else None
    if isinstance(audience, Everyone) and not published.replayed:
        await found.audit.record(
            caller.sub,
            "notification.broadcast",
            str(published.notification_id),
            {"type": draft.type, "recipients": published.recipients},
        )
    result: dict[str, object] = {
        "id": str(published.notification_id),
        "recipients": published.recipients,
        "scheduled": published.scheduled,
    }
    if published.rate_limited:
        result["skipped"] = [
            {"recipient": user, "reason": "rate_limited"} for user in published.rate_limited
        ]
    return json_response(result, 202, headers)


def _flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise InvalidParameter(f"{name} must be true or false")


def _query(request: Request) -> InboxQuery:
    params = request.query_params
    before, after = parse_cursor(params.get("before")), parse_cursor(params.get("after"))
    if before is not None and after is not None:
        raise InvalidParameter("give before or after, not both")
    for name in ("type", "topic"):
        if "\x00" in params.get(name, ""):
            raise InvalidParameter(f"{name} must not contain NUL")
    return InboxQuery(
        limit=limit_param(request, DEFAULT_LIMIT, MAX_LIMIT),
        before=before,
        after=after,
        unread=_flag(request, "unread"),
        type=params.get("type") or None,
        topic=params.get("topic") or None,
        archived=_flag(request, "archived") or False,
    )


async def list_inbox(request: Request) -> Response:
    caller = await principal(request)
    body, etag = await services(request).inbox.page(caller.sub, _query(request))
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return json_response(body, headers=headers)


async def unread_count(request: Request) -> Response:
    caller = await principal(request)
    return json_response(await services(request).inbox.counts(caller.sub))


async def get_one(request: Request) -> Response:
    caller = await principal(request)
    return json_response(await services(request).inbox.get(caller.sub, path_id(request)))


async def _change(request: Request, action: StateAction) -> Response:
    caller = await principal(request)
    notification_id = path_id(request)
    inbox = services(request).inbox
    await inbox.change(caller.sub, notification_id, action)
    if action == "delete":
        return Response(status_code=204)
    return json_response(await inbox.get(caller.sub, notification_id))


async def _change_all(request: Request, action: BulkAction) -> Response:
    caller = await principal(request)
    body = await read_json(request, UpToBody, optional=True)
    up_to = parse_cursor(body.up_to)
    return json_response(await services(request).inbox.change_all(caller.sub, action, up_to))


def _single(action: StateAction) -> Route:
    async def endpoint(request: Request) -> Response:
        return await _change(request, action)

    return Route(f"/api/notifications/{{id}}/{action}", endpoint, methods=["POST"])


def _bulk(action: BulkAction) -> Route:
    async def endpoint(request: Request) -> Response:
        return await _change_all(request, action)

    return Route(f"/api/notifications/{action}-all", endpoint, methods=["POST"])


async def delete_one(request: Request) -> Response:
    return await _change(request, "delete")


routes = [
    Route("/api/notifications", publish, methods=["POST"]),
    Route("/api/notifications", list_inbox, methods=["GET"]),
    Route("/api/notifications/unread-count", unread_count, methods=["GET"]),
    *(_bulk(action) for action in ("read", "seen", "archive")),
    Route("/api/notifications/{id}", get_one, methods=["GET"]),
    Route("/api/notifications/{id}", delete_one, methods=["DELETE"]),
    *(_single(action) for action in ("read", "unread", "seen", "archive", "unarchive")),
]
