"""What every JSON endpoint needs: the caller, a bounded and validated body, and responses."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from herald_server import codec
from herald_server.auth import bearer
from herald_server.core.params import parse_id, parse_limit, whole_number
from herald_server.errors import (
    Forbidden,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from herald_server.models import Principal
from herald_server.services import services_of as services

T = TypeVar("T")
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
# As long as a token's `sub` may be (herald_server.auth).
MAX_USER_CHARS = 200


__all__ = ["services"]


async def principal(conn: HTTPConnection) -> Principal:
    token = bearer(conn.headers.get("authorization"))
    if token is None:
        raise Unauthenticated("send Authorization: Bearer <token>")
    return await services(conn).auth.authenticate(token)


async def principal_with(conn: HTTPConnection, scope: str) -> Principal:
    caller = await principal(conn)
    if not caller.can(scope):
        raise Forbidden(f"this needs the {scope} scope")
    return caller


def path_user(request: Request) -> str:
    """A user id from the path; one no token could name is simply not found."""
    raw: str = request.path_params["user"]
    if not 0 < len(raw) <= MAX_USER_CHARS or not raw.isprintable():
        raise NotFound("no such user")
    return raw


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused early if it announces or reaches more than `max_bytes`."""
    declared = whole_number(request.headers.get("content-length"))
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"the body has {declared} bytes; at most {max_bytes}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, kind: type[T], optional: bool = False) -> T:
    """Decode and validate the body as `kind`; an absent body is `kind()` when optional."""
    raw = await read_body(request, services(request).settings.max_body_bytes)
    if not raw.strip() and optional:
        return kind()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(f"Content-Type {media or '(none)'} is not application/json")
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    depth = services(request).settings.max_json_depth
    try:
        result: T = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(str(exc)) from None
    except RecursionError:
        raise ValidationFailed(f"the body nests more than {depth} levels deep") from None
    if codec.nests_deeper_than(raw, result, depth):
        raise ValidationFailed(f"the body nests more than {depth} levels deep")
    return result


def limit_param(request: Request, default: int, maximum: int) -> int:
    return parse_limit(request.query_params.get("limit"), default, maximum)


def path_name(request: Request, param: str, pattern: re.Pattern[str], what: str) -> str:
    """A name from the path; one that does not fit `pattern` is simply not found."""
    name: str = request.path_params[param]
    if not pattern.fullmatch(name):
        raise NotFound(f"no {what} {name[:100]!r}")
    return name


def path_id(request: Request, what: str = "notification") -> int:
    """A numeric id from the path; anything malformed is simply not found."""
    return parse_id(request.path_params["id"], what)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = content if isinstance(content, bytes) else codec.dumps(content)
    return Response(body, status, headers, media_type="application/json")


def problem_response(problem: Problem) -> Response:
    return Response(
        codec.dumps(problem.document()),
        problem.status,
        problem.headers,
        media_type="application/problem+json",
    )
