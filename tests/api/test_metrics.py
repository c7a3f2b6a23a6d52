"""/metrics: Prometheus text with the node's connections, stream events, bus and resume figures."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import open_stream, publish

pytestmark = pytest.mark.anyio


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_count_connections_events_and_resume_replays(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"])
    async with open_stream(client, alice, last_event_id="0") as stream:
        await stream.next_of("notification")
        await publish(client, publisher, recipients=["alice"])
        await stream.next_of("notification")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _value(text, "herald_connections") == 1
    assert _value(text, "herald_stream_events_total") >= 3
    assert _value(text, "herald_resume_replays_total") >= 1
    assert _value(text, "herald_bus_events_out_total") >= 1
    assert _value(text, "herald_bus_events_in_total") >= 1
    assert _value(text, "herald_bus_lag_milliseconds") >= 0
