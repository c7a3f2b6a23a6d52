"""Hole 2: one user stalls channel delivery for everyone, and amplifies traffic.

The attacker, mallory, registers webhooks at an endpoint that accepts connections and never
answers, then sends to herself in a loop. Before the fix she could register any number (one
self-send, one POST per webhook), and her attempts filled every worker slot, each for the
whole provider timeout, so another user's webhook waited behind her backlog. Now her
webhooks and push subscriptions are capped, and at most a few of her deliveries are in
flight at once across the workers: the victim's webhook keeps the latency it has without her.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.models import SCOPE_ADMIN
from tests.conftest import auth
from tests.delivery.conftest import Node, Providers, publish, register_webhook
from tests.helpers import assert_problem, eventually, silent_port
from tests.security.delivery_node import delivery_node

pytestmark = pytest.mark.anyio

# Short, so the attacker's attempts cycle (time out, retry) while the victim is measured.
PROVIDER_TIMEOUT = 1.0
# The attacker sends to herself this often: rarely enough that routing her notifications is
# cheap, so what is measured is the workers' slots, yet each second she asks for far more slot
# time than the workers have (2 sends x 10 webhooks x up to 4 tries of a second each).
SELF_SEND_INTERVAL = 0.5
# Victim deliveries timed in each phase; the median is compared.
SAMPLES = 7
# The victim's p50 with the attacker may be at most this many times its p50 without.
MAX_SLOWDOWN = 3.0
# Registrations the attacker fires at once: well past the cap, to race it.
CONCURRENT_REGISTRATIONS = 25
UNSETTLED = ("held", "pending", "sending")


async def victim_latency(node: Node, providers: Providers) -> float:
    """The median time from alice's publish to her webhook's arrival at her receiver."""
    timings = []
    for _ in range(SAMPLES):
        arrived = len(providers.webhooks.unique)
        started = time.monotonic()
        await publish(node, ["alice"], title="for alice")
        await providers.webhooks.wait_for(arrived + 1, timeout=20)
        timings.append(time.monotonic() - started)
    return statistics.median(timings)


async def register_at(node: Node, url: str, user: str) -> int:
    response = await node.client.post(
        "/api/webhooks", headers=auth(node.settings, user), json={"url": url}
    )
    return response.status_code


async def self_send_forever(node: Node) -> None:
    """Mallory sends to herself in a loop, paced (and slowed further when Herald says 429)."""
    mallory = auth(node.settings, "mallory")
    body = {"recipients": ["mallory"], "title": "to myself"}
    while True:
        response = await node.client.post("/api/notifications", headers=mallory, json=body)
        retry_after = float(response.headers.get("retry-after", "0"))
        await anyio.sleep(max(SELF_SEND_INTERVAL, retry_after))


async def deliveries_of(node: Node, user: str, status: str) -> int:
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    page = await node.client.get(
        "/api/admin/deliveries",
        headers=admin,
        params={"user": user, "status": status, "limit": "100"},
    )
    assert page.status_code == 200, page.text
    return len(page.json()["items"])


async def test_a_users_dead_webhooks_do_not_delay_another_users_webhook(
    settings: Settings, tmp_path: Path
) -> None:
    async with delivery_node(settings, tmp_path, provider_timeout_seconds=PROVIDER_TIMEOUT) as (
        node,
        providers,
    ):
        await register_webhook(node, providers, "alice")
        without_attacker = await victim_latency(node, providers)

        with silent_port() as port:
            cap = node.settings.max_webhooks_per_user
            for hook in range(cap):
                assert await register_at(node, f"http://127.0.0.1:{port}/{hook}", "mallory") == 201
            async with anyio.create_task_group() as attacker:
                attacker.start_soon(self_send_forever, node)
                limit = node.settings.max_deliveries_in_flight_per_user
                backlog = 2 * node.settings.worker_concurrency

                async def backlog_built() -> bool:
                    return await deliveries_of(node, "mallory", "pending") >= backlog

                await eventually(backlog_built)
                with_attacker = await victim_latency(node, providers)
                held = await deliveries_of(node, "mallory", "sending")
                attacker.cancel_scope.cancel()

        assert with_attacker < MAX_SLOWDOWN * without_attacker, (without_attacker, with_attacker)
        assert held <= limit


async def test_webhooks_past_the_cap_are_a_422_even_when_registered_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with delivery_node(settings, tmp_path) as (node, providers):
        cap = node.settings.max_webhooks_per_user
        answers: list[int] = []

        async def one(number: int) -> None:
            answers.append(await register_at(node, providers.webhooks.url(f"m{number}"), "mallory"))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                for number in range(CONCURRENT_REGISTRATIONS):
                    tasks.start_soon(one, number)
        assert sorted(answers) == [201] * cap + [422] * (CONCURRENT_REGISTRATIONS - cap)
        mallory = auth(node.settings, "mallory")
        listed = (await node.client.get("/api/webhooks", headers=mallory)).json()["items"]
        assert len(listed) == cap
        refused = await node.client.post(
            "/api/webhooks", headers=mallory, json={"url": providers.webhooks.url("more")}
        )
        assert_problem(refused, 422, "too-many-targets")
        # An admin registering one for her is held to the same cap.
        admin = auth(node.settings, "ops", SCOPE_ADMIN)
        body = {"url": providers.webhooks.url("more"), "user": "mallory"}
        by_admin = await node.client.post("/api/webhooks", headers=admin, json=body)
        assert_problem(by_admin, 422, "too-many-targets")
        # One self-send now makes at most `cap` requests.
        await publish(node, ["mallory"], title="amplified?")
        await eventually(lambda: _settled(node, "mallory"))
        assert sum(providers.webhooks.hits.values()) == cap


async def _settled(node: Node, user: str) -> bool:
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    page = await node.client.get("/api/admin/deliveries", headers=admin, params={"user": user})
    items = page.json()["items"]
    return bool(items) and all(item["status"] not in UNSETTLED for item in items)


async def test_push_subscriptions_past_the_cap_are_a_422_even_when_registered_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with delivery_node(settings, tmp_path) as (node, providers):
        cap = node.settings.max_push_subscriptions_per_user
        mallory = auth(node.settings, "mallory")
        key = (await node.client.get("/api/channels", headers=mallory)).json()["push_public_key"]
        browsers = [providers.push.subscribe(key) for _ in range(CONCURRENT_REGISTRATIONS)]
        answers: list[int] = []

        async def one(client: httpx.AsyncClient, browser: dict[str, object]) -> None:
            response = await client.post("/api/push-subscriptions", headers=mallory, json=browser)
            answers.append(response.status_code)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                for browser in browsers:
                    tasks.start_soon(one, node.client, browser)
        assert sorted(answers) == [201] * cap + [422] * (CONCURRENT_REGISTRATIONS - cap)
        listed = (await node.client.get("/api/push-subscriptions", headers=mallory)).json()
        stored = [item["endpoint"] for item in listed["items"]]
        assert len(stored) == cap
        # Re-registering one she holds (fresh keys) is not a new one: still fine at the cap.
        again = next(browser for browser in browsers if browser["endpoint"] == stored[0])
        response = await node.client.post("/api/push-subscriptions", headers=mallory, json=again)
        assert response.status_code == 200, response.text
