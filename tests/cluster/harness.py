"""Real processes for failure tests: Herald nodes and a Redis server the test owns.

Never the shared Redis: this one is started on a free port, stopped and started again at the
test's will, and killed at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL
from typing import IO

import anyio
import httpx

from herald_server.config import Settings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20


@dataclass
class OwnRedis:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tempfile.gettempdir(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with anyio.fail_after(START_TIMEOUT):
            while not _accepts(self.port):
                await anyio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Node:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL: no graceful anything, as when a machine dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stopping the node sends: a graceful shutdown."""
        self.process.send_signal(signal.SIGTERM)


def node_env(settings: Settings, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        HERALD_JWT_SECRET=settings.jwt_secret or "",
        HERALD_REDIS_PREFIX=settings.redis_prefix,
        HERALD_LOG_LEVEL="warning",
        HERALD_SHUTDOWN_GRACE_SECONDS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


@contextmanager
def herald(
    env: dict[str, str], args: Sequence[str], output: IO[bytes] | int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`herald ARGS...` as a process of its own, killed on the way out if still running.
    Its stdout goes to `output`; its stderr too when that is a file, else to the test's."""
    errors = output if not isinstance(output, int) else None
    process = subprocess.Popen(
        [sys.executable, "-m", "herald_server", *args],
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=errors,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@asynccontextmanager
async def cluster(settings: Settings, redis_url: str, size: int) -> AsyncIterator[list[Node]]:
    """`size` nodes sharing one database and one Redis, each on its own port."""
    env = node_env(settings, redis_url)
    ports = [free_port() for _ in range(size)]
    with ExitStack() as stack:
        nodes = [
            Node(
                f"http://127.0.0.1:{port}",
                stack.enter_context(herald(env, ["serve", "--port", str(port)], DEVNULL)),
            )
            for port in ports
        ]
        await wait_healthy(*(node.url for node in nodes))
        yield nodes


async def wait_healthy(*urls: str) -> None:
    """Until every node at `urls` answers /healthz (START_TIMEOUT at most)."""
    async with httpx.AsyncClient(timeout=2) as http:
        with anyio.fail_after(START_TIMEOUT):
            for url in urls:
                while not await _healthy(http, url):
                    await anyio.sleep(0.1)


async def _healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url + "/healthz")).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def herald_worker(
    env: dict[str, str], log: Path, args: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """A `herald worker` process, its output in `log`."""
    with log.open("wb") as output, herald(env, ["worker", *args], output) as process:
        yield process
