"""Outbound URLs that users choose (webhooks, push endpoints) must not reach Herald's own network.

Without this check any user could register `http://169.254.169.254/…` or `http://localhost:6379`
and have Herald call it (SSRF). A host name is resolved and every address it resolves to must
be globally routable. The check runs when the URL is registered and, at delivery, on the very
resolution whose address is then dialled (herald_server.channels.pinned): checking one answer and
connecting to another would let a name that changes its answer in between (DNS rebinding)
walk past the check.

Refusals never say what a name resolved to, nor whether it resolved at all: either would let
any user map Herald's internal network by registering names and reading the errors. The
detail goes to the debug log instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from herald_server.errors import TargetNotAllowed

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2048
REFUSED = (
    "the host does not resolve, or resolves to an address that is not a public address"
    " (HERALD_ALLOW_PRIVATE_TARGETS allows private ones)"
)
# Addresses that carry an IPv4 address inside an IPv6 one reach that IPv4 address (through
# NAT64 or SIIT, a 6to4 relay, or the kernel itself), so the IPv4 address is what must be
# public. IPv4-mapped (::ffff:0:0/96), 6to4 and Teredo have their own properties in ipaddress.
IPV4_IN_LAST_32_BITS = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 (RFC 6052)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated by RFC 4291)
)
# Local-use NAT64 (RFC 8215) translates into the operator's own network; Python before 3.12
# counts it as global.
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")

# The addresses a host name resolves to. Injectable so tests can play a rebinding DNS server.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`: what httpx would have dialled."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in found]


def parse_target(url: str, *, require_https: bool) -> tuple[str, int]:
    """The host and port of an acceptable http(s) URL; TargetNotAllowed otherwise."""
    if len(url) > MAX_URL_CHARS or not url.isascii() or not url.isprintable():
        raise TargetNotAllowed(f"a URL of at most {MAX_URL_CHARS} printable ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetNotAllowed(f"not a URL: {exc}") from None
    schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise TargetNotAllowed(f"expected an {' or '.join(schemes)} URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetNotAllowed("credentials do not belong in the URL")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public(address: str) -> bool:
    """Whether Herald may call `address`: globally routable unicast, and so is every IPv4
    address it embeds (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in LOCAL_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(_is_global_unicast(inner) for inner in embedded)
    return _is_global_unicast(ip)


def _is_global_unicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    if any(ip in network for network in IPV4_IN_LAST_32_BITS):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    return ()


async def vetted_addresses(
    host: str, port: int, *, allow_private: bool, resolve: Resolver = system_resolve
) -> list[str]:
    """The addresses `host` resolves to, from one resolution, once every one of them may be
    called; TargetNotAllowed otherwise. A name that does not resolve is refused: it cannot be
    checked. With `allow_private` any address may be called."""
    try:
        addresses = list(dict.fromkeys(await resolve(host, port)))
    except (OSError, UnicodeError) as exc:
        log.debug("cannot resolve %r: %s", host, exc)
        raise TargetNotAllowed(REFUSED) from None
    refused = [address for address in addresses if not allow_private and not is_public(address)]
    if refused or not addresses:
        log.debug("%r resolves to %s, not only public addresses", host, addresses)
        raise TargetNotAllowed(REFUSED)
    return addresses


async def check_target(url: str, *, allow_private: bool, require_https: bool = False) -> None:
    """Refuse a URL Herald must not call: malformed, or resolving to a non-public address.

    With `allow_private` (development, tests, a trusted internal network) only the URL's shape
    is checked, so a name may be registered before it resolves.
    """
    host, port = parse_target(url, require_https=require_https and not allow_private)
    if not allow_private:
        await vetted_addresses(host, port, allow_private=False)
