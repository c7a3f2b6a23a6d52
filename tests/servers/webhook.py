"""A webhook receiver on loopback that verifies signatures with the Standard Webhooks
library itself, dedupes on `webhook-id` like an idempotent consumer, and misbehaves on
request (failures, 410, redirects, slowness) as real receivers do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import run_server

# Where simulated 3xx answers point. It is a hook like any other, so a followed redirect
# would show up in `hits` under this name.
REDIRECT_TARGET = "redirect-target"
# Simulated failures answer with more than a channel keeps, so tests can see it cut them.
FAILURE_PADDING = " -" + "." * 500


@dataclass(frozen=True)
class WebhookArrival:
    name: str
    webhook_id: str
    payload: dict[str, Any]
    # Lowercased names: webhook-id, webhook-timestamp, webhook-signature, user-agent, ...
    headers: dict[str, str]


@dataclass(frozen=True)
class WebhookRejection:
    name: str
    reason: str
    headers: dict[str, str]


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    # None: until recover().
    remaining: int | None


class WebhookReceiver:
    def __init__(self) -> None:
        # Set once the server listens: `http://127.0.0.1:<port>`.
        self.base = ""
        # Every verified request, resends included.
        self.arrivals: list[WebhookArrival] = []
        # The first arrival per webhook-id: what an idempotent consumer acts on.
        self.unique: dict[str, WebhookArrival] = {}
        self.rejected: list[WebhookRejection] = []
        # Every request per hook name, whatever was answered.
        self.hits: Counter[str] = Counter()
        self._secrets: dict[str, str] = {}
        self._failures: dict[str, _Failure] = {}
        self._gone: set[str] = set()
        self._holds: dict[str, float] = {}
        self._flooding: set[str] = set()
        self._arrived = anyio.Event()
        self._closed = anyio.Event()

    def url(self, name: str) -> str:
        return f"{self.base}/hooks/{name}"

    def set_secret(self, name: str, secret: str) -> None:
        """The secret Herald returned when `url(name)` was registered; until it is set,
        every request to the hook is rejected."""
        self._secrets[name] = secret

    def fail_next(
        self, name: str, count: int, status: int = 503, retry_after: int | None = None
    ) -> None:
        self._failures[name] = _Failure(status, retry_after, count)

    def fail_always(self, name: str, status: int) -> None:
        self._failures[name] = _Failure(status, None, None)

    def gone(self, name: str) -> None:
        self._gone.add(name)

    def hold(self, name: str, seconds: float) -> None:
        """Answer requests to `name` only after `seconds` (they are verified and recorded
        first, as a receiver that acts before it answers), keeping each in flight."""
        self._holds[name] = seconds

    def flood(self, name: str) -> None:
        """Answer 400 with a body that never ends, as a hostile endpoint would."""
        self._flooding.add(name)

    def recover(self, name: str) -> None:
        """Undo fail_next, fail_always, gone, hold and flood for `name`."""
        self._failures.pop(name, None)
        self._gone.discard(name)
        self._holds.pop(name, None)
        self._flooding.discard(name)

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        """Until `count` distinct webhook-ids have arrived."""
        with anyio.fail_after(timeout):
            while len(self.unique) < count:
                await self._arrived.wait()

    def close(self) -> None:
        """Release held requests, so the server can stop at once."""
        self._closed.set()

    def app(self) -> Starlette:
        # GET too: a followed 302 or 303 would come back as one and must still be counted.
        return Starlette(routes=[Route("/hooks/{name}", self._receive, methods=["GET", "POST"])])

    async def _receive(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] += 1
        misbehaviour = self._misbehaviour(name)
        if misbehaviour is not None:
            return misbehaviour
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload = self._verified(name, body, headers)
        except (WebhookVerificationError, ValueError) as exc:
            self.rejected.append(WebhookRejection(name, str(exc), headers))
            return PlainTextResponse("signature verification failed", 401)
        self._record(WebhookArrival(name, headers["webhook-id"], payload, headers))
        with anyio.move_on_after(self._holds.get(name, 0)):
            await self._closed.wait()
        return PlainTextResponse("ok")

    def _misbehaviour(self, name: str) -> Response | None:
        if name in self._gone:
            return PlainTextResponse("this hook was deleted", 410)
        if name in self._flooding:
            return StreamingResponse(self._endless(), 400)
        failure = self._failures.get(name)
        if failure is None:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[name]
        headers = {"location": self.url(REDIRECT_TARGET)} if 300 <= failure.status < 400 else {}
        if failure.retry_after is not None:
            headers["retry-after"] = str(failure.retry_after)
        body = f"simulated {failure.status}{FAILURE_PADDING}"
        return PlainTextResponse(body, failure.status, headers=headers)

    async def _endless(self) -> AsyncIterator[bytes]:
        while not self._closed.is_set():
            yield b"flood " * 1000
            await anyio.sleep(0.01)

    def _verified(self, name: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        secret = self._secrets.get(name)
        if secret is None:
            raise ValueError(f"no secret was set for {name!r}")
        payload = Webhook(secret).verify(body, headers)
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
        return payload

    def _record(self, arrival: WebhookArrival) -> None:
        self.arrivals.append(arrival)
        self.unique.setdefault(arrival.webhook_id, arrival)
        self._arrived.set()
        self._arrived = anyio.Event()


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with run_server(receiver.app()) as live:
        receiver.base = live.url
        try:
            yield receiver
        finally:
            receiver.close()
