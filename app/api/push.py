"""Web Push subscriptions: a browser registers where its pushes go and the keys to encrypt for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import json_response, principal, read_json, services
from herald_server.api.schemas import PushEndpointBody, PushSubscriptionBody
from herald_server.core.targets import check_push_subscription
from herald_server.errors import ChannelNotConfigured, NotFound
from herald_server.models import PushSubscriptionRecord, iso, now_ms


def _out(record: PushSubscriptionRecord) -> dict[str, str | None]:
    return {"id": str(record.id), "endpoint": record.endpoint, "created_at": iso(record.created_at)}


async def subscribe(request: Request) -> Response:
    caller = await principal(request)
    found = services(request)
    if "push" not in found.channels:
        raise ChannelNotConfigured("Web Push is off here (HERALD_VAPID_PRIVATE_KEY)")
    body = await read_json(request, PushSubscriptionBody)
    await check_push_subscription(
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        allow_private=found.settings.allow_private_targets,
    )
    record, created = await found.store.add_push_subscription(
        caller.sub,
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        now_ms(),
        found.settings.max_push_subscriptions_per_user,
    )
    return json_response(_out(record), 201 if created else 200)


async def unsubscribe(request: Request) -> Response:
    caller = await principal(request)
    body = await read_json(request, PushEndpointBody)
    if not await services(request).store.remove_push_subscription(caller.sub, body.endpoint):
        raise NotFound("no such subscription of yours")
    return Response(status_code=204)


async def list_subscriptions(request: Request) -> Response:
    caller = await principal(request)
    found = await services(request).store.push_subscriptions(caller.sub)
    return json_response({"items": [_out(record) for record in found]})


routes = [
    Route("/api/push-subscriptions", subscribe, methods=["POST"]),
    Route("/api/push-subscriptions", unsubscribe, methods=["DELETE"]),
    Route("/api/push-subscriptions", list_subscriptions, methods=["GET"]),
]
