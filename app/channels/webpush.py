"""Web Push: one encrypted, VAPID-signed POST per delivery to the browser's push service.

RFC 8030 is the protocol, RFC 8291 encrypts the payload for the subscription's keys (aes128gcm)
and RFC 8292 (VAPID) lets the push service check that pushes come from the application server
key the browser subscribed with. Unlike pywebpush this needs no aiohttp, and bounds
each exchange by the provider timeout where pywebpush's async path passes 10,000 seconds.

A push service's 201 is `sent`, not `delivered`: it keeps the message until the browser comes
online, for at most the TTL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwk, jwt
from py_vapid import Vapid02

from herald_server import codec
from herald_server.channels import Channel, Message, Outcome, PushContent, PushTarget
from herald_server.channels.webhook import Reply, new_client, post, retry_after
from herald_server.config import ConfigError
from herald_server.errors import TargetNotAllowed
from herald_server.netguard import Resolver, parse_target, system_resolve

# Push services refuse larger request bodies (RFC 8030 §7.2 asks them to accept at least this).
MAX_BODY_BYTES = 4096
# What aes128gcm adds to the JSON in its one record: the header (16-byte salt, 4-byte record
# size, 1-byte key id length, 65-byte ephemeral public key), a delimiter byte, a 16-byte tag.
ENCRYPTION_OVERHEAD = 16 + 4 + 1 + 65 + 1 + 16
MAX_PAYLOAD_BYTES = MAX_BODY_BYTES - ENCRYPTION_OVERHEAD
ELLIPSIS = "…"
# RFC 8030 §5.4: a Topic is at most 32 characters of the base64url alphabet.
TOPIC_CHARS = 32
# RFC 8292 caps `exp` at 24 h ahead; half that leaves room for a push service's clock running
# ahead of ours.
VAPID_LIFETIME_SECONDS = 12 * 3600
# A signed header is replaced this long before it expires, so it never expires in flight.
VAPID_RENEW_SECONDS = 3600
# Endpoints come from users' browsers, so the cache of signed headers is bounded; in practice
# there are a handful of push services.
MAX_VAPID_ORIGINS = 64


class WebPushChannel:
    def __init__(
        self,
        vapid_private_key: str,
        subject: str,
        timeout: float,
        allow_private: bool,
        resolve: Resolver = system_resolve,
    ) -> None:
        self._vapid = _VapidSigner(_private_key(vapid_private_key), _checked_subject(subject))
        self._timeout = timeout
        self._allow_private = allow_private
        self._client = new_client(timeout, allow_private, resolve)

    async def send(self, message: Message) -> Outcome:
        target, content = message.target, message.content
        assert isinstance(target, PushTarget), "the push channel sends to PushTargets"
        assert isinstance(content, PushContent), "the push channel sends PushContent"
        try:
            parse_target(target.endpoint, require_https=not self._allow_private)
        except TargetNotAllowed as exc:
            return Outcome("failed", str(exc))
        body = _encrypted_body(content, target)
        if isinstance(body, Outcome):
            return body
        headers = self._headers(message.key, content, target.endpoint)
        answer = await post(self._client, target.endpoint, body, headers, self._timeout)
        return answer if isinstance(answer, Outcome) else _outcome(answer)

    def _headers(self, key: str, content: PushContent, endpoint: str) -> dict[str, str]:
        return {
            "ttl": str(content.ttl),
            "urgency": content.urgency,
            "topic": _topic(key),
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "authorization": self._vapid.authorization(_origin(endpoint)),
        }

    async def aclose(self) -> None:
        await self._client.aclose()


def vapid_public_key(vapid_private_key: str) -> str:
    """The application server key that browsers pass to `pushManager.subscribe`."""
    return _public_key(_private_key(vapid_private_key))


def _topic(key: str) -> str:
    """The delivery's RFC 8030 Topic: a retry then replaces its undelivered earlier copy at
    the push service instead of reaching the browser twice. Hashed, because a key may be
    longer than a Topic or hold characters a Topic may not."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode()
    return digest[:TOPIC_CHARS]


