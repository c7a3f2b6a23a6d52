"""Where a user's email and SMS go: set by a trusted backend (the publish scope), never by
the user, so nobody can point Herald's email at someone else's inbox."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import (
    json_response,
    path_user,
    principal,
    principal_with,
    read_json,
    services,
)
from herald_server.api.schemas import ContactBody
from herald_server.errors import Forbidden, NotFound, ValidationFailed
from herald_server.models import SCOPE_PUBLISH, Contact, now_ms


async def get_contact(request: Request) -> Response:
    caller = await principal(request)
    user = path_user(request)
    if user != caller.sub and not caller.can(SCOPE_PUBLISH):
        raise Forbidden(f"another user's contact needs the {SCOPE_PUBLISH} scope")
    contact = await services(request).store.contact(user)
    return json_response({"user": user, "email": contact.email, "phone": contact.phone})


async def put_contact(request: Request) -> Response:
    await principal_with(request, SCOPE_PUBLISH)
    user = path_user(request)
    body = await read_json(request, ContactBody)
    if body.email is None and body.phone is None:
        raise ValidationFailed("give email or phone (DELETE removes a contact)")
    created = await services(request).store.set_contact(
        user, Contact(body.email, body.phone), now_ms()
    )
    return json_response(
        {"user": user, "email": body.email, "phone": body.phone}, 201 if created else 200
    )


async def delete_contact(request: Request) -> Response:
    await principal_with(request, SCOPE_PUBLISH)
    user = path_user(request)
    if not await services(request).store.delete_contact(user):
        raise NotFound("no contact for this user")
    return Response(status_code=204)


routes = [
    Route("/api/contacts/{user}", get_contact, methods=["GET"]),
    Route("/api/contacts/{user}", put_contact, methods=["PUT"]),
    Route("/api/contacts/{user}", delete_contact, methods=["DELETE"]),
]
