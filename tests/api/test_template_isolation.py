"""A template that spins is the publisher's 422 after HERALD_TEMPLATE_TIMEOUT_SECONDS, nothing
is stored, and the node answers other requests meanwhile: templates render in a child
process, not on the node's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import auth, run_server
from tests.helpers import assert_problem, inbox_of

pytestmark = pytest.mark.anyio

SPINNING = {
    "default_locale": "en",
    "locales": {
        "en": {
            "in_app": {
                "title": "{% for a in range(100000) %}{% for b in range(100000) %}"
                "{% endfor %}{% endfor %}never"
            }
        }
    },
}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = replace(settings, template_timeout_seconds=1.0)
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        yield http


async def test_a_spinning_template_is_refused_while_the_node_goes_on_answering(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = auth(settings, "ops", SCOPE_ADMIN)
    stored = await client.put("/api/templates/spinner", json=SPINNING, headers=admin)
    assert stored.status_code == 201, stored.text
    publisher = auth(settings, "shop", SCOPE_PUBLISH)
    order: list[str] = []

    async def publish() -> None:
        body = {"recipients": ["alice"], "template": "spinner"}
        response = await client.post("/api/notifications", json=body, headers=publisher)
        assert_problem(response, 422, "template-error")
        assert "longer than 1 s" in response.json()["detail"]
        order.append("publish refused")

    async with anyio.create_task_group() as requests:
        requests.start_soon(publish)
        await anyio.sleep(0.2)
        assert (await client.get("/healthz")).status_code == 200
        order.append("health answered")

    assert order == ["health answered", "publish refused"]
    assert (await inbox_of(client, auth(settings, "alice")))["items"] == []
