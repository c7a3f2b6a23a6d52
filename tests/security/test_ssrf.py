"""Hole 5: walking past the SSRF guard.

The attacker holds an ordinary user token and a DNS server of their own. They register a
webhook or a push subscription whose host they control and try to make Herald call into its
own network: a name that answers a public address to the check and 127.0.0.1 to the connect
(DNS rebinding), IPv6 spellings of internal IPv4 addresses, and refusals that would tell them
what Herald's internal names resolve to. Their DNS server is a resolver the test controls;
127.0.0.1 stands for Herald's network, and a listener there must never be reached.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest

from herald_server.channels import (
    Message,
    Outcome,
    PushContent,
    PushTarget,
    WebhookContent,
    WebhookTarget,
)
from herald_server.channels.pinned import PinnedBackend, PinnedTransport
from herald_server.channels.webhook import WebhookChannel
from herald_server.channels.webpush import WebPushChannel
from herald_server.config import Settings, with_dev_vapid_key
from herald_server.main import create_app
from herald_server.netguard import is_public
from tests.api.test_push_subscriptions import subscription
from tests.channels.test_webpush import vapid_key
from tests.conftest import run_server
from tests.helpers import assert_problem
from tests.servers.listener import listening
from tests.servers.smtp import write_certificate

__all__ = ["vapid_key"]  # a fixture, shared

pytestmark = pytest.mark.anyio

TIMEOUT = 2.0
INTERNAL = "127.0.0.1"
# RFC 9637's documentation prefix: public by the guard's table, routed nowhere, so a dial to
# it fails at once and never reaches anybody.
PUBLIC = "3fff::1"
# The addresses an IPv4 address inside an IPv6 one reaches (a NAT64 gateway, a 6to4 relay,
# the kernel), each spelling an internal IPv4 address.
TEREDO_TO_LOOPBACK = ipaddress.IPv6Address(
    (0x20010000 << 96) | (int(ipaddress.IPv4Address("8.8.8.8")) << 64) | (0x7F000001 ^ 0xFFFFFFFF)
)
INTERNAL_IN_IPV6 = {
    "ipv4-mapped": "::ffff:127.0.0.1",
    "ipv4-compatible": "::127.0.0.1",
    "ipv4-translated": "::ffff:0:169.254.169.254",
    "nat64": "64:ff9b::10.0.0.1",
    "local-nat64": "64:ff9b:1::808:808",
    "6to4": "2002:7f00:1::1",
    "teredo": str(TEREDO_TO_LOOPBACK),
}


class AttackerDns:
    """The attacker's DNS server: the n-th question gets the n-th answer, the last for ever."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = answers
        self.questions: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.questions.append(host)
        return self._answers[min(len(self.questions), len(self._answers)) - 1]


