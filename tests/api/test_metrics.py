"""/metrics: Prometheus text with the process's connections, stream events, bus traffic and
lag, loop crashes, memory, open files and CPU; /metrics/cluster: the store's figures, once;
HERALD_METRICS_PORT moves both to a port of their own; /readyz and a loop that keeps crashing.
Every document is read with prometheus-client's own parser."""

from __future__ import annotations

import platform
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis.asyncio import Redis

from herald_server import __version__
from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.supervision import CRASHES_UNREADY
from tests.conftest import REDIS_URL, run_server
from tests.helpers import assert_problem, eventually, free_port, metric, open_stream, publish

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[str, list[Sample]]:
    """Metric family name → its samples, as Prometheus would read the document."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(text: str, sample_name: str, **labels: str) -> float:
    found = metric(text, sample_name, **labels)
    assert found is not None, f"{sample_name}{labels} not in the document"
    return found


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_connections_events_and_resume_replays(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"])
    async with open_stream(client, alice, last_event_id="0") as stream:
        await stream.next_of("notification")
        await publish(client, publisher, recipients=["alice"])
        await stream.next_of("notification")
        text = await scrape(client)
    assert value(text, "herald_connections") == 1
    assert value(text, "herald_stream_events_total") >= 3
    assert value(text, "herald_resume_replays_total") >= 1
    assert value(text, "herald_bus_events_out_total") >= 1
    assert value(text, "herald_bus_events_in_total") >= 1


async def test_the_bus_lag_is_a_histogram_in_seconds_of_every_received_event(
    client: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    """Publishes until the bus has handed three back (on Redis, the listener reads only what
    comes after it started, so one published before it did is never received)."""
    text = ""

    async def three_received() -> bool:
        nonlocal text
        await publish(client, publisher, recipients=["alice"])
        text = await scrape(client)
        return value(text, "herald_bus_events_in_total") >= 3

    await eventually(three_received)

    received = value(text, "herald_bus_events_in_total")
    assert received >= 3
    assert value(text, "herald_bus_lag_seconds_count") == received
    assert value(text, "herald_bus_lag_seconds_bucket", le="+Inf") == received
    # Cumulative buckets, as Prometheus's histogram_quantile needs them.
    buckets = [
        s.value for s in samples(text)["herald_bus_lag_seconds"] if s.name.endswith("bucket")
    ]
    assert buckets == sorted(buckets)
    assert 0 <= value(text, "herald_bus_lag_seconds_sum") < received * 5
    assert "herald_bus_lag_milliseconds" not in samples(text)


async def test_metrics_report_the_process_memory_files_cpu_and_build(
    client: httpx.AsyncClient,
) -> None:
    text = await scrape(client)

    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "process_open_fds") > 0
    assert value(text, "process_max_fds") >= value(text, "process_open_fds")
    assert value(text, "process_cpu_seconds_total") > 0
    build = {"version": __version__, "python": platform.python_version()}
    assert value(text, "herald_build_info", **build) == 1


async def test_the_cluster_backlog_is_served_once_on_its_own_path_not_per_process(
    client: httpx.AsyncClient,
) -> None:
    process = samples(await scrape(client))
    cluster = samples(await scrape(client, "/metrics/cluster"))

    assert {"herald_deliveries", "herald_delivery_queue_depth"} <= set(cluster)
    assert not {"herald_deliveries", "herald_delivery_queue_depth"} & set(process)
    assert "herald_connections" not in cluster
    assert "process_resident_memory_bytes" not in cluster


async def test_a_metrics_port_serves_the_metrics_and_the_api_port_stops(
    settings: Settings,
) -> None:
    port = free_port()
    async with (
        run_server(create_app(replace(settings, metrics_port=port))) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as internal,
    ):
        on_api = await client.get("/metrics")
        on_api_cluster = await client.get("/metrics/cluster")
        process = await scrape(internal)
        cluster = await scrape(internal, "/metrics/cluster")
    assert_problem(on_api, 404, "not-found")
    assert_problem(on_api_cluster, 404, "not-found")
    assert value(process, "herald_connections") == 0
    assert "herald_deliveries" in samples(cluster)
    # The node stopped: so did its metrics server.
    async with httpx.AsyncClient(timeout=5) as after:
        with pytest.raises(httpx.ConnectError):
            await after.get(f"http://127.0.0.1:{port}/metrics")


async def poison_the_bus(client: httpx.AsyncClient, settings: Settings, crashes: int) -> None:
    """Put entries the bus listener cannot read (no publish time) on the live stream until it
    has crashed `crashes` times: the listener restarts from the stream's tail, so an entry
    added while it is down is never read, and one is added per look."""
    redis = Redis.from_url(REDIS_URL)

    async def crashed_enough() -> bool:
        await redis.xadd(f"{settings.redis_prefix}:live", {"k": "notification"})
        text = await scrape(client)
        return value(text, "herald_loop_crashes_total", loop="bus listener") >= crashes

    try:
        await eventually(crashed_enough)
    finally:
        await redis.aclose()


async def test_readyz_says_unavailable_while_the_bus_listener_keeps_crashing(
    production_settings: Settings,
) -> None:
    async with (
        run_server(create_app(production_settings)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
    ):
        before = await client.get("/readyz")
        await poison_the_bus(client, production_settings, CRASHES_UNREADY)
        after = await client.get("/readyz")

    assert before.status_code == 200
    assert before.json()["loops"] == {"bus listener": "up", "scheduler": "up"}
    assert after.status_code == 503
    assert after.json() == {
        "status": "unavailable",
        "store": "up",
        "bus": "up",
        "loops": {"bus listener": "crashing", "scheduler": "up"},
    }


async def test_one_crash_is_a_hiccup_that_leaves_the_node_ready(
    production_settings: Settings,
) -> None:
    async with (
        run_server(create_app(production_settings)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=10) as client,
    ):
        await poison_the_bus(client, production_settings, 1)
        ready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["loops"]["bus listener"] == "up"
