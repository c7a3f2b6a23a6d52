"""HTTP to URLs that users chose, connected to exactly the address that was checked.

httpx resolves a URL's host itself when it connects, so checking the name first
(herald_server.netguard) and then handing the URL to httpx resolves it twice: a name whose DNS
answers a public address to the check and 127.0.0.1 to the connect (DNS rebinding) would reach
Herald's own network. Here each new connection resolves the host once, vets every address of that
one answer, and dials one of those addresses. Only the socket's address changes: the Host header,
the TLS SNI and the certificate check all still use the URL's host name.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from herald_server.netguard import Resolver, system_resolve, vetted_addresses

log = logging.getLogger(__name__)

# httpx's own defaults, which its pool would have had: pinning changes nothing else.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer, with the host name of each connection replaced by an address
    that herald_server.netguard allowed from the same resolution."""

    def __init__(self, allow_private: bool, resolve: Resolver = system_resolve) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Dial the vetted addresses in the resolver's order until one answers, as a client
        falls back from an unreachable IPv6 address to IPv4."""
        addresses = await vetted_addresses(
            host, port, allow_private=self._allow_private, resolve=self._resolve
        )
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            log.debug("connecting to %s at %s port %d", host, address, port)
            try:
                return await self._network.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None, "vetted_addresses answers at least one address"
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a PinnedBackend. `verify` as httpx takes it: tests pass a context
    that trusts their own certificate authority."""

    def __init__(self, backend: PinnedBackend, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, limits=LIMITS)
        # httpx (pinned to one version in setup.cfg) builds its pool without a way to pass a
        # network backend, so the pool is built again with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            network_backend=backend,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
        )
