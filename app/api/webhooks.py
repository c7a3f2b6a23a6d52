"""Webhooks: URLs that receive a user's notifications, signed per Standard Webhooks.

A user registers their own; an admin may register one for any user. The signing secret is
shown once, in the answer to the registration.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, path_id, principal, read_json, services
from herald_server.api.schemas import WebhookBody
from herald_server.core.targets import check_webhook_url, new_webhook_secret
from herald_server.errors import Forbidden, NotFound
from herald_server.models import SCOPE_ADMIN, Webhook, iso, now_ms


def _out(hook: Webhook, with_secret: bool = False) -> dict[str, object]:
    out: dict[str, object] = {
        "id": str(hook.id),
        "user": hook.user,
        "url": hook.url,
        "types": None if hook.types is None else list(hook.types),
        "created_at": iso(hook.created_at),
    }
    if with_secret:
        out["secret"] = hook.secret
    return out


async def register(request: Request) -> Response:
    caller = await principal(request)
    found = services(request)
    body = await read_json(request, WebhookBody)
    user = body.user or caller.sub
    if user != caller.sub and not caller.can(SCOPE_ADMIN):
        raise Forbidden(f"a webhook for another user needs the {SCOPE_ADMIN} scope")
    await check_webhook_url(body.url, allow_private=found.settings.allow_private_targets)
    types = None if body.types is None else tuple(dict.fromkeys(body.types))
    hook = await found.store.add_webhook(
        user,
        body.url,
        new_webhook_secret(),
        types,
        caller.sub,
        now_ms(),
        found.settings.max_webhooks_per_user,
    )
    if user != caller.sub:
        await found.audit.record(caller.sub, "webhook.create", str(hook.id), {"user": user})
    return json_response(_out(hook, with_secret=True), 201)


async def list_webhooks(request: Request) -> Response:
    """The caller's webhooks; an admin sees everyone's with `?all=true`."""
    caller = await principal(request)
    everyone = request.query_params.get("all") == "true"
    if everyone and not caller.can(SCOPE_ADMIN):
        raise Forbidden(f"everyone's webhooks need the {SCOPE_ADMIN} scope")
    hooks = await services(request).store.webhooks(None if everyone else caller.sub)
    return json_response({"items": [_out(hook) for hook in hooks]})


async def remove(request: Request) -> Response:
    caller = await principal(request)
    webhook_id = path_id(request, "webhook")
    owner = None if caller.can(SCOPE_ADMIN) else caller.sub
    if not await services(request).store.remove_webhook(webhook_id, owner):
        raise NotFound(f"webhook {webhook_id} not found")
    if owner is None:
        await services(request).audit.record(caller.sub, "webhook.delete", str(webhook_id))
    return Response(status_code=204)


routes = [
    Route("/api/webhooks", register, methods=["POST"]),
    Route("/api/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/webhooks/{id}", remove, methods=["DELETE"]),
]
