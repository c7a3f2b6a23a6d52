"""Hole 10 (and 9's frame size): an outsider holds sockets with requests that never finish, or
sends heads and frames too large to buffer. Each attack is cut within a bound, with a problem
the client can read, while another client keeps being served."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from herald_server import codec
from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.server import WS_MAX_MESSAGE_BYTES
from tests.conftest import LiveServer, run_server, token_for

pytestmark = pytest.mark.anyio

# Short bounds, so the attacks are cut within a test's time; the defaults are 10 s and 30 s.
HEAD_SECONDS = 1.0
BODY_SECONDS = 1.0
# What the server may take beyond a bound before the test calls it unbounded.
SLACK_SECONDS = 5.0
# The attack: 50 sockets, each dripping a header line (here every 0.2 s, below the
# 5 s keep-alive that the first byte of a request cancels anyway).
SOCKETS = 50
DRIP_SECONDS = 0.2


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[LiveServer]:
    bounded = replace(
        settings,
        request_head_timeout_seconds=HEAD_SECONDS,
        request_body_timeout_seconds=BODY_SECONDS,
    )
    async with run_server(create_app(bounded), settings=bounded) as live:
        yield live


async def connect_raw(live: LiveServer) -> SocketStream:
    host, port = live.url.removeprefix("http://").split(":")
    return await anyio.connect_tcp(host, int(port))


async def drip_until_answered(stream: SocketStream, lines: list[bytes]) -> bytes:
    """Send `lines` one by one, a pause between them, until the server answers or hangs up:
    what it said (b"" for a hang-up without a word)."""
    for line in lines:
        try:
            await stream.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            break
        first: bytes | None = None
        with anyio.move_on_after(DRIP_SECONDS):
            first = await receive(stream)
        if first is not None:
            return first + await read_all(stream)
    return await read_all(stream)


async def receive(stream: SocketStream) -> bytes:
    """The next bytes the server sent, b"" once it has hung up."""
    try:
        return await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        return b""


async def read_all(stream: SocketStream) -> bytes:
    received = b""
    while chunk := await receive(stream):
        received += chunk
    return received


def endless_head() -> list[bytes]:
    """A GET whose header lines never end."""
    return [b"GET /healthz HTTP/1.1\r\nHost: herald\r\n"] + [
        f"X-Drip-{n}: {n}\r\n".encode() for n in range(10_000)
    ]


async def healthy(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=5) as other:
        assert (await other.get("/healthz")).status_code == 200


def problem_slug(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, codec.loads(body)["type"].rsplit("/", 1)[1]


async def test_fifty_sockets_dripping_header_lines_are_cut_while_others_are_served(
    node: LiveServer,
) -> None:
    answers: list[bytes] = []

    async def attacker() -> None:
        stream = await connect_raw(node)
        async with stream:
            answers.append(await drip_until_answered(stream, endless_head()))

    with anyio.fail_after(HEAD_SECONDS + SLACK_SECONDS):
        async with anyio.create_task_group() as attack:
            for _ in range(SOCKETS):
                attack.start_soon(attacker)
            await healthy(node)

    assert len(answers) == SOCKETS
    assert {problem_slug(answer) for answer in answers} == {(408, "request-timeout")}


async def test_sockets_that_never_send_a_byte_are_closed_without_a_word(
    node: LiveServer,
) -> None:
    async def idle() -> None:
        stream = await connect_raw(node)
        async with stream:
            assert await read_all(stream) == b""

    with anyio.fail_after(HEAD_SECONDS + SLACK_SECONDS):
        async with anyio.create_task_group() as attack:
            for _ in range(SOCKETS):
                attack.start_soon(idle)
            await healthy(node)


async def test_a_body_trickled_byte_by_byte_is_cut(
    node: LiveServer, settings: Settings, publisher: dict[str, str]
) -> None:
    body = codec.dumps({"recipients": ["alice"], "title": "slow"})
    head = (
        "POST /api/notifications HTTP/1.1\r\nHost: herald\r\n"
        f"Authorization: {publisher['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    with anyio.fail_after(BODY_SECONDS + SLACK_SECONDS):
        stream = await connect_raw(node)
        async with stream, anyio.create_task_group() as attack:
            answer = await drip_until_answered(stream, [head] + [bytes([b]) for b in body])
            attack.start_soon(healthy, node)

    assert problem_slug(answer) == (408, "request-timeout")
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as other:
        alice = {"Authorization": f"Bearer {token_for(settings, 'alice')}"}
        assert (await other.get("/api/notifications", headers=alice)).json()["items"] == []


async def test_a_five_megabyte_header_is_refused_before_it_is_read(node: LiveServer) -> None:
    limit = Settings().max_request_head_bytes
    chunk = b"a" * 64 * 1024
    lines = [b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Big: "] + [chunk] * 80

    with anyio.fail_after(SLACK_SECONDS):
        stream = await connect_raw(node)
        async with stream:
            answer = await drip_until_answered(stream, lines)
        await healthy(node)

    assert problem_slug(answer) == (431, "request-header-too-large")
    assert str(limit).encode() in answer


async def test_a_head_over_the_limit_in_one_piece_is_refused(node: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as attacker:
        answer = await attacker.get("/healthz", headers={"X-Big": "a" * 40 * 1024})

    assert answer.status_code == 431
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/request-header-too-large")
    await healthy(node)


async def test_a_fifteen_megabyte_websocket_frame_is_refused_from_its_header(
    node: LiveServer, settings: Settings
) -> None:
    url = node.url.replace("http://", "ws://") + "/api/ws"
    alice = {"Authorization": f"Bearer {token_for(settings, 'alice')}"}

    with anyio.fail_after(SLACK_SECONDS):
        async with connect(url, additional_headers=alice, open_timeout=5, max_size=None) as ws:
            await ws.recv()  # the unread count: the stream is open
            # The server may hang up while the frame is still being written.
            with contextlib.suppress(ConnectionClosed):
                await ws.send("[" * (15 * 1024 * 1024))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        await healthy(node)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big
    assert WS_MAX_MESSAGE_BYTES < 15 * 1024 * 1024
