"""One API operation as the OpenAPI document describes it, and the parts every operation
shares (its problem answers, response headers, path parameters), derived from what the
operation does rather than written out for each.

An `Operation` says what a route is (its id, tag, texts, success answer) and what it touches
(a token, a scope, a body, the store, a rate limit); `describe` turns that into the operation
object, so that a new route documents its 401, 413 or 503 by saying what it does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

REF = "#/components/schemas/{name}"
# Who may call: anyone, any valid token, or a token with a scope (publish or admin).
Access = Literal["public", "user", "scoped"]

_ID_PATTERN = "^[0-9]{1,18}$"
STRING: dict[str, Any] = {"type": "string"}
CURSOR: dict[str, Any] = {"type": "string", "pattern": _ID_PATTERN}
BOOL: dict[str, Any] = {"type": "string", "enum": ["true", "false", "1", "0"]}
LIMIT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 100}

# Path parameters by name: a value that cannot name anything answers 404, never 400.
PATH_PARAMS: dict[str, tuple[dict[str, Any], str]] = {
    "id": ({"type": "string", "pattern": _ID_PATTERN}, "A numeric id, as a string"),
    "user": ({"type": "string", "minLength": 1, "maxLength": 200}, "A user id (a token's sub)"),
    "key": ({"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}, "A template key"),
    "type": (
        {"type": "string", "pattern": "^(\\*|[A-Za-z0-9_.:-]{1,100})$"},
        "A notification type, or * for every type",
    ),
    "name": ({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}, "A topic name"),
}

HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The page's version: send it back in If-None-Match for a 304",
        "schema": STRING,
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "Present on a replay: this Idempotency-Key was seen, nothing was sent again",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {"description": "The Bearer challenge", "schema": STRING},
}

PROBLEMS: dict[int, str] = {
    400: "The body is not JSON, or a parameter or cursor is invalid",
    401: "No valid bearer token",
    403: "The token lacks the scope this needs",
    404: "No such resource (a malformed id is not found either)",
    409: "The request conflicts with the current state",
    413: "The body is too large",
    415: "The body is not application/json",
    422: "The body does not match the schema, or breaks a rule the schema cannot say",
    429: "Too many requests or open streams: retry after Retry-After seconds",
    503: "The store is unavailable: retry after Retry-After seconds",
}
_PROBLEM_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
STATUS_TEXT = {
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    304: "Not Modified",
}


def json_content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=name)}}}


def param(
    name: str,
    description: str,
    schema: dict[str, Any] | None = None,
    where: str = "query",
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema or STRING,
    }


def headers(*names: str) -> dict[str, Any]:
    return {name: HEADERS[name] for name in names}


@dataclass(frozen=True)
class Operation:
    """A route as its callers see it. `schema` names the success body's Struct (None: no
    body, or `media` when it is not JSON); `also` lists other successes with the same body
    (200 for a PUT that replaced); `errors` the problems the route raises itself."""

    method: str
    path: str
    id: str
    tag: str
    summary: str
    description: str
    ok: int = 200
    schema: str | None = None
    also: tuple[int, ...] = ()
    access: Access = "user"
    body: str | None = None
    body_required: bool = True
    params: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = ()
    store: bool = True
    limited: bool = False
    ok_headers: tuple[str, ...] = ()
    media: str | None = None
    security: tuple[str, ...] | None = None
    other: Mapping[int, dict[str, Any]] = field(default_factory=dict)

    def problems(self) -> list[int]:
        """Every problem status the route can answer, from what it does."""
        found = set(self.errors)
        if self.access != "public":
            found.add(401)
        if self.access == "scoped":
            found.add(403)
        if self.body is not None:
            found |= {400, 413, 415, 422}
        if "{" in self.path:
            found.add(404)
        if self.store:
            found.add(503)
        if self.limited:
            found.add(429)
        return sorted(found)


def _success(op: Operation) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": STATUS_TEXT[op.ok]}
    if op.ok_headers:
        answer["headers"] = headers(*op.ok_headers)
    if op.schema is not None:
        answer["content"] = json_content(op.schema)
    elif op.media is not None:
        shape = {"type": "object"} if op.media == "application/json" else STRING
        answer["content"] = {op.media: {"schema": shape}}
    return answer


def problem(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": PROBLEMS[status],
        "content": {
            "application/problem+json": {"schema": {"$ref": REF.format(name="ProblemDoc")}}
        },
    }
    if status in _PROBLEM_HEADERS:
        answer["headers"] = headers(*_PROBLEM_HEADERS[status])
    return answer


def _responses(op: Operation) -> dict[str, Any]:
    success = _success(op)
    found: dict[int, dict[str, Any]] = {code: success for code in (op.ok, *op.also)}
    found |= {status: problem(status) for status in op.problems()}
    found |= op.other
    return {str(status): found[status] for status in sorted(found)}


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        param(name, PATH_PARAMS[name][1], PATH_PARAMS[name][0], "path", required=True)
        for name in re.findall(r"{(\w+)}", path)
    ]


def describe(op: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of `op`."""
    described: dict[str, Any] = {
        "operationId": op.id,
        "tags": [op.tag],
        "summary": op.summary,
        "description": op.description,
    }
    params = [*_path_params(op.path), *op.params]
    if params:
        described["parameters"] = params
    if op.body is not None:
        described["requestBody"] = {"required": op.body_required, "content": json_content(op.body)}
    if op.access == "public":
        described["security"] = []
    elif op.security is not None:
        described["security"] = [{scheme: []} for scheme in op.security]
    described["responses"] = _responses(op)
    return described
