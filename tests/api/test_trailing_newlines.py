"""A name that ends in a newline is not the name without it.

Python's `$` matches before a final newline, and msgspec matches patterns with `re.search`, so
`^…$` alone let "alice\\n" pass as a user id and "deploys\\n" as a topic. Each case here was
accepted before `herald_server.api.schemas.END` and the `fullmatch` of path names.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, inbox_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "body",
    [
        {"recipients": ["alice\n"], "title": "hi"},
        {"topic": "deploys\n", "title": "hi"},
        {"recipients": ["alice"], "title": "hi", "type": "build\n"},
        # Without the fix this is an unknown template, not a malformed key.
        {"recipients": ["alice"], "template": "welcome\n"},
    ],
    ids=["recipient", "topic", "type", "template"],
)
async def test_a_publish_naming_something_with_a_trailing_newline_is_a_422(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    body: dict[str, Any],
) -> None:
    response = await client.post("/api/notifications", headers=publisher, json=body)
    assert_problem(response, 422, "validation-failed")
    assert (await inbox_of(client, alice))["items"] == []


async def test_a_cursor_with_a_trailing_newline_is_a_422(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications/read-all", headers=alice, json={"up_to": "5\n"}
    )
    assert_problem(response, 422, "validation-failed")


async def test_a_topic_path_with_a_trailing_newline_is_not_found(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.put("/api/topics/deploys%0A/subscription", headers=alice)
    assert_problem(response, 404, "not-found")
    listed = await client.get("/api/topics", headers=alice)
    assert listed.json()["items"] == []
