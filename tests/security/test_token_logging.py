"""Hole 6: stream tokens travel in `?token=` (EventSource cannot set headers), and uvicorn logs
every WebSocket handshake with its query string, refused ones too; at debug level websockets
logs the handshake's headers as well. Whoever reads the logs must find no token there."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import LiveServer, run_server, token_for
from tests.helpers import open_stream

pytestmark = pytest.mark.anyio

# Below DEBUG too: uvicorn's TRACE level is 5.
EVERY_LEVEL = 1
# The test's own clients log the URLs they fetch; they are the attacker's side, not the node's.
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")


class Everything(logging.Handler):
    """Every record any logger of the node writes, formatted with its exception if any."""

    def __init__(self) -> None:
        super().__init__(EVERY_LEVEL)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):
            self.lines.append(self.format(record))


@pytest.fixture
def every_log_line() -> Iterator[Everything]:
    """Every logger at the lowest level, and a handler on each that does not propagate."""
    handler = Everything()
    loggers = [logging.getLogger()] + [
        found
        for found in logging.Logger.manager.loggerDict.values()
        if isinstance(found, logging.Logger)
    ]
    before = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(EVERY_LEVEL)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(handler)
    yield handler
    for logger, level in before:
        logger.setLevel(level)
        logger.removeHandler(handler)


@pytest.fixture
async def node(settings: Settings, every_log_line: Everything) -> AsyncIterator[LiveServer]:
    async with run_server(create_app(settings), settings=settings) as live:
        yield live


async def websocket(live: LiveServer, query: str = "", bearer: str | None = None) -> None:
    """Open /api/ws, read its first frame if it opens at all."""
    url = live.url.replace("http://", "ws://") + "/api/ws" + query
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    with contextlib.suppress(InvalidStatus):
        async with connect(url, additional_headers=headers, open_timeout=5) as ws:
            await ws.recv(decode=True)


async def test_no_stream_or_bearer_token_reaches_any_log_line_at_any_level(
    node: LiveServer, settings: Settings, every_log_line: Everything
) -> None:
    user_token = token_for(settings, "alice")
    forged = token_for(settings, "mallory")[:-4] + "AAAA"
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as client:
        minted = await client.post(
            "/api/stream/token", headers={"Authorization": f"Bearer {user_token}"}
        )
        stream_token = minted.json()["token"]
        async with open_stream(client, params={"token": stream_token}) as stream:
            await stream.next_of("unread_count")
        refused = await client.get("/api/stream", params={"token": forged})
        await websocket(node, f"?token={stream_token}")
        await websocket(node, f"?token={forged}")
        await websocket(node, bearer=user_token)

    written = "\n".join(every_log_line.lines)
    assert refused.status_code == 401
    for token in (stream_token, forged, user_token):
        for piece in token.split("."):
            assert piece not in written
    # The handshakes were logged, accepted and refused, with the token's value blanked out.
    assert '"WebSocket /api/ws?token=[redacted]" [accepted]' in written
    assert '"WebSocket /api/ws?token=[redacted]" 401' in written
