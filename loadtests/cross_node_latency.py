"""Cross-node latency: publish on node A, receive on a stream held on node B.

Starts two `herald serve` nodes on free loopback ports sharing DATABASE_URL and REDIS_URL
(defaults: the local PostgreSQL database `test` and Redis db 0), opens one SSE stream on B,
publishes COUNT notifications to that user through A at RATE per second, and prints p50, p95
and p99 of publish-request-start → event-received, as a table and as one JSON line.

    python loadtests/cross_node_latency.py --count 2000 --rate 200

Or against nodes you run yourself: `--node-a URL --node-b URL --secret HERALD_JWT_SECRET`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald_server.auth import issue_token  # noqa: E402 - after the path fix above
from herald_server.config import Settings  # noqa: E402

USER = "latency-probe"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def _nodes(secret: str) -> AsyncIterator[tuple[str, str]]:
    env = dict(
        os.environ,
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        HERALD_JWT_SECRET=secret,
        HERALD_REDIS_PREFIX=f"herald-latency-{secrets.token_hex(4)}",
        HERALD_LOG_LEVEL="warning",
        # A measurement of latency, not of the abuse limits: one recipient gets every event.
        HERALD_PUBLISH_RATE="0",
        HERALD_RECIPIENT_RATE="0",
    )
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(  # noqa: S603, ASYNC220 - our own CLI, started once
            [sys.executable, "-m", "herald_server", "serve", "--port", str(port)], env=env, cwd=ROOT
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 30
            for url in urls:
                while True:
                    try:
                        if (await http.get(url + "/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{url} did not become ready in 30 s")
                    await asyncio.sleep(0.1)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


async def _receive(
    stream_url: str,
    token: str,
    sent: dict[str, int],
    latencies: list[float],
    count: int,
    ready: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=None) as http,  # noqa: S113 - an endless stream
        http.stream("GET", stream_url + "/api/stream", headers=headers) as response,
    ):
        ready.set()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "notification":
                received = time.perf_counter_ns()
                probe = json.loads(line[6:])["data"]["probe"]
                latencies.append((received - sent[probe]) / 1e6)
                if len(latencies) >= count:
                    return


async def _publish(
    publish_url: str, token: str, sent: dict[str, int], count: int, rate: float
) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    accepted = 0
    async with httpx.AsyncClient(base_url=publish_url, timeout=10) as http:
        start = time.perf_counter()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            probe = str(n)
            sent[probe] = time.perf_counter_ns()
            body = {"recipients": [USER], "title": "probe", "data": {"probe": probe}}
            response = await http.post("/api/notifications", json=body, headers=headers)
            accepted += response.status_code == 202
    return accepted


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def measure(
    node_a: str, node_b: str, secret: str, count: int, rate: float
) -> dict[str, float]:
    settings = Settings(jwt_secret=secret)
    reader = issue_token(settings, USER, [], 3600)
    writer = issue_token(settings, "latency-publisher", ["notifications:publish"], 3600)
    sent: dict[str, int] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    receiver = asyncio.create_task(_receive(node_b, reader, sent, latencies, count, ready))
    await ready.wait()
    await asyncio.sleep(0.5)  # the stream is registered on B before the first publish
    accepted = await _publish(node_a, writer, sent, count, rate)
    try:
        await asyncio.wait_for(receiver, timeout=30)
    except TimeoutError:
        receiver.cancel()
    return {
        "count": count,
        "rate": rate,
        "accepted": accepted,
        "received": len(latencies),
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p95_ms": round(_percentile(latencies, 95), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="publishes per second")
    parser.add_argument("--node-a", help="publish here (default: start two nodes)")
    parser.add_argument("--node-b", help="stream from here")
    parser.add_argument("--secret", help="the nodes' HERALD_JWT_SECRET, with --node-a/--node-b")
    args = parser.parse_args()
    if args.node_a and args.node_b:
        result = await measure(args.node_a, args.node_b, args.secret, args.count, args.rate)
    else:
        secret = secrets.token_urlsafe(48)
        async with _nodes(secret) as (node_a, node_b):
            result = await measure(node_a, node_b, secret, args.count, args.rate)
    print(f"publish on A → receive on B, {result['count']} notifications at {result['rate']}/s")
    for key in ("accepted", "received", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        print(f"  {key:>8}: {result[key]}")
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
