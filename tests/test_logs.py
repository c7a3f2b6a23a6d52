"""Logs: JSON lines with the request's id, an access line per request and per stream, and no
token, query string or body in any of them; `/metrics` has latency histograms per route."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from herald_server import codec
from herald_server.config import Settings
from herald_server.logs import JsonFormatter, RequestIdFilter, logging_config
from herald_server.models import SCOPE_PUBLISH
from tests.conftest import auth, token_for
from tests.helpers import open_stream, publish

pytestmark = pytest.mark.anyio


class Collected(logging.Handler):
    """What the node logs, formatted as it would be; the test's own HTTP client (httpx, in
    this process) logs full URLs, and is left out."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("httpx", "httpcore")):
            self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [codec.loads(line) for line in self.lines]


@pytest.fixture
def logs() -> Iterator[Collected]:
    handler = Collected()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def access_of(logs: Collected, request_id: str) -> dict[str, Any]:
    (entry,) = [
        entry
        for entry in logs.entries()
        if entry["logger"] == "herald.access" and entry.get("request_id") == request_id
    ]
    return entry


async def test_each_request_has_an_access_line_with_its_id_and_no_query_string(
    client: httpx.AsyncClient, logs: Collected, settings: Settings
) -> None:
    alice = auth(settings, "alice")
    answer = await client.get("/api/notifications?limit=5&after=0", headers=alice)
    mine = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    odd = await client.get("/healthz", headers={"X-Request-ID": "not a valid id!"})

    entry = access_of(logs, answer.headers["x-request-id"])
    assert entry["http"] == {
        "method": "GET",
        "path": "/api/notifications",
        "route": "/api/notifications",
        "status": 200,
        "duration_ms": entry["http"]["duration_ms"],
    }
    assert entry["level"] == "info"
    assert mine.headers["x-request-id"] == "trace-42"
    assert access_of(logs, "trace-42")["http"]["route"] == "/healthz"
    assert odd.headers["x-request-id"] != "not a valid id!"
    assert len(odd.headers["x-request-id"]) == 32


async def test_no_token_or_body_reaches_the_logs(
    client: httpx.AsyncClient, logs: Collected, settings: Settings
) -> None:
    marker = secrets.token_hex(12)
    publisher = auth(settings, "billing", SCOPE_PUBLISH)
    await publish(client, publisher, recipients=["alice"], title=marker, body=marker)
    stream_token = (await client.post("/api/stream/token", headers=auth(settings, "alice"))).json()[
        "token"
    ]
    async with open_stream(client, params={"token": stream_token}) as stream:
        await stream.next_of("unread_count")
    forged = token_for(settings, "alice")[:-4] + "AAAA"
    await client.get("/api/notifications", headers={"Authorization": f"Bearer {forged}"})
    await client.post("/api/notifications", content=b"{" + marker.encode(), headers=publisher)

    written = "\n".join(logs.lines)
    assert "/api/stream" in written  # the stream was logged, when it ended
    for secret in (marker, stream_token, forged, publisher["Authorization"].split()[1]):
        assert secret not in written


def test_a_json_line_carries_the_fields_and_the_exception() -> None:
    record = logging.LogRecord("herald.test", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    record.http = {"status": 500}
    record.request_id = "r1"
    try:
        raise ValueError("inner")
    except ValueError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    entry = codec.loads(JsonFormatter().format(record))

    assert entry["message"] == "boom x"
    assert entry["level"] == "error"
    assert entry["request_id"] == "r1"
    assert entry["http"] == {"status": 500}
    assert "ValueError: inner" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_the_logging_config_silences_uvicorns_own_access_log() -> None:
    config = logging_config("info", "json")
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": False}
    assert config["handlers"]["stderr"]["formatter"] == "json"


async def test_metrics_have_latency_histograms_per_route_and_not_for_streams(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    alice = auth(settings, "alice")
    await client.get("/api/notifications", headers=alice)
    async with open_stream(client, alice) as stream:
        await stream.next_of("unread_count")
    text = (await client.get("/metrics")).text

    counted = (
        "herald_http_request_duration_seconds_count"
        '{method="GET",route="/api/notifications",status="200"}'
    )
    assert any(line.startswith(counted) for line in text.splitlines())
    assert 'route="/api/stream"' not in text
    assert 'le="0.005"' in text
