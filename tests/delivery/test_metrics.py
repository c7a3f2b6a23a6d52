"""Per-channel delivery figures in /metrics: attempts by provider answer from the process that
made them, and the backlog (dead letters included) from the store; `herald worker
--metrics-port` serves the same for a worker process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from tests.cluster.harness import herald_worker, node_env
from tests.conftest import REDIS_URL, SECRET, auth, run_server
from tests.delivery.conftest import (
    BACKOFF,
    Node,
    Providers,
    call,
    delivery_settings,
    publish,
    register_webhook,
)
from tests.helpers import eventually, free_port, metric
from tests.servers.webhook import webhook_receiver

pytestmark = pytest.mark.anyio
# The webhook receiver answers each delivery after this long, so the others wait behind it...
HOLD = 1.0
# ...and the oldest waiting one is seen to have waited at least this long while it does.
WAITED = 0.2


async def test_metrics_count_attempts_per_channel_and_the_dead_letter_backlog(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await register_webhook(node, providers, "alice")
    providers.webhooks.fail_always("alice", 500)
    await publish(node, ["alice"])

    async def dead_lettered() -> bool:
        text = (await node.client.get("/metrics/cluster")).text
        return metric(text, "herald_deliveries", channel="webhook", status="failed") == 1

    await eventually(dead_lettered)
    text = (await node.client.get("/metrics")).text
    tries = len(BACKOFF) + 1
    assert (
        metric(text, "herald_delivery_attempts_total", channel="webhook", outcome="retry") == tries
    )


async def test_the_cluster_metrics_count_the_due_deliveries_no_worker_has_taken(
    providers: Providers, settings: Settings, tmp_path: Path
) -> None:
    """One attempt at a time, each held by the provider: the others wait, and the oldest
    one's wait grows until the worker gets to it."""
    configured = replace(delivery_settings(settings, providers, tmp_path), worker_concurrency=1)
    app = create_app(configured)
    async with (
        run_server(app) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        node = Node(client, configured, app)
        await register_webhook(node, providers, "alice")
        providers.webhooks.hold("alice", HOLD)
        for _ in range(3):
            await publish(node, ["alice"])

        async def two_waiting_a_while() -> bool:
            waiting = (await client.get("/metrics/cluster")).text
            age = metric(waiting, "herald_delivery_queue_oldest_age_seconds") or 0
            return metric(waiting, "herald_delivery_queue_depth") == 2 and age >= WAITED

        await eventually(two_waiting_a_while)
        await providers.webhooks.wait_for(3)

        async def none_waiting() -> bool:
            text = (await client.get("/metrics/cluster")).text
            return metric(text, "herald_delivery_queue_depth") == 0

        await eventually(none_waiting)
        drained = (await client.get("/metrics/cluster")).text
    assert metric(drained, "herald_delivery_queue_oldest_age_seconds") == 0


async def test_a_worker_process_on_sqlite_delivers_and_serves_its_metrics(tmp_path: Path) -> None:
    """`herald worker` beside `herald serve` on one SQLite file: the worker's own in-process
    queue is fed from the store, so no Redis is needed for a separate worker."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/herald.db",
        jwt_secret=SECRET,
        dev_secret_file=str(tmp_path / "secret"),
        allow_private_targets=True,
        in_process_worker=False,
    )
    env = node_env(settings, REDIS_URL)
    del env["REDIS_URL"]
    port = free_port()
    env.update(
        HERALD_ALLOW_PRIVATE_TARGETS="true",
        HERALD_DISPATCH_INTERVAL="0.1",
        HERALD_DEV_VAPID_FILE=str(tmp_path / "vapid"),
    )
    async with (
        webhook_receiver() as receiver,
        run_server(create_app(settings)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
    ):
        hook = await call(
            client,
            "POST",
            "/api/webhooks",
            auth(settings, "alice"),
            201,
            {"url": receiver.url("alice")},
        )
        receiver.set_secret("alice", hook["secret"])
        publisher = auth(settings, "shop", SCOPE_PUBLISH)
        body = {"recipients": ["alice"], "title": "From a worker process"}
        await call(client, "POST", "/api/notifications", publisher, 202, body)
        argv = ("--metrics-port", str(port))
        with herald_worker(env, tmp_path / "worker.log", argv):
            await receiver.wait_for(1, timeout=30)

            async def counted() -> bool:
                try:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    return False
                labels = {"channel": "webhook", "outcome": "delivered"}
                return metric(text, "herald_delivery_attempts_total", **labels) == 1

            await eventually(counted)
    (arrival,) = receiver.unique.values()
    assert arrival.payload["data"]["title"] == "From a worker process"
