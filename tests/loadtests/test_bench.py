"""The benchmark still runs: a miniature of `loadtests/bench.py` against both servers.

It checks what the figures rest on (every stream connected, every broadcast and targeted
publish received, a JSON line with every figure), not the figures themselves: speed is
measured by running the benchmark, never asserted by a test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from herald_server.config import Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
STREAMS = 20


async def test_a_small_benchmark_connects_every_stream_and_loses_nothing(
    production_settings: Settings,
) -> None:
    assert production_settings.redis_url is not None
    command = [
        sys.executable,
        str(ROOT / "loadtests" / "bench.py"),
        *("--connections", str(STREAMS), "--broadcasts", "2", "--broadcast-interval", "0.3"),
        *("--targeted-rate", "50", "--targeted-seconds", "1", "--publish-seconds", "1"),
        *("--database-url", production_settings.database_url),
        *("--redis-url", production_settings.redis_url),
    ]
    with anyio.fail_after(180):
        finished = await anyio.run_process(command, cwd=ROOT, check=False)
    output = finished.stdout.decode()
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]

    report = json.loads(output.strip().splitlines()[-1])
    for server in ("herald", "floor"):
        figures = report[server]
        assert figures["streams_held"] == STREAMS, server
        assert figures["connect_failures"] == 0, server
        assert figures["broadcast"]["delivered_pct"] == 100.0, server
        assert figures["targeted"]["accepted"] == 50, server
        assert figures["targeted"]["lost"] == 0, server
        assert figures["publishes_per_second"] > 0, server
        assert figures["publish_errors"] == 0, server
    assert report["herald"]["rss_kb_per_stream"] is not None
    assert "| server RSS per stream (KB)" in output
