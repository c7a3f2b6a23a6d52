"""docker/entrypoint.sh, run outside Docker: the real `herald` console script first on PATH, a
scratch directory standing in for /var/lib/herald, every process bounded in time.

The image runs the script with Debian's /bin/sh (dash); the tests that start no server run it
with dash too when it is installed, and all of them with bash."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from herald_server.auth import Authenticator
from herald_server.cli import parser
from herald_server.config import Settings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docker" / "entrypoint.sh"
# Where the virtualenv's console scripts live: `herald` as the image's /opt/venv/bin holds it.
BIN = Path(sysconfig.get_path("scripts"))
BASH = shutil.which("bash") or "/bin/bash"
SHELLS = [BASH] + [found for found in [shutil.which("dash")] if found]
SHELL_IDS = [Path(shell).name for shell in SHELLS]
SECRET = "entrypoint-test-secret-" + "z" * 32
# Generous: a cold interpreter importing uvicorn and SQLAlchemy on a busy CI machine.
RUN_TIMEOUT = 60
START_TIMEOUT = 60
# uvicorn and the worker stop at once when nothing is in flight; this only bounds a failure.
STOP_TIMEOUT = 15
UNSHARE = ("unshare", "--user", "--map-root-user", "--pid", "--fork")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc, as in a container")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The image's environment in miniature; nothing of the developer's HERALD_* leaks in."""
    assert (BIN / "herald").is_file(), f"no herald console script in {BIN}; pip install -e ."
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
    }


