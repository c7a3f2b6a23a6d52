"""Templates (admin scope): per channel and locale, in sandboxed Jinja2. A template is checked
when it is stored (every field must compile) and rendered whole when it is used."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server import codec
from herald_server.api._http import json_response, path_name, principal_with, read_json, services
from herald_server.api.schemas import PreviewBody, TemplateBody
from herald_server.errors import NotFound
from herald_server.models import SCOPE_ADMIN, Template, iso, now_ms

TEMPLATE_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _key(request: Request) -> str:
    return path_name(request, "key", TEMPLATE_KEY, "template")


def _out(template: Template) -> dict[str, Any]:
    return {
        **template.document,
        "key": template.key,
        "version": template.version,
        "updated_at": iso(template.updated_at),
        "updated_by": template.updated_by,
    }


async def _stored(request: Request, key: str) -> Template:
    found = await services(request).store.template(key)
    if found is None:
        raise NotFound(f"no template {key!r}")
    return found


async def list_templates(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    found = await services(request).store.templates()
    return json_response({"items": [_out(template) for template in found]})


async def get_template(request: Request) -> Response:
    await principal_with(request, SCOPE_ADMIN)
    return json_response(_out(await _stored(request, _key(request))))


async def put_template(request: Request) -> Response:
    caller = await principal_with(request, SCOPE_ADMIN)
    key = _key(request)
    body = await read_json(request, TemplateBody)
    # Parts left out are dropped rather than stored as nulls.
    document: dict[str, Any] = codec.loads(msgspec.json.encode(body))
    for parts in document["locales"].values():
        for channel in [channel for channel, fields in parts.items() if fields is None]:
            del parts[channel]
        for fields in parts.values():
            for name in [name for name, source in fields.items() if source is None]:
                del fields[name]
    await services(request).renderer.check(document)
    stored, created = await services(request).store.put_template(
        key, document, caller.sub, now_ms()
    )
    await services(request).audit.record(
        caller.sub, "template.put", key, {"version": stored.version}
    )
    return json_response(_out(stored), 201 if created else 200)


async def delete_template(request: Request) -> Response:
    caller = await principal_with(request, SCOPE_ADMIN)
    key = _key(request)
    if not await services(request).store.delete_template(key):
        raise NotFound(f"no template {key!r}")
    await services(request).audit.record(caller.sub, "template.delete", key)
    return Response(status_code=204)


async def preview(request: Request) -> Response:
    """Render with these variables, as a publish would, without sending anything."""
    await principal_with(request, SCOPE_ADMIN)
    template = await _stored(request, _key(request))
    body = await read_json(request, PreviewBody, optional=True)
    rendered = await services(request).renderer.render(template, body.vars, body.locale)
    locales = codec.loads(rendered.content)["locales"]
    return json_response({"title": rendered.title, "body": rendered.body, "locales": locales})


routes = [
    Route("/api/templates", list_templates, methods=["GET"]),
    Route("/api/templates/{key}", get_template, methods=["GET"]),
    Route("/api/templates/{key}", put_template, methods=["PUT"]),
    Route("/api/templates/{key}", delete_template, methods=["DELETE"]),
    Route("/api/templates/{key}/preview", preview, methods=["POST"]),
]
