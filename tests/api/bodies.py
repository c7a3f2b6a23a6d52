"""Bad request bodies every JSON endpoint refuses alike, and the problem each one earns.

Each case is built from a body the endpoint would accept, so an "unknown field" case differs
from a good request by that one field only, and a refusal cannot come from something else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from herald_server import codec

# Above HERALD_MAX_BODY_BYTES (256 KB by default), valid JSON apart from its size.
OVERSIZED_BYTES = 300 * 1024
JSON = {"Content-Type": "application/json"}
MALFORMED = (
    "truncated",
    "not-json",
    "unknown-field",
    "not-an-object",
    "text-plain",
    "no-content-type",
    "oversized",
)


@dataclass(frozen=True)
class Malformed:
    content: bytes
    headers: dict[str, str]
    status: int
    slug: str


def malformed(kind: str, valid: dict[str, Any]) -> Malformed:
    good = codec.dumps(valid)
    if kind == "truncated":
        return Malformed(good[:-1], JSON, 400, "malformed-body")
    if kind == "not-json":
        return Malformed(b"muted=true", JSON, 400, "malformed-body")
    if kind == "unknown-field":
        return Malformed(codec.dumps({**valid, "unexpected": True}), JSON, 422, "validation-failed")
    if kind == "not-an-object":
        return Malformed(codec.dumps([valid]), JSON, 422, "validation-failed")
    if kind == "text-plain":
        return Malformed(good, {"Content-Type": "text/plain"}, 415, "unsupported-media-type")
    if kind == "no-content-type":
        return Malformed(good, {}, 415, "unsupported-media-type")
    if kind == "oversized":
        padded = codec.dumps({**valid, "padding": "x" * OVERSIZED_BYTES})
        return Malformed(padded, JSON, 413, "payload-too-large")
    raise AssertionError(kind)


async def send_malformed(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    case: Malformed,
) -> httpx.Response:
    return await client.request(
        method, path, headers={**headers, **case.headers}, content=case.content
    )


async def get_json(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str
) -> Any:
    """A 200 JSON answer's document."""
    response = await client.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()
