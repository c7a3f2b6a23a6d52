"""Hole 4: `POST /api/dev/login?sub=ops&scope=notifications:admin` hands an admin token to
whoever asks. The image must not serve it unless told to run in development, and even then a
node listening on the network answers it only to this machine."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from herald_server.config import ConfigError, Settings, from_env
from herald_server.main import create_app
from tests.conftest import LiveServer, run_server
from tests.helpers import assert_problem, free_port
from tests.test_entrypoint import SECRET, entrypoint, env, started, wait_until_answering

__all__ = ["env"]  # the entrypoint's environment fixture, shared

pytestmark = pytest.mark.anyio

ADMIN_LOGIN = "/api/dev/login?sub=ops&scope=notifications:admin"


def network_address() -> str | None:
    """This machine's address on its default route, as another machine would reach it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def environment(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines())


def test_the_image_entrypoint_runs_in_production_unless_told_otherwise(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_JWT_SECRET"] = SECRET
    told = {**env, "HERALD_ENV": "development"}

    assert environment(entrypoint("env", env=env, cwd=tmp_path).stdout)["HERALD_ENV"] == (
        "production"
    )
    assert environment(entrypoint("env", env=told, cwd=tmp_path).stdout)["HERALD_ENV"] == (
        "development"
    )


def test_the_image_with_a_secret_and_no_herald_env_serves_no_dev_login(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env.update(HERALD_JWT_SECRET=SECRET, HERALD_PORT=str(port))
    url = f"http://127.0.0.1:{port}"

    with started(env=env, cwd=tmp_path) as process:
        wait_until_answering(f"{url}/healthz", process, tmp_path)
        answer = httpx.post(url + ADMIN_LOGIN, timeout=5)

    assert_problem(answer, 404, "not-found")
    assert "dev login is off" in answer.json()["detail"]


@pytest.fixture
async def on_all_interfaces(settings: Settings) -> AsyncIterator[LiveServer]:
    """A development node listening on every interface, as `--host 0.0.0.0` makes it."""
    async with run_server(create_app(settings), settings=settings, host="0.0.0.0") as live:  # noqa: S104
        yield live


async def test_a_node_on_the_network_refuses_dev_login_to_another_machine(
    on_all_interfaces: LiveServer,
) -> None:
    address = network_address()
    assert address is not None, "the attack needs an address of this machine besides loopback"
    port = on_all_interfaces.url.rsplit(":", 1)[1]

    async with httpx.AsyncClient(timeout=5) as attacker:
        refused = await attacker.post(f"http://{address}:{port}{ADMIN_LOGIN}")
    async with httpx.AsyncClient(timeout=5) as developer:
        local = await developer.post(f"http://127.0.0.1:{port}/api/dev/login?sub=alice")

    assert_problem(refused, 404, "not-found")
    assert "loopback" in refused.json()["detail"]
    assert local.status_code == 201, local.text


@pytest.mark.parametrize(
    "relayed",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
    ],
)
async def test_a_request_relayed_by_a_proxy_on_this_machine_is_refused(
    on_all_interfaces: LiveServer, relayed: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=on_all_interfaces.url, timeout=5) as attacker:
        refused = await attacker.post(ADMIN_LOGIN, headers=relayed)

    assert_problem(refused, 404, "not-found")


async def test_only_the_loudly_named_override_opens_dev_login_to_the_network(
    settings: Settings,
) -> None:
    address = network_address()
    assert address is not None, "the attack needs an address of this machine besides loopback"
    opened = replace(settings, insecure_dev_login_from_network=True)

    async with (
        run_server(create_app(opened), settings=opened, host="0.0.0.0") as live,  # noqa: S104
        httpx.AsyncClient(timeout=5) as remote,
    ):
        port = live.url.rsplit(":", 1)[1]
        answer = await remote.post(f"http://{address}:{port}/api/dev/login?sub=alice")

    assert answer.status_code == 201, answer.text


def test_the_network_override_is_refused_in_production() -> None:
    production = {"HERALD_ENV": "production", "HERALD_JWT_SECRET": SECRET}

    with pytest.raises(ConfigError, match="HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK"):
        from_env({**production, "HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK": "true"})
    assert not from_env(production).dev_login_enabled