class UnknownNameDns:
    """A DNS server that knows no name."""

    async def __call__(self, host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
async def node(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A node as production runs it (private targets refused), with Web Push on."""
    configured = with_dev_vapid_key(replace(settings, dev_vapid_file=str(tmp_path / "vapid")))
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield client


async def webhook(url: str, dns: AttackerDns | UnknownNameDns, allow_private: bool) -> Outcome:
    """One delivery to `url` by the webhook channel, its names resolved by `dns`."""
    channel = WebhookChannel(TIMEOUT, allow_private, dns)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    target = WebhookTarget(1, url, secret)
    try:
        with anyio.fail_after(10):
            return await channel.send(Message("d-1", "mallory", target, WebhookContent("t", {})))
    finally:
        await channel.aclose()


async def push(endpoint: str, dns: AttackerDns, vapid_key: str) -> Outcome:
    """One delivery to `endpoint` by the Web Push channel as production runs it."""
    channel = WebPushChannel(vapid_key, "mailto:ops@herald.example", TIMEOUT, False, dns)
    keys = subscription()["keys"]
    target = PushTarget(1, endpoint, keys["p256dh"], keys["auth"])
    try:
        with anyio.fail_after(10):
            return await channel.send(Message("d-1", "mallory", target, PushContent("t", "b")))
    finally:
        await channel.aclose()


async def test_a_name_that_rebinds_to_loopback_after_the_check_never_reaches_loopback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The system resolves `localhost` to 127.0.0.1: a delivery that asked the system again
    after the guard's check would reach the internal listener."""
    assert is_public(PUBLIC), "the test needs an address the guard lets through"
    caplog.set_level(logging.DEBUG, "herald_server.channels.pinned")
    dns = AttackerDns([PUBLIC], [INTERNAL])
    async with listening(INTERNAL) as internal:
        outcome = await webhook(f"http://localhost:{internal.port}/hook", dns, False)

    assert internal.connections == 0
    assert dns.questions == ["localhost"]
    assert f"connecting to localhost at {PUBLIC} port {internal.port}" in caplog.text
    assert outcome.status == "retry", outcome.detail


async def test_the_connection_goes_to_the_address_that_was_resolved_once_and_nowhere_else() -> None:
    """With private targets allowed the pinning still holds: the attacker's DNS answers
    127.0.0.2 and then 127.0.0.1, and only 127.0.0.2 sees the request, under the URL's name."""
    dns = AttackerDns(["127.0.0.2"], [INTERNAL])
    async with listening(INTERNAL) as internal, listening("127.0.0.2", internal.port) as vetted:
        outcome = await webhook(f"http://localhost:{internal.port}/hook", dns, True)

    assert outcome.status == "delivered", outcome.detail
    assert internal.connections == 0
    assert [request["host"] for request in vetted.requests] == [f"localhost:{internal.port}"]
    assert dns.questions == ["localhost"]


async def test_an_internal_address_behind_a_public_first_answer_is_refused() -> None:
    """Every address of the answer is vetted, not only the one that would be dialled first."""
    dns = AttackerDns([PUBLIC, INTERNAL])
    async with listening(INTERNAL) as internal:
        outcome = await webhook(f"http://hooks.attacker.test:{internal.port}/", dns, False)

    assert outcome.status == "failed"
    assert internal.connections == 0


@pytest.mark.parametrize("spelling", INTERNAL_IN_IPV6.values(), ids=INTERNAL_IN_IPV6.keys())
async def test_an_ipv6_spelling_of_an_internal_address_is_refused_at_delivery(
    spelling: str, vapid_key: str
) -> None:
    async with listening(INTERNAL) as internal:
        hooked = await webhook(
            f"http://hooks.attacker.test:{internal.port}/", AttackerDns([spelling]), False
        )
        pushed = await push(
            f"https://push.attacker.test:{internal.port}/", AttackerDns([spelling]), vapid_key
        )

    for outcome in (hooked, pushed):
        assert outcome.status == "failed"
        assert_no_address(outcome.detail, spelling)
    assert internal.connections == 0


async def test_an_ipv6_spelling_of_an_internal_address_is_refused_at_registration(
    node: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    for spelling in INTERNAL_IN_IPV6.values():
        hook = await node.post("/api/webhooks", headers=alice, json={"url": url_of(spelling)})
        endpoint = url_of(spelling, "https")
        subscribed = await node.post(
            "/api/push-subscriptions", headers=alice, json=subscription(endpoint)
        )
        for response in (hook, subscribed):
            detail = assert_problem(response, 422, "target-not-allowed")["detail"]
            assert_no_address(detail, spelling)

    assert (await node.get("/api/webhooks", headers=alice)).json()["items"] == []
    assert (await node.get("/api/push-subscriptions", headers=alice)).json()["items"] == []


async def test_a_refusal_does_not_tell_what_an_internal_name_resolves_to(
    node: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    """Probing `localhost` (or any internal name) by registration learns nothing."""
    response = await node.post("/api/webhooks", headers=alice, json={"url": "http://localhost/"})

    detail = assert_problem(response, 422, "target-not-allowed")["detail"]
    assert_no_address(detail, INTERNAL)
    assert_no_address(detail, "::1")


async def test_a_refusal_does_not_tell_whether_a_name_exists() -> None:
    """An internal name and a name that does not exist are refused in the same words, so
    refusals cannot be used to list the names of Herald's network."""
    url = "http://db.internal.test/"
    existing = await webhook(url, AttackerDns(["10.0.0.7"]), False)
    unknown = await webhook(url, UnknownNameDns(), False)

    assert existing.status == unknown.status == "failed"
    assert existing.detail == unknown.detail
    assert_no_address(existing.detail, "10.0.0.7")


async def test_tls_to_a_pinned_address_names_the_host_in_sni_host_and_certificate_check(
    tmp_path: Path,
) -> None:
    """The socket goes to the vetted address; the TLS server name, the certificate check and
    the Host header stay the URL's name. The certificate is for hooks.test and 127.0.0.1, so
    a check against the dialled address would pass for other.test too."""
    server, trusting = tls_contexts(tmp_path, "hooks.test")
    async with listening(INTERNAL, tls=server) as receiver:
        async with pinned_client(trusting) as client:
            response = await client.post(f"https://hooks.test:{receiver.port}/", content=b"{}")
        async with pinned_client(trusting) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.post(f"https://other.test:{receiver.port}/", content=b"{}")

    assert response.status_code == 204
    assert receiver.server_names == ["hooks.test", "other.test"]
    assert [request["host"] for request in receiver.requests] == [f"hooks.test:{receiver.port}"]


def tls_contexts(directory: Path, host_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server's context with a self-signed certificate for `host_name`, and a client's
    that trusts it."""
    certificate = write_certificate(directory, host_name)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certificate, directory / "key.pem")
    return server, ssl.create_default_context(cafile=certificate)


def pinned_client(trusting: ssl.SSLContext) -> httpx.AsyncClient:
    """The channels' transport, every name resolving to 127.0.0.1."""
    backend = PinnedBackend(allow_private=True, resolve=AttackerDns([INTERNAL]))
    return httpx.AsyncClient(transport=PinnedTransport(backend, verify=trusting), timeout=TIMEOUT)


def url_of(address: str, scheme: str = "http") -> str:
    return f"{scheme}://[{address}]/hook"


def assert_no_address(detail: str, address: str) -> None:
    """Neither the address nor any spelling of the IPv4 address it carries."""
    ip = ipaddress.ip_address(address)
    spellings = {address, str(ip), ip.exploded}
    if isinstance(ip, ipaddress.IPv6Address):
        spellings.add(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    assert not [shown for shown in spellings if shown in detail], detail
