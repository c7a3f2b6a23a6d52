"""The benchmark: one Herald node holding N SSE streams, side by side with a bare fan-out.

Starts a Herald node (PostgreSQL + Redis, in a database and a Redis prefix of its own, dropped
afterwards) and the bare sse-starlette fan-out of `floor.py`, one after the other, and drives
both the same way from one raw asyncio client (locust's client is too heavy for 10,000 streams
on two cores):

1. connect: N streams, one user each; time to connect, and server RSS growth per stream;
2. broadcast: B broadcasts to all N, one every `--broadcast-interval` s; publish → receive
   latency over every delivery, and the server's CPU time per 1,000 deliveries;
3. targeted: R publishes per second to one user each, for S seconds; publish → receive
   latency (from the instant each publish was due, so a stalled server cannot hide its
   queue), and how many were lost;
4. throughput: as many one-recipient publishes as C connections get accepted in T seconds.

It prints a table, each Herald figure with its ratio to the floor's, then one JSON line.

    python loadtests/bench.py                          # 10,000 streams; about 10 minutes
    python loadtests/bench.py --connections 1000 --targeted-seconds 10

Or against a node you run yourself (RSS and CPU need its pid):
`--herald-url URL --secret HERALD_JWT_SECRET [--herald-pid PID]`. Latencies are wall-clock
instants compared across processes: run the client on the server's machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald_server.auth import issue_token  # noqa: E402 - after the path fix above
from herald_server.config import Settings  # noqa: E402
from herald_server.models import SCOPE_ADMIN  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
MARKER = b'"bench_t":'
NUMBER = frozenset(b"0123456789.eE+-")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- What a server is and how to reach it -------------------------------------------------


@dataclass
class Server:
    """A server under test: where it listens, its pid if known, and how to ask it things."""

    name: str
    url: str
    pid: int | None
    stream_request: Callable[[str], bytes]
    publish_headers: bytes
    idempotency_keys: bool = False

    @property
    def address(self) -> tuple[str, int]:
        return _address(self.url)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(url: str, process: subprocess.Popen[bytes] | None) -> None:
    host, port = _address(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with status {process.returncode}")
        with suppress(OSError):
            connection = HttpConnection(host, port)
            await connection.open()
            status = await connection.request(b"GET", b"/readyz", b"", b"")
            connection.close()
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not become ready in 60 s")


@asynccontextmanager
async def _process(command: list[str], env: dict[str, str], url: str) -> AsyncIterator[int]:
    process = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: S603, ASYNC220
    try:
        await _wait_ready(url, process)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stream_by_bearer(tokens: dict[str, str], host: bytes) -> Callable[[str], bytes]:
    def request(user: str) -> bytes:
        return (
            b"GET /api/stream HTTP/1.1\r\nHost: " + host + b"\r\nAccept: text/event-stream\r\n"
            b"Authorization: Bearer " + tokens[user].encode() + b"\r\n\r\n"
        )

    return request


def _stream_by_query(host: bytes) -> Callable[[str], bytes]:
    def request(user: str) -> bytes:
        return (
            b"GET /api/stream?user="
            + user.encode()
            + b" HTTP/1.1\r\nHost: "
            + host
            + b"\r\nAccept: text/event-stream\r\n\r\n"
        )

    return request


@asynccontextmanager
async def herald_node(users: Sequence[str], args: argparse.Namespace) -> AsyncIterator[Server]:
    """A Herald node on PostgreSQL + Redis, in a database and a Redis prefix of its own."""
    if args.herald_url:
        settings = Settings(jwt_secret=args.secret)
        yield _herald(args.herald_url, args.herald_pid, settings, users, args.idempotency_keys)
        return
    secret = secrets.token_urlsafe(48)
    settings = Settings(jwt_secret=secret)
    prefix = f"herald-bench-{secrets.token_hex(4)}"
    async with _database(args.database_url) as database_url:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            REDIS_URL=args.redis_url,
            HERALD_JWT_SECRET=secret,
            HERALD_REDIS_PREFIX=prefix,
            HERALD_LOG_LEVEL="warning",
            HERALD_DEV_LOGIN="false",
            # A benchmark of the node, not of its abuse limits.
            HERALD_PUBLISH_RATE="0",
            HERALD_RECIPIENT_RATE="0",
        )
        command = [sys.executable, "-m", "herald_server", "serve", "--port", str(port)]
        try:
            async with _process(command, env, url) as pid:
                yield _herald(url, pid, settings, users, args.idempotency_keys)
        finally:
            await _drop_redis_prefix(args.redis_url, prefix)


def _herald(
    url: str, pid: int | None, settings: Settings, users: Sequence[str], idempotency_keys: bool
) -> Server:
    tokens = {user: issue_token(settings, user, [], 24 * 3600) for user in users}
    admin = issue_token(settings, "bench-publisher", [SCOPE_ADMIN], 24 * 3600)
    host = urlsplit(url).netloc.encode()
    return Server(
        "herald",
        url,
        pid,
        _stream_by_bearer(tokens, host),
        b"Authorization: Bearer " + admin.encode() + b"\r\n",
        idempotency_keys,
    )


@asynccontextmanager
async def floor_node() -> AsyncIterator[Server]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "loadtests" / "floor.py"), "--port", str(port)]
    async with _process(command, dict(os.environ), url) as pid:
        yield Server("floor", url, pid, _stream_by_query(urlsplit(url).netloc.encode()), b"")


@asynccontextmanager
async def _database(url: str) -> AsyncIterator[str]:
    name = f"herald_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _drop_redis_prefix(url: str, prefix: str) -> None:
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --- The client ---------------------------------------------------------------------------


class Receipts:
    """Every delivery the streams saw: publish instant → receive instant, in ms."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self._awaited: tuple[int, asyncio.Event] | None = None

    def record(self, sent: float, received: float) -> None:
        self.latencies.append((received - sent) * 1000)
        if self._awaited is not None and len(self.latencies) >= self._awaited[0]:
            self._awaited[1].set()

    async def wait_for(self, count: int, seconds: float) -> None:
        """Until `count` deliveries were seen, or `seconds` passed (the rest are lost)."""
        reached = asyncio.Event()
        self._awaited = (count, reached)
        if len(self.latencies) >= count:
            reached.set()
        with suppress(TimeoutError):
            await asyncio.wait_for(reached.wait(), seconds)
        self._awaited = None

    def reset(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


class SseStream(asyncio.Protocol):
    """One SSE connection, as light as a client can be: it finds each event's publish
    instant in the bytes and records the latency, without parsing anything else."""

    def __init__(self, request: bytes, receipts: Receipts) -> None:
        self.request = request
        self.receipts = receipts
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.head = b""
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before its headers: {exc}"))

    def data_received(self, data: bytes) -> None:
        received = time.time()
        if not self.opened.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[9:12]
            if status != b"200":
                self.opened.set_exception(ConnectionError(self.head[:200].decode(errors="replace")))
                self.transport.close()
                return
            self.opened.set_result(None)
            data, self.head = self.head[end + 4 :], b""
        self._scan(self.tail + data, received)

    def _scan(self, chunk: bytes, received: float) -> None:
        position = 0
        while True:
            start = chunk.find(MARKER, position)
            if start < 0:
                self.tail = chunk[-len(MARKER) :]
                return
            end = start + len(MARKER)
            while end < len(chunk) and chunk[end] == 0x20:
                end += 1
            number_start = end
            while end < len(chunk) and chunk[end] in NUMBER:
                end += 1
            if end == len(chunk):
                self.tail = chunk[start:]
                return
            self.receipts.record(float(chunk[number_start:end]), received)
            position = end


class HttpConnection:
    """A keep-alive HTTP/1.1 connection that sends requests one at a time: cheap enough that
    the client's CPU goes to the streams, not to an HTTP library."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: bytes, path: bytes, headers: bytes, body: bytes) -> int:
        self.writer.write(
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: "
            + self.host.encode()
            + b"\r\n"
            + headers
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


async def _publish(connection: HttpConnection, server: Server, body: dict[str, object]) -> int:
    headers = server.publish_headers
    if server.idempotency_keys:
        headers += b"Idempotency-Key: " + secrets.token_hex(8).encode() + b"\r\n"
    return await connection.request(
        b"POST", b"/api/notifications", headers, json.dumps(body).encode()
    )


async def _publishers(server: Server, count: int) -> list[HttpConnection]:
    connections = [HttpConnection(*server.address) for _ in range(count)]
    await asyncio.gather(*(connection.open() for connection in connections))
    return connections


# --- Measuring ----------------------------------------------------------------------------


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {f"p{q}": _round(percentile(values, q)) for q in (50, 95, 99)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Run:
    server: Server
    users: Sequence[str]
    receipts: Receipts = field(default_factory=Receipts)
    streams: list[SseStream] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    async def connect(self, parallel: int) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.server.address
        gate = asyncio.Semaphore(parallel)
        times: list[float] = []

        async def open_one(user: str) -> None:
            async with gate:
                started = time.perf_counter()
                _, stream = await loop.create_connection(
                    lambda: SseStream(self.server.stream_request(user), self.receipts), host, port
                )
                self.streams.append(stream)
                await asyncio.wait_for(stream.opened, 60)
                times.append((time.perf_counter() - started) * 1000)

        await asyncio.sleep(1)
        rss_before = rss_bytes(self.server.pid)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(open_one(user) for user in self.users), return_exceptions=True
        )
        elapsed = time.perf_counter() - started
        failures = [result for result in results if isinstance(result, BaseException)]
        await asyncio.sleep(3)
        rss_after = rss_bytes(self.server.pid)
        held = sum(not stream.closed and stream.opened.done() for stream in self.streams)
        per_stream = (
            None
            if rss_before is None or rss_after is None or not held
            else (rss_after - rss_before) / held / 1024
        )
        self.figures.update(
            streams_held=held,
            connect_failures=len(failures),
            connect_seconds=round(elapsed, 2),
            connect_p99_ms=_round(percentile(times, 99)),
            rss_kb_per_stream=_round(per_stream),
        )
        if failures:
            print(f"{self.server.name}: {len(failures)} streams failed: {failures[0]!r}")

    async def broadcast(self, count: int, interval: float) -> None:
        publisher = (await _publishers(self.server, 1))[0]
        expected = count * len(self.users)
        self.receipts.reset()
        cpu_before = cpu_seconds(self.server.pid)
        accepted = 0
        for n in range(count):
            started = time.time()
            body: dict[str, object] = {
                "broadcast": True,
                "title": f"broadcast {n}",
                "data": {"bench_t": started},
            }
            accepted += await _publish(publisher, self.server, body) == 202
            await asyncio.sleep(max(0.0, started + interval - time.time()))
        await self.receipts.wait_for(accepted * len(self.users), seconds=10)
        cpu_after = cpu_seconds(self.server.pid)
        latencies = self.receipts.reset()
        publisher.close()
        cpu_per_1000 = (
            None
            if cpu_before is None or cpu_after is None or not latencies
            else (cpu_after - cpu_before) / len(latencies) * 1000
        )
        self.figures.update(
            broadcast={
                **_spread(latencies),
                "delivered_pct": round(100 * len(latencies) / expected, 2),
            },
            cpu_ms_per_1000_deliveries=_round(
                None if cpu_per_1000 is None else cpu_per_1000 * 1000, 2
            ),
        )

    async def targeted(self, rate: float, seconds: float, parallel: int) -> None:
        publishers = await _publishers(self.server, parallel)
        idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for connection in publishers:
            idle.put_nowait(connection)
        outcomes: list[int] = []
        pending: set[asyncio.Task[None]] = set()

        async def send(connection: HttpConnection, due: float) -> None:
            user = random.choice(self.users)  # noqa: S311 - load, not secrets
            body: dict[str, object] = {
                "recipients": [user],
                "title": "targeted",
                "data": {"bench_t": due},
            }
            outcomes.append(await _publish(connection, self.server, body))
            idle.put_nowait(connection)

        self.receipts.reset()
        total = int(rate * seconds)
        wall, start = time.time(), time.perf_counter()
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            connection = await idle.get()
            task = asyncio.create_task(send(connection, wall + n / rate))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        accepted = outcomes.count(202)
        await self.receipts.wait_for(accepted, seconds=10)
        latencies = self.receipts.reset()
        for connection in publishers:
            connection.close()
        self.figures["targeted"] = {
            **_spread(latencies),
            "rate": rate,
            "achieved_rate": round(total / (time.perf_counter() - start), 1),
            "accepted": accepted,
            "lost": accepted - len(latencies),
        }

    async def throughput(self, seconds: float, parallel: int) -> None:
        publishers = await _publishers(self.server, parallel)
        outcomes: list[int] = []
        deadline = time.perf_counter() + seconds

        async def hammer(connection: HttpConnection) -> None:
            while time.perf_counter() < deadline:
                user = random.choice(self.users)  # noqa: S311 - load, not secrets
                body: dict[str, object] = {
                    "recipients": [user],
                    "title": "t",
                    "data": {"bench_t": time.time()},
                }
                outcomes.append(await _publish(connection, self.server, body))

        started = time.perf_counter()
        await asyncio.gather(*(hammer(connection) for connection in publishers))
        elapsed = time.perf_counter() - started
        for connection in publishers:
            connection.close()
        self.figures["publishes_per_second"] = round(outcomes.count(202) / elapsed, 1)
        self.figures["publish_errors"] = len(outcomes) - outcomes.count(202)

    def close(self) -> None:
        for stream in self.streams:
            if not stream.closed:
                stream.transport.close()


async def measure(server: Server, users: Sequence[str], args: argparse.Namespace) -> Run:
    run = Run(server, users)
    print(f"{server.name}: connecting {len(users)} streams", file=sys.stderr)
    await run.connect(args.connect_parallel)
    try:
        print(f"{server.name}: {args.broadcasts} broadcasts", file=sys.stderr)
        await run.broadcast(args.broadcasts, args.broadcast_interval)
        print(
            f"{server.name}: {args.targeted_rate}/s targeted for {args.targeted_seconds} s",
            file=sys.stderr,
        )
        await run.targeted(args.targeted_rate, args.targeted_seconds, args.publishers)
        print(f"{server.name}: publishing flat out for {args.publish_seconds} s", file=sys.stderr)
        await run.throughput(args.publish_seconds, args.publishers)
    finally:
        run.close()
    return run


# --- Reporting ----------------------------------------------------------------------------

ROWS: list[tuple[str, Callable[[dict[str, object]], object]]] = [
    ("SSE streams held", lambda f: f.get("streams_held")),
    ("connect all (s)", lambda f: f.get("connect_seconds")),
    ("connect p99 (ms)", lambda f: f.get("connect_p99_ms")),
    ("server RSS per stream (KB)", lambda f: f.get("rss_kb_per_stream")),
    ("broadcast p50 (ms)", lambda f: _at(f, "broadcast", "p50")),
    ("broadcast p95 (ms)", lambda f: _at(f, "broadcast", "p95")),
    ("broadcast p99 (ms)", lambda f: _at(f, "broadcast", "p99")),
    ("broadcast delivered (%)", lambda f: _at(f, "broadcast", "delivered_pct")),
    ("CPU ms per 1,000 deliveries", lambda f: f.get("cpu_ms_per_1000_deliveries")),
    ("targeted sent / s", lambda f: _at(f, "targeted", "achieved_rate")),
    ("targeted p50 (ms)", lambda f: _at(f, "targeted", "p50")),
    ("targeted p95 (ms)", lambda f: _at(f, "targeted", "p95")),
    ("targeted p99 (ms)", lambda f: _at(f, "targeted", "p99")),
    ("targeted lost", lambda f: _at(f, "targeted", "lost")),
    ("publishes accepted / s", lambda f: f.get("publishes_per_second")),
]


def _at(figures: dict[str, object], group: str, key: str) -> object:
    found = figures.get(group)
    return found.get(key) if isinstance(found, dict) else None


def _ratio(mine: object, floor: object) -> str:
    if isinstance(mine, int | float) and isinstance(floor, int | float) and floor:
        return f"{mine / floor:.2f}x"
    return "-"


def report(herald: dict[str, object], floor: dict[str, object], args: argparse.Namespace) -> None:
    print(
        f"\n{args.connections} streams · {args.broadcasts} broadcasts every"
        f" {args.broadcast_interval} s · targeted {args.targeted_rate}/s for"
        f" {args.targeted_seconds} s · {args.publishers} publisher connections\n"
    )
    print(f"| {'figure':<28} | {'herald':>10} | {'floor':>10} | {'herald/floor':>12} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 14}|")
    for label, pick in ROWS:
        mine, bare = pick(herald), pick(floor)
        print(f"| {label:<28} | {mine!s:>10} | {bare!s:>10} | {_ratio(mine, bare):>12} |")
    print(json.dumps({"params": vars(args), "herald": herald, "floor": floor}, default=str))


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        raise SystemExit(f"need {needed} open files; `ulimit -n` allows fewer")


async def main(args: argparse.Namespace) -> None:
    # Both the client and the servers it starts (which inherit it) hold every stream.
    _raise_file_limit(args.connections + args.publishers + 1000)
    users = [f"bench-{n}" for n in range(args.connections)]
    results: dict[str, dict[str, object]] = {"herald": {}, "floor": {}}
    if "floor" in args.servers:
        async with floor_node() as floor:
            results["floor"] = (await measure(floor, users, args)).figures
    if "herald" in args.servers:
        async with herald_node(users, args) as herald:
            results["herald"] = (await measure(herald, users, args)).figures
    report(results["herald"], results["floor"], args)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--connect-parallel", type=int, default=200)
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument(
        "--broadcast-interval",
        type=float,
        default=3.0,
        help="seconds between broadcasts: long enough that one's fan-out is not queued behind"
        " the last",
    )
    parser.add_argument("--targeted-rate", type=float, default=2000)
    parser.add_argument("--targeted-seconds", type=float, default=30)
    parser.add_argument("--publish-seconds", type=float, default=10)
    parser.add_argument("--publishers", type=int, default=32, help="publisher connections")
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="Herald's publishes carry an Idempotency-Key (one more write each)",
    )
    parser.add_argument("--servers", nargs="+", default=["floor", "herald"])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", PG_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", REDIS_URL))
    parser.add_argument("--herald-url", help="a running node instead of starting one")
    parser.add_argument("--herald-pid", type=int, help="its pid, for RSS and CPU figures")
    parser.add_argument("--secret", help="its HERALD_JWT_SECRET, with --herald-url")
    return parser.parse_args(argv)


if __name__ == "__main__":
    uvloop.run(main(parse()))
