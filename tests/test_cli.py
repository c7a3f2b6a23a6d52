"""The `herald` command (app/cli.py), run as a real process: `python -m herald_server ...` with an
environment of the test's choosing, in a scratch directory, every run bounded in time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from herald_server.auth import Authenticator, issue_token
from herald_server.config import Settings
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "cli-test-secret-" + "y" * 32
# Generous: a cold interpreter importing uvicorn and SQLAlchemy on a busy CI machine.
RUN_TIMEOUT = 60


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A minimal environment: nothing of the developer's own HERALD_* or DATABASE_URL leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
    }


def herald(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "herald_server", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def verify(secret: str, token: str) -> tuple[str, frozenset[str]]:
    principal = await Authenticator(Settings(jwt_secret=secret)).authenticate(token)
    return principal.sub, principal.scopes


@pytest.mark.anyio
async def test_token_prints_exactly_one_line_a_token_for_the_subject_and_scopes(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_JWT_SECRET"] = SECRET
    scopes = f"{SCOPE_PUBLISH} {SCOPE_ADMIN}"

    result = herald("token", "--sub", "alice", "--scope", scopes, env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert await verify(SECRET, lines[0]) == ("alice", frozenset({SCOPE_PUBLISH, SCOPE_ADMIN}))


@pytest.mark.anyio
async def test_token_in_development_signs_with_the_dev_secret_and_keeps_stdout_clean(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = herald("token", "--sub", "alice", env=env, cwd=tmp_path)
    second = herald("token", "--sub", "bob", env=env, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 1
    assert "development secret" in first.stderr
    assert second.stderr == ""
    secret = (tmp_path / ".herald-dev-secret").read_text().strip()
    assert await verify(secret, first.stdout.strip()) == ("alice", frozenset())
    assert await verify(secret, second.stdout.strip()) == ("bob", frozenset())


def test_migrate_applies_on_a_fresh_database_then_is_up_to_date(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/fresh.db"

    first = herald("migrate", env=env, cwd=tmp_path)
    second = herald("migrate", env=env, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert "applied: 0001_initial.sql" in first.stdout + first.stderr
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout + second.stderr
    assert (tmp_path / "fresh.db").exists()


def test_serve_with_an_unsupported_database_fails_fast_without_echoing_the_password(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["DATABASE_URL"] = "mysql://u:secret@h/db"

    result = herald("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=30)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DATABASE_URL" in output
    assert "secret" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERALD_SMTP_URL", "ftp://mailer:Pa55-w0rd@smtp.example.com"),
        ("HERALD_SMS_URL", "twilio://AC1:Pa55-w0rd@api.twilio.com/"),
        ("HERALD_VAPID_PRIVATE_KEY", "Pa55-w0rd-not-a-key"),
    ],
)
def test_a_worker_with_a_misconfigured_channel_fails_fast_naming_it(
    env: dict[str, str], tmp_path: Path, variable: str, value: str
) -> None:
    env[variable] = value

    result = herald("worker", env=env, cwd=tmp_path, timeout=30)

    assert result.returncode != 0
    assert variable in result.stderr
    assert "Pa55-w0rd" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_serve_in_production_without_a_secret_fails_naming_the_variable(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_ENV"] = "production"

    result = herald("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=30)

    assert result.returncode != 0
    assert "HERALD_JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".herald-dev-secret").exists()


def test_send_to_an_unreachable_node_fails_with_a_clear_message(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_JWT_SECRET"] = SECRET
    url = f"http://127.0.0.1:{free_port()}"

    result = herald("send", "--to", "alice", "--title", "hi", "--url", url, env=env, cwd=tmp_path)

    assert result.returncode != 0
    assert f"cannot reach {url}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def serving(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    yield from _serve(env, tmp_path)


@pytest.fixture
def serving_json(
    env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    yield from _serve({**env, "HERALD_LOG_FORMAT": "json"}, tmp_path)


def _serve(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`herald serve` on a free port, its output in a file; killed if a test leaves it running."""
    env["HERALD_JWT_SECRET"] = SECRET
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "herald_server", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def wait_until_healthy(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    with anyio.fail_after(30):
        while True:
            assert process.poll() is None, "herald serve exited early"
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Another process offers no readiness event to wait on; poll it, bounded above.
            await anyio.sleep(0.1)


@pytest.mark.anyio
async def test_serve_then_send_reaches_the_inbox_and_sigterm_stops_the_node(
    serving: tuple[str, subprocess.Popen[bytes]], env: dict[str, str], tmp_path: Path
) -> None:
    url, process = serving
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await wait_until_healthy(client, process)

        with anyio.fail_after(RUN_TIMEOUT):
            sent = await anyio.run_process(
                [sys.executable, "-m", "herald_server", "send", "--to", "alice",
                 "--title", "from the cli", "--url", url],
                env=env,
                cwd=tmp_path,
                check=False,
            )  # fmt: skip
        assert sent.returncode == 0, sent.stderr.decode()
        assert '"recipients":1' in sent.stdout.decode().replace(" ", "")

        alice = issue_token(Settings(jwt_secret=SECRET), "alice", [], 60)
        inbox = await client.get("/api/notifications", headers={"Authorization": f"Bearer {alice}"})
        assert inbox.status_code == 200, inbox.text
        assert [item["title"] for item in inbox.json()["items"]] == ["from the cli"]

    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(10):
        while process.poll() is None:  # noqa: ASYNC110 - a Popen offers no awaitable exit
            await anyio.sleep(0.05)
    log = (tmp_path / "serve.log").read_text()
    assert process.returncode == 0, log
    assert "Application shutdown complete" in log


@pytest.mark.anyio
async def test_serve_with_json_logs_writes_one_object_per_line_with_request_ids_and_no_token(
    serving_json: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, process = serving_json
    alice = issue_token(Settings(jwt_secret=SECRET), "alice", [], 60)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await wait_until_healthy(client, process)
        answer = await client.get(
            f"/api/notifications?token={alice}",
            headers={"Authorization": f"Bearer {alice}", "X-Request-ID": "cli-log-check"},
        )
        assert answer.status_code == 200, answer.text
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(10):
        while process.poll() is None:  # noqa: ASYNC110 - a Popen offers no awaitable exit
            await anyio.sleep(0.05)

    lines = [
        line
        for line in (tmp_path / "serve.log").read_text().splitlines()
        if not line.startswith("herald: ")
    ]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [entry for entry in entries if entry.get("request_id") == "cli-log-check"]
    assert [entry["http"]["path"] for entry in access] == ["/api/notifications"], entries
    assert access[0]["http"]["status"] == 200
    assert any(entry["message"] == "Application shutdown complete." for entry in entries)
    assert alice not in "\n".join(lines)


def test_retention_deletes_old_notifications_and_prints_what_it_deleted(
    env: dict[str, str], tmp_path: Path
) -> None:
    import sqlite3
    import time

    assert herald("migrate", env=env, cwd=tmp_path).returncode == 0
    old = int(time.time() * 1000) - 40 * 86_400_000
    with sqlite3.connect(tmp_path / "herald.db") as db:
        db.execute(
            "INSERT INTO notifications (type, title, body, data, priority, publisher, created_at)"
            " VALUES ('t', 'old', '', '{}', 'normal', 'p', ?)",
            (old,),
        )
        db.execute("INSERT INTO inbox (user_id, seq, notification_id) VALUES ('alice', 1, 1)")

    refused = herald("retention", env=env, cwd=tmp_path)
    result = herald("retention", "--days", "30", env=env, cwd=tmp_path)

    assert refused.returncode != 0
    assert "HERALD_RETENTION_DAYS" in refused.stderr
    assert result.returncode == 0, result.stderr
    assert "1 notifications, 1 inbox items" in result.stdout
    with sqlite3.connect(tmp_path / "herald.db") as db:
        assert db.execute("SELECT count(*) FROM notifications").fetchone() == (0,)
