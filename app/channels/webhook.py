"""Webhooks: one signed POST per delivery, as Standard Webhooks (https://www.standardwebhooks.com)
specifies.

`webhook-id` is the delivery's key, the same on every retry, so a receiver that dedupes on it
acts on each notification once however often Herald has to try. A receiver's 2xx counts as
delivered: nobody comes after it. Redirects are never followed: the URL was checked against
Herald's own network (herald_server.netguard), the Location it points to was not. Each
connection goes to an address checked on the same resolution (herald_server.channels.pinned).

The request helpers below the channel are shared with the Web Push channel: both POST to URLs
that users chose, so both bound the whole exchange and how much of the answer they read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from herald_server import __version__, codec
from herald_server.channels import Channel, Message, Outcome, WebhookContent, WebhookTarget
from herald_server.channels.pinned import PinnedBackend, PinnedTransport
from herald_server.errors import TargetNotAllowed
from herald_server.netguard import Resolver, parse_target, system_resolve

USER_AGENT = f"Herald/{__version__}"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Retried besides every 5xx: Request Timeout, Too Early, Too Many Requests.
RETRY_STATUSES = frozenset({408, 425, 429})
# Enough of an answer for an operator to see what went wrong; the rest is never read.
EXCERPT_CHARS = 200
EXCERPT_BYTES = 4 * EXCERPT_CHARS


class WebhookChannel:
    def __init__(
        self, timeout: float, allow_private: bool, resolve: Resolver = system_resolve
    ) -> None:
        self._timeout = timeout
        self._client = new_client(timeout, allow_private, resolve)

    async def send(self, message: Message) -> Outcome:
        target, content = message.target, message.content
        assert isinstance(target, WebhookTarget), "the webhook channel sends to WebhookTargets"
        assert isinstance(content, WebhookContent), "the webhook channel sends WebhookContent"
        try:
            parse_target(target.url, require_https=False)
            body, headers = _signed_request(message.key, target.secret, content)
        except (TargetNotAllowed, ValueError) as exc:
            return Outcome("failed", str(exc))
        answer = await post(self._client, target.url, body, headers, self._timeout)
        return answer if isinstance(answer, Outcome) else _outcome(answer)

    async def aclose(self) -> None:
        await self._client.aclose()


def _signed_request(
    webhook_id: str, secret: str, content: WebhookContent
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed now: receivers refuse old timestamps, so a
    retry is signed afresh. ValueError when the id or the secret cannot make a valid one."""
    if not webhook_id.isascii() or not webhook_id.isprintable():
        raise ValueError("the delivery key is not printable ASCII, so it cannot be a webhook-id")
    now = datetime.now(UTC)
    timestamp = int(now.timestamp())
    body = codec.dumps(
        {"type": content.event_type, "timestamp": _rfc3339(now), "data": content.data}
    )
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    signature = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return body, {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(signature).decode(),
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _secret_key(secret: str) -> bytes:
    """The HMAC key inside `whsec_<base64>`. Like the spec's libraries, accept it unpadded."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        raise ValueError("the webhook secret is not whsec_ followed by base64")
    return key


def _outcome(reply: Reply) -> Outcome:
    if reply.is_success:
        return Outcome("delivered", reply.describe())
    if reply.status == 410:
        return Outcome("gone", reply.describe())
    if reply.status in RETRY_STATUSES or reply.status >= 500:
        return Outcome("retry", reply.describe(), retry_after=retry_after(reply.headers))
    return Outcome("failed", reply.describe())


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's answer: its status, headers and the start of its body, on one line."""

    status: int
    headers: httpx.Headers
    excerpt: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        status = f"HTTP {self.status}"
        if 300 <= self.status < 400:
            status += " (redirects are not followed)"
        return f"{status}: {self.excerpt}" if self.excerpt else status


def new_client(timeout: float, allow_private: bool, resolve: Resolver) -> httpx.AsyncClient:
    """One per channel, reused, so connections to a provider stay open between deliveries.

    Every connection is pinned to a vetted address. The environment's proxy settings are
    ignored (trust_env): a proxy would resolve the name again, wherever it points.
    """
    return httpx.AsyncClient(
        transport=PinnedTransport(PinnedBackend(allow_private, resolve)),
        trust_env=False,
        timeout=timeout,
        follow_redirects=False,
        # The answer is read raw (decompressing could expand it without bound): ask for it plain.
        headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
    )


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: Mapping[str, str], seconds: float
) -> Reply | Outcome:
    """POST and read the start of the answer, or a `retry` Outcome when none came in time.

    `seconds` bounds the whole exchange, not only each read as httpx's does: a receiver that
    trickles its answer a byte at a time would otherwise hold a worker slot for ever.
    """
    try:
        async with asyncio.timeout(seconds):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                head = await _read_at_most(response, EXCERPT_BYTES)
    except (TimeoutError, httpx.TimeoutException):
        return Outcome("retry", f"no answer within {seconds:g} s")
    except httpx.TransportError as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}".removesuffix(": "))
    except TargetNotAllowed as exc:
        return Outcome("failed", str(exc))
    return Reply(response.status_code, response.headers, _excerpt(head))


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """A hostile endpoint may answer with gigabytes; only the first `limit` bytes are read."""
    head = b""
    async for chunk in response.aiter_raw():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def _excerpt(head: bytes) -> str:
    return " ".join(head.decode("utf-8", "replace").split())[:EXCERPT_CHARS]


def retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after", "").strip()
    if value.isascii() and value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_: type[Channel] = WebhookChannel