def _fit_payload(content: PushContent) -> bytes | None:
    """The JSON the service worker receives, its body shortened if the whole would not fit in
    one push; None when title and data alone are too large."""
    full = _payload(content, content.body)
    if len(full) <= MAX_PAYLOAD_BYTES:
        return full
    # Bisect on the body's length: JSON escapes and UTF-8 give characters different sizes,
    # so the cut cannot be computed from lengths alone. A prefix of `high` never fits.
    low, high = -1, len(content.body)
    while high - low > 1:
        middle = (low + high) // 2
        if len(_payload(content, content.body[:middle] + ELLIPSIS)) <= MAX_PAYLOAD_BYTES:
            low = middle
        else:
            high = middle
    return None if low < 0 else _payload(content, content.body[:low] + ELLIPSIS)


def _payload(content: PushContent, body: str) -> bytes:
    return codec.dumps({"title": content.title, "body": body, "data": content.data})


def _encrypted_body(content: PushContent, target: PushTarget) -> bytes | Outcome:
    payload = _fit_payload(content)
    if payload is None:
        return Outcome("failed", f"title and data exceed the {MAX_PAYLOAD_BYTES}-byte payload")
    try:
        return _encrypt(payload, target)
    except (ValueError, http_ece.ECEException):
        return Outcome("failed", "the subscription's p256dh or auth key is not valid")


def _encrypt(payload: bytes, target: PushTarget) -> bytes:
    """RFC 8291 aes128gcm for one subscription, with the fresh ECDH key pair that the RFC
    requires for every message."""
    encrypted: bytes = http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=_b64url_decode(target.p256dh),
        auth_secret=_b64url_decode(target.auth),
        version="aes128gcm",
    )
    return encrypted


def _outcome(reply: Reply) -> Outcome:
    if reply.is_success:
        return Outcome("sent", reply.describe(), provider_id=reply.headers.get("location"))
    if reply.status in (404, 410):
        return Outcome("gone", reply.describe())
    if reply.status == 429 or reply.status >= 500:
        return Outcome("retry", reply.describe(), retry_after=retry_after(reply.headers))
    return Outcome("failed", reply.describe())


class _VapidSigner:
    """Signs the VAPID header for each push service's origin and reuses it until near expiry:
    the push service accepts it for its whole lifetime, so an ECDSA signature per push would
    be wasted work."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self._key = jwk.ECKey.import_key(private_key)
        self._public_key = _public_key(private_key)
        self._subject = subject
        self._signed: dict[str, tuple[str, int]] = {}

    def authorization(self, origin: str) -> str:
        now = int(time.time())
        header, expires = self._signed.pop(origin, ("", 0))
        if now >= expires - VAPID_RENEW_SECONDS:
            expires = now + VAPID_LIFETIME_SECONDS
            header = f"vapid t={self._token(origin, expires)}, k={self._public_key}"
        if len(self._signed) >= MAX_VAPID_ORIGINS:
            del self._signed[next(iter(self._signed))]
        self._signed[origin] = (header, expires)
        return header

    def _token(self, origin: str, expires: int) -> str:
        claims: dict[str, Any] = {"aud": origin, "exp": expires, "sub": self._subject}
        return jwt.encode({"typ": "JWT", "alg": "ES256"}, claims, self._key, algorithms=["ES256"])


def _origin(endpoint: str) -> str:
    """VAPID's `aud`: the push service's origin, not the subscription's URL."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _private_key(raw: str) -> ec.EllipticCurvePrivateKey:
    """The key from settings, so a malformed one is a ConfigError naming the variable."""
    with contextlib.suppress(ValueError):
        if len(_b64url_decode(raw)) == 32:
            key: ec.EllipticCurvePrivateKey = Vapid02.from_raw(raw.encode()).private_key
            return key
    raise ConfigError(
        "HERALD_VAPID_PRIVATE_KEY: expected a raw base64url P-256 private key (32 bytes),"
        " not PEM or DER"
    )


def _checked_subject(subject: str) -> str:
    # RFC 8292 §2.1 asks for a contact URI, and Apple's push service refuses any other `sub`.
    if not subject.startswith(("mailto:", "https:")):
        raise ConfigError(
            f"HERALD_VAPID_SUBJECT: expected a mailto: or https: URI, got {subject!r}"
        )
    return subject


def _public_key(private_key: ec.EllipticCurvePrivateKey) -> str:
    point = private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    # Browsers send their keys unpadded; the decoder wants the padding back.
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_: type[Channel] = WebPushChannel
