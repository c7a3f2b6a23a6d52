"""Readable helpers for tests: publish, open a stream, read its events, each bounded in time."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

from herald_server import codec


@dataclass
class Event:
    event: str
    id: str | None
    data: Any


async def publish(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    body.setdefault("title", "hello")
    response = await client.post("/api/notifications", json=body, headers=headers)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


async def _sse_lines(response: httpx.Response) -> AsyncIterator[str]:
    """Lines as EventSource splits them: at CRLF, LF or CR only. httpx's `aiter_lines` also
    splits at U+2028, U+0085 and the like, which JSON text may hold unescaped."""
    pending = ""
    async for text in response.aiter_text():
        pending += text
        # A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        while (match := _LINE_END.search(pending)) and match.end() < len(pending) + (
            match.group() != "\r"
        ):
            yield pending[: match.start()]
            pending = pending[match.end() :]
    if pending:
        yield pending


_LINE_END = re.compile(r"\r\n|\n|\r")


class SseReader:
    """Parses an SSE response line by line, as EventSource would."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = _sse_lines(response)
        self.last_id: str | None = None
        # The last `retry:` hint, in ms, as EventSource keeps it.
        self.retry: int | None = None

    async def next(self, timeout: float = 5) -> Event:
        event, data, event_id = "message", list[str](), None
        with anyio.fail_after(timeout):
            async for line in self.lines:
                if line == "":
                    if data:
                        if event_id is not None:
                            self.last_id = event_id
                        return Event(event, event_id, codec.loads("\n".join(data)))
                    event, data, event_id = "message", [], None
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        event_id = value
                    elif field == "retry" and value.isascii() and value.isdigit():
                        self.retry = int(value)
        raise EOFError("the stream ended")

    async def next_of(self, kind: str, timeout: float = 5) -> Event:
        """The next event named `kind`, skipping others."""
        with anyio.fail_after(timeout):
            while True:
                found = await self.next(timeout)
                if found.event == kind:
                    return found


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    headers: dict[str, str] | None = None,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
) -> AsyncIterator[SseReader]:
    sent = dict(headers or {})
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    async with client.stream("GET", "/api/stream", headers=sent, params=params) as response:
        assert response.status_code == 200, await response.aread()
        yield SseReader(response)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and stable slug."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    assert document["type"].endswith("/" + slug), document
    assert document["status"] == status
    assert isinstance(document["title"], str)
    return document


async def inbox_of(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> dict[str, Any]:
    response = await client.get("/api/notifications", headers=headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page: dict[str, Any] = response.json()
    return page


async def titles_of(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    return [item["title"] for item in (await inbox_of(client, headers, **params))["items"]]


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 20, interval: float = 0.05
) -> None:
    """Poll until `condition` holds: for state only a server can be asked about."""
    with anyio.fail_after(timeout):
        while not await condition():  # noqa: ASYNC110 - the state is remote, no event to await
            await anyio.sleep(interval)


def free_port() -> int:
    """A loopback port nothing listens on (a refused connection, or a port to listen on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel completes and nobody answers, like a wedged server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def metric(text: str, sample_name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text document, read with prometheus-client's own parser as
    Prometheus would read it; None when the document has no such sample."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return sample.value
    return None