def entrypoint(
    *args: str, env: dict[str, str], cwd: Path, shell: str = BASH
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [shell, str(SCRIPT), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


@contextlib.contextmanager
def started(
    *args: str, env: dict[str, str], cwd: Path, as_pid_1: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """The script running in a session of its own, killed with everything it started on exit;
    `as_pid_1`: in a PID namespace of its own, as in a container."""
    prefix = [*UNSHARE] if as_pid_1 else []
    with (cwd / "herald.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [*prefix, BASH, str(SCRIPT), *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


@functools.cache
def pid_namespaces() -> bool:
    """Whether an unprivileged user may start a PID namespace here (some CI machines refuse)."""
    try:
        probe = subprocess.run(  # noqa: S603 - fixed arguments
            [*UNSHARE, "true"], capture_output=True, timeout=RUN_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def herald_pid(process: subprocess.Popen[bytes], as_pid_1: bool) -> int:
    """The process a SIGTERM goes to: the one started, or the PID 1 that unshare forked."""
    if not as_pid_1:
        return process.pid
    [child] = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return int(child)


def wait_until_answering(url: str, process: subprocess.Popen[bytes], cwd: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, (cwd / "herald.log").read_text()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(
        f"nothing answered on {url} in {START_TIMEOUT} s:\n{(cwd / 'herald.log').read_text()}"
    )


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def stop(pid: int, process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to herald alone, as `docker stop` sends it to PID 1."""
    os.kill(pid, signal.SIGTERM)
    return process.wait(timeout=STOP_TIMEOUT)


def environment(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines())


async def subject(token: str) -> str:
    return (await Authenticator(Settings(jwt_secret=SECRET)).authenticate(token)).sub


@pytest.mark.anyio
async def test_token_prints_a_token_signed_with_the_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_JWT_SECRET"] = SECRET

    result = entrypoint("token", "--sub", "alice", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    [token] = result.stdout.splitlines()
    assert await subject(token) == "alice"


@pytest.mark.anyio
async def test_a_secret_file_stands_in_for_the_variable_even_in_production(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "jwt").write_text(SECRET + "\n")
    env.update(HERALD_ENV="production", HERALD_JWT_SECRET_FILE=str(tmp_path / "jwt"))

    result = entrypoint("token", "--sub", "bob", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    [token] = result.stdout.splitlines()
    assert await subject(token) == "bob"
    assert not (tmp_path / ".herald-dev-secret").exists()


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_file_variables_become_the_variables_and_leave_the_environment(
    shell: str, env: dict[str, str], tmp_path: Path
) -> None:
    url = "postgresql://herald:s3=cret@db:5432/herald"
    (tmp_path / "db").write_text(url + "\n\n")
    (tmp_path / "jwt").write_text(SECRET)
    del env["DATABASE_URL"]
    env.update(
        DATABASE_URL_FILE=str(tmp_path / "db"),
        HERALD_JWT_SECRET_FILE=str(tmp_path / "jwt"),
        # A setting that names a file Herald writes, not a secret to read: left alone.
        HERALD_DEV_SECRET_FILE=str(tmp_path / "dev-secret"),
    )

    result = entrypoint("env", env=env, cwd=tmp_path, shell=shell)

    assert result.returncode == 0, result.stderr
    seen = environment(result.stdout)
    assert seen["DATABASE_URL"] == url
    assert seen["HERALD_JWT_SECRET"] == SECRET
    assert seen["HERALD_DEV_SECRET_FILE"] == str(tmp_path / "dev-secret")
    assert "DATABASE_URL_FILE" not in seen
    assert "HERALD_JWT_SECRET_FILE" not in seen
    assert not {"file", "value", "var"} & set(seen)


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_a_variable_and_its_file_together_are_refused_before_anything_runs(
    shell: str, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "jwt").write_text(SECRET)
    env.update(HERALD_JWT_SECRET=SECRET, HERALD_JWT_SECRET_FILE=str(tmp_path / "jwt"))

    result = entrypoint("env", env=env, cwd=tmp_path, shell=shell)

    assert (result.returncode, result.stdout) == (64, "")
    assert "set HERALD_JWT_SECRET or HERALD_JWT_SECRET_FILE, not both" in result.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_an_unreadable_secret_file_is_refused_naming_it(
    shell: str, env: dict[str, str], tmp_path: Path
) -> None:
    env["REDIS_URL_FILE"] = str(tmp_path / "missing")

    result = entrypoint("env", env=env, cwd=tmp_path, shell=shell)

    assert (result.returncode, result.stdout) == (66, "")
    assert f"REDIS_URL_FILE: cannot read {tmp_path / 'missing'}" in result.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_other_commands_run_as_given_and_unknown_ones_fail_with_127(
    shell: str, env: dict[str, str], tmp_path: Path
) -> None:
    given = entrypoint("printf", "<%s>", "two words", "", "*", env=env, cwd=tmp_path, shell=shell)
    unknown = entrypoint("no-such-command", "--sub", "x", env=env, cwd=tmp_path, shell=shell)

    assert (given.returncode, given.stdout) == (0, "<two words><><*>"), given.stderr
    assert unknown.returncode == 127
    assert "no-such-command" in unknown.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=SHELL_IDS)
def test_a_leading_flag_is_an_argument_of_serve(
    shell: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = entrypoint("--port", "eighty", env=env, cwd=tmp_path, shell=shell)

    assert result.returncode == 2
    assert (
        "herald serve: error: argument --port: expected a port from 1 to 65535, got 'eighty'"
        in (result.stderr)
    )


def herald_subcommands() -> list[str]:
    """Every subcommand the `herald` CLI has, read from its own parser."""
    [commands] = [
        action
        # argparse lists its subcommands nowhere public.
        for action in parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    return sorted(commands.choices)


@pytest.mark.parametrize("command", herald_subcommands())
def test_every_herald_subcommand_passes_through_to_herald(
    command: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = entrypoint(command, "--help", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: herald {command}"), result.stdout


def test_retention_deletes_old_notifications_with_its_days_flag(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The operator's `docker run herald retention --days 30`, on a migrated database."""
    env["HERALD_JWT_SECRET"] = SECRET
    assert entrypoint("migrate", env=env, cwd=tmp_path).returncode == 0

    result = entrypoint("retention", "--days", "30", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted notifications older than 30 days: 0 notifications")


def test_migrate_creates_the_database(env: dict[str, str], tmp_path: Path) -> None:
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/data/herald.db", HERALD_JWT_SECRET=SECRET)
    (tmp_path / "data").mkdir()

    result = entrypoint("migrate", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("applied: ")
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "herald.db")) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"notifications", "inbox", "deliveries"} <= tables


@pytest.mark.parametrize(
    ("as_pid_1", "args", "host", "status"),
    [
        # A drained node exits 0, as PID 1 (what `docker stop` sees) and otherwise.
        pytest.param(False, (), "0.0.0.0", 0, id="no-arguments"),  # noqa: S104
        pytest.param(False, ("--host", "127.0.0.1"), "127.0.0.1", 0, id="host"),
        pytest.param(True, (), "0.0.0.0", 0, id="as-pid-1"),  # noqa: S104
    ],
)
def test_serve_is_herald_itself_answers_the_healthcheck_and_stops_on_sigterm(
    as_pid_1: bool,
    args: tuple[str, ...],
    host: str,
    status: int,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    if as_pid_1 and not pid_namespaces():
        pytest.skip("unshare cannot start a PID namespace here")
    port = free_port()
    env.update(HERALD_PORT=str(port), HERALD_JWT_SECRET=SECRET)

    with started(*args, env=env, cwd=tmp_path, as_pid_1=as_pid_1) as process:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", process, tmp_path)
        pid = herald_pid(process, as_pid_1)
        running = cmdline(pid)
        healthy = entrypoint("healthcheck", env=env, cwd=tmp_path)
        stopped = stop(pid, process)
    unhealthy = entrypoint("healthcheck", env=env, cwd=tmp_path)

    log = (tmp_path / "herald.log").read_text()
    # exec: what the signal went to is the interpreter running herald, not a shell above it.
    assert Path(running[1]) == BIN / "herald", running
    assert running[2] == "serve"
    assert f"serving on http://{host}:{port}" in log
    assert healthy.returncode == 0, healthy.stderr
    assert stopped == status, log
    assert f"Finished server process [{1 if as_pid_1 else pid}]" in log
    assert unhealthy.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{port}/healthz" in unhealthy.stderr


def test_a_worker_is_healthchecked_on_its_metrics_port_and_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env.update(HERALD_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/metrics", HERALD_JWT_SECRET=SECRET)

    with started("worker", "--metrics-port", str(port), env=env, cwd=tmp_path) as process:
        wait_until_answering(env["HERALD_HEALTHCHECK_URL"], process, tmp_path)
        running = cmdline(process.pid)
        healthy = entrypoint("healthcheck", env=env, cwd=tmp_path)
        status = stop(process.pid, process)
    unhealthy = entrypoint("healthcheck", env=env, cwd=tmp_path)

    assert Path(running[1]) == BIN / "herald", running
    assert running[2] == "worker"
    assert healthy.returncode == 0, healthy.stderr
    assert status == 0, (tmp_path / "herald.log").read_text()
    assert unhealthy.returncode == 1
    assert f"unhealthy: {env['HERALD_HEALTHCHECK_URL']}" in unhealthy.stderr


def test_serve_with_a_metrics_port_serves_it_and_still_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The metrics server leaves the signals to the API server, which stops both."""
    port, metrics_port = free_port(), free_port()
    env.update(
        HERALD_PORT=str(port), HERALD_METRICS_PORT=str(metrics_port), HERALD_JWT_SECRET=SECRET
    )

    with started(env=env, cwd=tmp_path) as process:
        wait_until_answering(f"http://127.0.0.1:{metrics_port}/metrics", process, tmp_path)
        on_api = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        status = stop(process.pid, process)

    assert on_api.status_code == 404
    assert status == 0, (tmp_path / "herald.log").read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
