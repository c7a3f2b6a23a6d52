"""Outbound URLs that users choose (webhooks, push endpoints) must not reach Herald's own network.

Without this check any user could register `http://169.254.169.254/…` or `http://localhost:6379`
and have Herald call it (SSRF). A host name is resolved and every address it resolves to must
be globally routable; the check runs when the URL is registered and again before each send,
since DNS may change in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from herald_server.errors import TargetNotAllowed

MAX_URL_CHARS = 2048


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
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str, *, allow_private: bool, require_https: bool = False) -> None:
    """Refuse a URL Herald must not call: malformed, or resolving to a non-public address.

    With `allow_private` (development, tests, a trusted internal network) only the URL's shape
    is checked. A name that does not resolve is refused too: it cannot be checked.
    """
    host, port = parse_target(url, require_https=require_https and not allow_private)
    if allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetNotAllowed(f"cannot resolve {host!r}: {exc}") from None
    for *_, sockaddr in found:
        if not is_public(str(sockaddr[0])):
            raise TargetNotAllowed(
                f"{host!r} resolves to {sockaddr[0]}, which is not a public address"
                " (HERALD_ALLOW_PRIVATE_TARGETS allows it)"
            )
