"""deploy/nginx.conf, run by the real nginx in front of a live Herald node.

The file under test is deploy/nginx.conf itself, rendered with a small, explicit set of
substitutions (`render`): the node's address for the compose service names, free loopback
ports for 80 and 443, a self-signed certificate, and paths under the test's directory for
what nginx writes. Everything else is the file as shipped."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from herald_server import codec
from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import run_server
from tests.helpers import free_port, open_stream, publish

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The streams one nginx worker is sized for (deploy/nginx.conf's sizing comment).
STREAMS_PER_WORKER = 10_000
# nginx starts in milliseconds; this bounds a machine under load.
START_TIMEOUT = 20
# nginx stops at once on SIGQUIT with nothing in flight; this only bounds a failure.
STOP_TIMEOUT = 10
# nginx's temporary files: Debian's defaults under /var/lib/nginx need root.
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _nginx_installed(request: pytest.FixtureRequest) -> None:
    """As with PostgreSQL and Redis: a skip on a developer's machine, an error in CI."""
    if not Path(NGINX).is_file():
        if request.config.getoption("--require-backends"):
            pytest.fail(f"nginx is required but not installed at {NGINX} (apt install nginx-light)")
        pytest.skip("nginx is not installed (apt install nginx-light)")


@dataclass
class Nginx:
    http: str
    https: str
    tls: ssl.SSLContext
    access_log: Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, standing in for /etc/nginx/tls."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "herald.crt", directory / "herald.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def render(node: str, http_port: int, https_port: int, directory: Path) -> Path:
    """deploy/nginx.conf with each substitution made exactly once (a change to the file that
    moves one of them fails here, rather than testing something else)."""
    crt, key = self_signed(directory)
    temp = "".join(f"    {name}_temp_path {directory / name};\n" for name in TEMP_PATHS)
    substitutions = {
        "        server node1:8000;\n        server node2:8000;\n": f"        server {node};\n",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/nginx/tls/herald.crt": str(crt),
        "/etc/nginx/tls/herald.key": str(key),
        "pid /run/nginx.pid;": f"pid {directory / 'nginx.pid'};",
        "/var/log/nginx/error.log": str(directory / "error.log"),
        "/var/log/nginx/access.log": str(directory / "access.log"),
        "\nhttp {\n": "\nhttp {\n" + temp,
    }
    text = CONF.read_text()
    for old, new in substitutions.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    rendered = directory / "nginx.conf"
    rendered.write_text(text)
    return rendered


def nginx_command(conf: Path, *args: str) -> list[str]:
    return [
        NGINX,
        "-p",
        str(conf.parent),
        "-e",
        str(conf.parent / "error.log"),
        "-c",
        str(conf),
        *args,
    ]


@contextlib.contextmanager
def running_nginx(conf: Path) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground, as this test's child; stopped (SIGQUIT, then SIGKILL) on exit."""
    process = subprocess.Popen(  # noqa: S603 - the system's nginx, fixed arguments
        nginx_command(conf, "-g", "daemon off;"),
        stdout=subprocess.DEVNULL,
        # Its errors go to error.log (-e and error_log), which a failed start reports.
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


async def wait_until_listening(url: str, process: subprocess.Popen[bytes], conf: Path) -> None:
    with anyio.fail_after(START_TIMEOUT):
        while True:
            assert process.poll() is None, (conf.parent / "error.log").read_text()
            try:
                async with httpx.AsyncClient(timeout=2) as probe:
                    await probe.get(url + "/healthz")
                return
            except httpx.TransportError:
                await anyio.sleep(0.05)  # nginx offers no readiness signal but its socket


@pytest.fixture
async def nginx(settings: Settings, tmp_path: Path) -> AsyncIterator[Nginx]:
    async with run_server(create_app(settings)) as node:
        directory = tmp_path / "nginx"
        directory.mkdir()
        http_port, https_port = free_port(), free_port()
        conf = render(node.url.removeprefix("http://"), http_port, https_port, directory)
        with running_nginx(conf) as process:
            http = f"http://127.0.0.1:{http_port}"
            await wait_until_listening(http, process, conf)
            tls = ssl.create_default_context(cafile=str(directory / "herald.crt"))
            yield Nginx(http, f"https://127.0.0.1:{https_port}", tls, directory / "access.log")


@pytest.mark.parametrize("listener", ["http", "https"])
async def test_an_event_published_through_nginx_arrives_through_nginx(
    listener: str, nginx: Nginx, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    base = nginx.http if listener == "http" else nginx.https
    async with (
        httpx.AsyncClient(base_url=base, timeout=10, verify=nginx.tls) as client,
        open_stream(client, alice) as stream,
    ):
        sent = await publish(client, publisher, recipients=["alice"], title="through nginx")
        event = await stream.next_of("notification")
    assert event.data["id"] == sent["id"]
    assert event.data["title"] == "through nginx"


async def test_herald_answers_with_the_request_id_nginx_logged(
    nginx: Nginx, alice: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=nginx.http, timeout=10) as client:
        # A client's own id is not trusted: nginx's replaces it.
        response = await client.get(
            "/api/notifications", headers={**alice, "X-Request-ID": "chosen-by-the-client"}
        )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    assert f"request_id={request_id}" in nginx.access_log.read_text()


async def test_a_websocket_connects_through_nginx(
    nginx: Nginx, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    url = nginx.http.replace("http://", "ws://") + "/api/ws"
    async with (
        connect(url, additional_headers=alice, open_timeout=5) as ws,
        httpx.AsyncClient(base_url=nginx.http, timeout=10) as client,
    ):
        await publish(client, publisher, recipients=["alice"], title="over ws")
        with anyio.fail_after(5):
            while (frame := codec.loads(await ws.recv()))["event"] != "notification":
                pass
    assert frame["data"]["title"] == "over ws"


@pytest.mark.parametrize(
    "path", ["/metrics", "/metrics/cluster", "/admin", "/", "/static/admin.html"]
)
async def test_metrics_admin_and_demo_pages_are_refused_on_the_public_listener(
    path: str, nginx: Nginx, settings: Settings
) -> None:
    async with httpx.AsyncClient(timeout=10, verify=nginx.tls) as client:
        plain = await client.get(nginx.http + path)
        tls = await client.get(nginx.https + path)
    assert (plain.status_code, tls.status_code) == (403, 403)


def test_nginx_accepts_the_file_sized_for_10000_streams_per_worker(tmp_path: Path) -> None:
    text = CONF.read_text()
    [connections] = re.findall(r"^\s*worker_connections (\d+);", text, flags=re.MULTILINE)
    [files] = re.findall(r"^worker_rlimit_nofile (\d+);", text, flags=re.MULTILINE)
    # A proxied stream holds two connections: the client's and the upstream one.
    assert int(connections) >= 2 * STREAMS_PER_WORKER
    assert int(files) >= int(connections)
    conf = render("127.0.0.1:8000", free_port(), free_port(), tmp_path)

    checked = subprocess.run(  # noqa: S603 - the system's nginx, fixed arguments
        nginx_command(conf, "-t"), capture_output=True, text=True, timeout=STOP_TIMEOUT, check=False
    )

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
