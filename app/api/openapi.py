"""GET /openapi.json: the contract as OpenAPI 3.1, its operations built from the table in
`herald_server.api.operations` and its schemas generated from the Structs in
`herald_server.api.schemas`.

GET /docs, the page that renders it for people, is served beside the demo and admin pages
(herald_server.main), from files vendored under static/: nothing is fetched from elsewhere.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server import __version__
from herald_server.api._http import json_response
from herald_server.api.operation import REF, describe
from herald_server.api.operations import OPERATIONS, TAGS
from herald_server.api.schemas import SCHEMAS

DESCRIPTION = (
    "Herald's HTTP API. Backends publish with a bearer token that has the publish scope;"
    " browsers read their inbox with their user's token and receive events over /api/stream"
    " (Server-Sent Events) or /api/ws (WebSocket). Every error is an application/problem+json"
    " document whose `type` ends in a stable slug."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT your backend mints for the user: `sub` is the user id, `scope`"
        " may hold notifications:publish and notifications:admin",
    },
    "streamToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A stream token from POST /api/stream/token: opens streams, nothing else",
    },
}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = describe(operation)
    return paths


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(SCHEMAS, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Herald", "version": __version__, "description": DESCRIPTION},
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearer": []}],
        "paths": _paths(),
    }


_DOCUMENT = document()


async def openapi(request: Request) -> Response:
    return json_response(_DOCUMENT)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
