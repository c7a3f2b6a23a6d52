"""The uvicorn server Herald runs in: one configuration, built from Settings, used by
`herald serve` and by the tests' live servers alike, so both meet the same protocol limits.

uvicorn bounds neither the size of a request's head (httptools buffers a header of any length)
nor the time a client may take to send its head or body (its keep-alive timer is cancelled by
the first byte and never re-armed while a request is incomplete), so a few sockets trickling
bytes would hold connections for ever. `BoundedHttpToolsProtocol` adds those three bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from herald_server import codec
from herald_server.config import Settings
from herald_server.errors import HeadersTooLarge, Problem, RequestTimeout
from herald_server.logs import logging_config, redact_tokens
from herald_server.streams.ws import MAX_CLIENT_FRAME

# The largest WebSocket message the protocol reads at all: above the app's own frame limit, so
# a frame between the two still gets the app's explanatory error, while a 15 MB frame is
# refused (close 1009) from its header alone instead of being buffered whole.
WS_MAX_MESSAGE_BYTES = 2 * MAX_CLIENT_FRAME


@dataclass(frozen=True, slots=True)
class RequestLimits:
    head_bytes: int
    head_seconds: float
    body_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        return cls(
            head_bytes=settings.max_request_head_bytes,
            head_seconds=settings.request_head_timeout_seconds,
            body_seconds=settings.request_body_timeout_seconds,
        )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the head's size, and on the time from a
    request's first byte (or the connection's opening) to its last header, and from there to
    its last body byte. Past one, the client gets a problem document and the connection ends."""

    limits: ClassVar[RequestLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # Bytes of an unfinished head seen in reads after the one that began it.
        self._head_bytes: int | None = None
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        began_before = self._head_bytes is not None
        super().data_received(data)
        if self._head_bytes is None or self.transport.is_closing():
            return
        # A read that began the head may end the previous request's body too: not counted,
        # so the bound is never hit early, and overshoots by one read (256 KiB) at most.
        if began_before:
            self._head_bytes += len(data)
        if self._head_bytes > self.limits.head_bytes:
            self._refuse(HeadersTooLarge(self._head_limit_text()))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        head = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head > self.limits.head_bytes:
            self._head_too_large = True
            # Stops the parser; uvicorn then answers through send_400_response, below.
            raise HeadersTooLargeError
        self._cancel_deadline()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.body_seconds, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Unless a pipelined request is running, or the last one's body is still due.
        finished = self.cycle.response_complete and not self.cycle.more_body
        if finished and not self.transport.is_closing():
            self._await_head()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(HeadersTooLarge(self._head_limit_text()))
        else:
            super().send_400_response(msg)

    def _head_limit_text(self) -> str:
        return f"request line and headers are at most {self.limits.head_bytes} bytes"

    def _await_head(self) -> None:
        self._arm(self.limits.head_seconds, self._head_timed_out)

    def _head_timed_out(self) -> None:
        if self._head_bytes is None:
            # Not a byte of a request yet: an idle connection, closed without a word, as a
            # client may be sending its next request on it at this very moment.
            self._cancel_deadline()
            self.transport.close()
        else:
            self._refuse(self._timeout("the request line and headers", self.limits.head_seconds))

    def _body_timed_out(self) -> None:
        self._refuse(self._timeout("the request body", self.limits.body_seconds))

    @staticmethod
    def _timeout(what: str, seconds: float) -> RequestTimeout:
        return RequestTimeout(f"{what} did not arrive within {seconds:g} s")

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, problem: Problem) -> None:
        """Answer `problem` and close, unless a response has begun (then just close); the
        application, if running, sees the client gone and its own answer is dropped."""
        self._cancel_deadline()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(problem_response(problem))
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


class HeadersTooLargeError(Exception):
    """Raised from a parser callback to stop parsing a head over the size bound."""


def problem_response(problem: Problem) -> bytes:
    """A whole HTTP/1.1 response carrying `problem`, for answers given before the app runs."""
    body = codec.dumps(problem.document())
    head = (
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def bounded_protocol(limits: RequestLimits) -> type[BoundedHttpToolsProtocol]:
    """uvicorn builds protocols from a class: one whose limits are these."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(
    settings: Settings,
    app: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    configure_logging: bool = True,
) -> uvicorn.Config:
    """The server for `app`: `configure_logging=False` leaves the process's logging as it is
    (the tests' capture), while token redaction is installed either way."""
    redact_tokens()
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        # `herald serve`'s own loop; a test's server runs in the test's loop instead.
        loop="uvloop",
        http=bounded_protocol(RequestLimits.of(settings)),
        # The legacy websockets implementation is deprecated (websockets 14+).
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        lifespan="on",
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level, settings.log_style)
        if configure_logging
        else None,
        # Observer writes the access log, without the query strings that carry stream tokens.
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
