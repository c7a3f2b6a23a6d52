"""Per-channel delivery figures in /metrics: attempts by provider answer from the process that
made them, and the backlog (dead letters included) from the store; `herald worker
--metrics-port` serves the same for a worker process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from tests.cluster.harness import herald_worker, node_env
from tests.conftest import REDIS_URL, SECRET, auth, run_server
from tests.delivery.conftest import BACKOFF, Node, Providers, call, publish, register_webhook
from tests.helpers import eventually, free_port
from tests.servers.webhook import webhook_receiver

pytestmark = pytest.mark.anyio


def sample(text: str, name: str, **labels: str) -> float | None:
    wanted = name + "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


async def test_metrics_count_attempts_per_channel_and_the_dead_letter_backlog(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await register_webhook(node, providers, "alice")
    providers.webhooks.fail_always("alice", 500)
    await publish(node, ["alice"])
    text = ""

    async def dead_lettered() -> bool:
        nonlocal text
        text = (await node.client.get("/metrics")).text
        return sample(text, "herald_deliveries", channel="webhook", status="failed") == 1

    await eventually(dead_lettered)
    tries = len(BACKOFF) + 1
    assert (
        sample(text, "herald_delivery_attempts_total", channel="webhook", outcome="retry") == tries
    )


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
                return sample(text, "herald_delivery_attempts_total", **labels) == 1

            await eventually(counted)
    (arrival,) = receiver.unique.values()
    assert arrival.payload["data"]["title"] == "From a worker process"
