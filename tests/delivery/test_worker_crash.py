"""Acceptance 3: `herald worker` processes on PostgreSQL + Redis, one killed with SIGKILL while
it holds jobs: the other worker reclaims them (XAUTOCLAIM after the visibility timeout),
nothing is lost, and the idempotent receiver acts on each delivery once."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.cluster.harness import herald_worker, node_env
from tests.conftest import REDIS_URL, auth, run_server
from tests.delivery.conftest import call
from tests.helpers import eventually
from tests.servers.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.anyio

USERS = [f"user{n}" for n in range(24)]
VISIBILITY_SECONDS = 3
# Each webhook answers this long after it has acted: the killed worker dies mid-request.
HOLD_SECONDS = 1.5


def worker_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = node_env(settings, REDIS_URL)
    env.update(
        HERALD_DEV_VAPID_FILE=str(tmp_path / "vapid"),
        HERALD_ALLOW_PRIVATE_TARGETS="true",
        HERALD_JOB_VISIBILITY_SECONDS=str(VISIBILITY_SECONDS),
        HERALD_PROVIDER_TIMEOUT_SECONDS="2",
        HERALD_DELIVERY_BACKOFF="0.2,0.5,1",
        HERALD_DISPATCH_INTERVAL="0.1",
        HERALD_WORKER_CONCURRENCY="8",
        HERALD_MIGRATE_ON_START="false",
    )
    return env


async def register_hooks(
    client: httpx.AsyncClient, settings: Settings, receiver: WebhookReceiver
) -> None:
    for user in USERS:
        hook = await call(
            client, "POST", "/api/webhooks", auth(settings, user), 201, {"url": receiver.url(user)}
        )
        receiver.set_secret(user, hook["secret"])
        receiver.hold(user, HOLD_SECONDS)


async def test_a_worker_killed_holding_jobs_loses_none_and_sends_none_twice(
    production_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(production_settings, allow_private_targets=True, in_process_worker=False)
    env = worker_env(settings, tmp_path)
    admin = auth(settings, "ops", SCOPE_ADMIN)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    async with (
        webhook_receiver() as receiver,
        run_server(create_app(settings)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
    ):
        await register_hooks(client, settings, receiver)
        with herald_worker(env, log_a) as first:
            publisher = auth(settings, "shop", SCOPE_PUBLISH)
            for user in USERS:
                body = {"recipients": [user], "title": f"Receipt for {user}"}
                await call(client, "POST", "/api/notifications", publisher, 202, body)

            async def in_flight() -> bool:
                return sum(receiver.hits.values()) >= 4

            await eventually(in_flight, timeout=30)
            with herald_worker(env, log_b):
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
                killed_after = sum(receiver.hits.values())

                async def all_delivered() -> bool:
                    page = await call(client, "GET", "/api/admin/deliveries?limit=100", admin, 200)
                    statuses = [item["status"] for item in page["items"]]
                    return len(statuses) == len(USERS) and set(statuses) == {"delivered"}

                try:
                    await eventually(all_delivered, timeout=60)
                finally:
                    sys.stderr.write(log_b.read_text()[-3000:])

        page = await call(client, "GET", "/api/admin/deliveries?limit=100", admin, 200)
        interrupted = []
        for item in page["items"]:
            detail = await call(client, "GET", f"/api/admin/deliveries/{item['id']}", admin, 200)
            outcomes = [attempt["outcome"] for attempt in detail["history"]]
            if "interrupted" in outcomes:
                interrupted.append(outcomes)

    assert len(receiver.unique) == len(USERS)
    assert {arrival.name for arrival in receiver.unique.values()} == set(USERS)
    # The killed worker held jobs: their attempts were cut short and taken over.
    assert interrupted, "no attempt was interrupted: the kill came too late to test anything"
    assert all(outcomes[-1] == "delivered" for outcomes in interrupted)
    print(
        f"\nworker killed after {killed_after} requests; {len(interrupted)} interrupted"
        f" attempts taken over; {len(receiver.arrivals)} arrivals for"
        f" {len(receiver.unique)} deliveries"
    )


async def test_a_worker_stopped_with_sigterm_finishes_its_attempts_and_takes_no_more(
    production_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(production_settings, allow_private_targets=True, in_process_worker=False)
    env = worker_env(settings, tmp_path)
    admin = auth(settings, "ops", SCOPE_ADMIN)
    async with (
        webhook_receiver() as receiver,
        run_server(create_app(settings)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
    ):
        await register_hooks(client, settings, receiver)
        with herald_worker(env, tmp_path / "worker.log") as worker:
            publisher = auth(settings, "shop", SCOPE_PUBLISH)
            for user in USERS:
                body = {"recipients": [user], "title": f"Receipt for {user}"}
                await call(client, "POST", "/api/notifications", publisher, 202, body)

            async def in_flight() -> bool:
                return sum(receiver.hits.values()) >= 4

            await eventually(in_flight, timeout=30)
            worker.send_signal(signal.SIGTERM)
            with anyio.fail_after(HOLD_SECONDS + 10):
                while worker.poll() is None:  # noqa: ASYNC110 - a process, not an event
                    await anyio.sleep(0.05)
            stopped_after = sum(receiver.hits.values())

        page = await call(client, "GET", "/api/admin/deliveries?limit=100", admin, 200)
        statuses = sorted(item["status"] for item in page["items"])

    assert worker.returncode == 0
    # What it had started it finished; nothing was cut short, nothing new was taken.
    assert statuses.count("delivered") == stopped_after == len(receiver.unique)
    assert 4 <= stopped_after < len(USERS)
    assert set(statuses) == {"delivered", "pending"}
