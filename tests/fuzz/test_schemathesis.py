"""Schemathesis against the live `/openapi.json`: every operation but the endless streams,
fuzzed within a fixed budget, on both backends, as an admin and as a plain user.

Each run serves Herald with uvicorn in a thread of its own (schemathesis calls it with
`requests`, which would block a server sharing the test's event loop), seeds a little of
everything (notifications read and unread, a topic, a template, type defaults, a webhook whose
deliveries fail into the dead-letter queue) so that list answers carry items to check against
their schemas, then loads the schema from the server itself and runs each operation as a
subtest. Generation is derandomized, so CI sees the same requests on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from schemathesis import Case, CheckFunction
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN
from tests.conftest import LiveServer, auth, run_server, token_for
from tests.helpers import free_port

F = TypeVar("F", bound=Callable[..., Any])
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation, in each of the fuzzing and coverage phases. Four runs of ~50 operations stay
# within about a minute and a half on a 2-core machine.
MAX_EXAMPLES = 25
# The caller of each pass: the admin sees every operation work; a plain user gets 403s.
CALLERS = {"admin": ("ops", (SCOPE_ADMIN,)), "user": ("alice", ())}


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` reads `request.node._nodeid`, which pytest 9.2
    no longer has (its node ids moved to `_id`); without it every run dies with an
    AttributeError before the first request. Its renames only label the subtest reports."""
    request.node._nodeid = request.node.nodeid


@pytest.fixture(params=sorted(CALLERS))
def caller(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live_herald(settings: Settings, tmp_path: Path, anyio_backend: str) -> Iterator[LiveServer]:
    """Herald on a thread's event loop, so that this (synchronous) test can call it."""
    configured = replace(
        settings,
        # The seeded webhook points at a closed local port: two quick failed attempts, then
        # the dead-letter queue.
        allow_private_targets=True,
        in_process_worker=True,
        dispatch_interval=0.05,
        delivery_backoff=(0.01,),
    )
    with (
        start_blocking_portal(anyio_backend) as portal,
        portal.wrap_async_context_manager(run_server(create_app(configured))) as live,
    ):
        yield live


@pytest.fixture
def herald_schema(live_herald: LiveServer, settings: Settings, caller: str) -> BaseSchema:
    sub, scopes = CALLERS[caller]
    _seed(live_herald.url, settings, sub)
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_herald.url,
            "headers": {"Authorization": f"Bearer {token_for(settings, sub, *scopes)}"},
            # Every request bounded; a hung one fails the run instead of stalling CI.
            "request-timeout": 10,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # No .hypothesis/ directory in the working tree, and no replay of old
                # failures: every run is the same run.
                "database": "none",
            },
        }
    )
    return schemathesis.openapi.from_url(f"{live_herald.url}/openapi.json", config=config)


def _seed(base: str, settings: Settings, user: str) -> None:
    """A little of everything, so that list and detail answers have items to check."""
    admin = auth(settings, "seeder", SCOPE_ADMIN)
    mine = auth(settings, user)
    hook = f"http://127.0.0.1:{free_port()}/hook"
    template = {"locales": {"en": {"in_app": {"title": "Hi {{ name }}", "body": "é ✓ 🚀"}}}}
    steps: list[tuple[str, str, dict[str, str], Any, int]] = [
        ("PUT", "/api/templates/welcome", admin, template, 201),
        ("PUT", "/api/admin/types/alert", admin, {"channels": {"webhook": True}}, 201),
        ("PUT", "/api/topics/news/subscription", mine, None, 201),
        ("PUT", f"/api/contacts/{user}", admin, {"email": f"{user}@example.com"}, 201),
        ("POST", "/api/webhooks", mine, {"url": hook, "types": ["alert"]}, 201),
    ]
    publishes: list[dict[str, Any]] = [
        {"recipients": [user], "title": "plain"},
        {"recipients": [user], "title": "<b>x</b>\n", "body": "a\r\nb\u2028", "data": {"k": [1]}},
        {"recipients": [user], "type": "alert", "title": "alert", "priority": "urgent"},
        {"topic": "news", "title": "news", "collapse_key": "news"},
        {"recipients": [user], "template": "welcome", "vars": {"name": "Zoë"}},
        {"recipients": [user], "title": "later", "send_at": "2999-01-01T00:00:00Z"},
        {"recipients": [user], "title": "expiring", "expires_at": "2999-01-01T00:00:00Z"},
    ]
    steps += [("POST", "/api/notifications", admin, body, 202) for body in publishes]
    with httpx.Client(base_url=base, timeout=10) as http:
        for method, path, headers, body, status in steps:
            answer = http.request(method, path, headers=headers, json=body)
            assert answer.status_code == status, (method, path, answer.text)
        items = http.get("/api/notifications", headers=mine).json()["items"]
        for item, action in zip(items, ("read", "archive", "seen"), strict=False):
            assert http.post(f"/api/notifications/{item['id']}/{action}", headers=mine).is_success
        _await_dead_letter(http, admin)


def _await_dead_letter(http: httpx.Client, admin: dict[str, str]) -> None:
    """The alert's webhook delivery fails twice and lands in the dead-letter queue."""
    for _ in range(200):
        if http.get("/api/admin/dead-letters", headers=admin).json()["items"]:
            return
        http.get("/healthz")  # a short pause that needs no sleep: a round trip to the server
    raise AssertionError("no dead letter after 200 polls")


def _parametrize(lazy: Any) -> Callable[[F], F]:
    """`LazySchema.parametrize` returns a bare Callable; keep the test's own signature."""
    decorator: Callable[[F], F] = lazy.parametrize()
    return decorator


# The streams never end: tests/streams covers them, and the frames are fuzzed in
# test_properties.py.
schema = schemathesis.pytest.from_fixture("herald_schema").exclude(
    path_regex=r"^/api/(stream|ws)$", method="GET"
)


@_parametrize(schema)
def test_every_operation_answers_as_documented(case: Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)
