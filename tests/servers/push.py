"""A push service on loopback that checks what real ones check (RFC 8030, 8291, 8292) and
decrypts each push with the subscription's private key, as the browser would.

The VAPID signature is verified with py_vapid, an implementation independent of the joserfc
that Herald signs with, so the two have to agree on ES256 for a push to arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import jwt as vapid_jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import run_server

# The largest body that FCM and Mozilla's autopush accept.
MAX_BODY_BYTES = 4096
# RFC 8292 §2: a token must not expire more than 24 hours ahead.
MAX_VAPID_LIFETIME = 24 * 3600
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class ReceivedPush:
    endpoint: str
    payload: dict[str, Any]
    # Lowercased names: ttl, urgency, topic, authorization, content-encoding, ...
    headers: dict[str, str]
    claims: dict[str, Any]
    # The VAPID `k`: the application server key the push was signed with.
    public_key: str
    # Bytes of the encrypted body, which must fit MAX_BODY_BYTES.
    size: int


@dataclass
class _Subscription:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    gone: bool = False


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PushService:
    def __init__(self) -> None:
        # Set once the server listens: `http://127.0.0.1:<port>`, also the origin `aud` names.
        self.base = ""
        self.received: list[ReceivedPush] = []
        # Every POST that reached a push endpoint, accepted or not.
        self.attempts = 0
        self._subscriptions: dict[str, _Subscription] = {}
        self._failures: list[tuple[int, int | None]] = []
        self._arrived = anyio.Event()

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A PushSubscription as `JSON.stringify` gives it in a browser. With an application
        server key, pushes signed with any other VAPID key are refused (403), as browsers'
        push services do."""
        token = secrets.token_urlsafe(16)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self._subscriptions[token] = _Subscription(key, auth, application_server_key)
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {
            "endpoint": f"{self.base}/push/{token}",
            "expirationTime": None,
            "keys": {"p256dh": _b64url(point), "auth": _b64url(auth)},
        }

    def gone(self, endpoint: str) -> None:
        """The browser unsubscribed: later pushes to `endpoint` get 410."""
        self._subscriptions[endpoint.rsplit("/", 1)[1]].gone = True

    def fail_next(self, count: int, status: int = 500, retry_after: int | None = None) -> None:
        self._failures.extend([(status, retry_after)] * count)

    async def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedPush]:
        with anyio.fail_after(timeout):
            while len(self.received) < count:
                await self._arrived.wait()
        return self.received[:count]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/push/{token}", self._push, methods=["POST"])])

    async def _push(self, request: Request) -> Response:
        self.attempts += 1
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {} if retry_after is None else {"retry-after": str(retry_after)}
            return PlainTextResponse(f"simulated {status}", status, headers=headers)
        try:
            push = await self._accept(request)
        except _Refusal as refusal:
            return PlainTextResponse(refusal.reason, refusal.status)
        self.received.append(push)
        self._arrived.set()
        self._arrived = anyio.Event()
        location = f"{self.base}/message/{len(self.received)}"
        return Response(status_code=201, headers={"location": location})

    async def _accept(self, request: Request) -> ReceivedPush:
        token = request.path_params["token"]
        subscription = self._subscription(token)
        body = await request.body()
        headers = dict(request.headers)
        _check_headers(headers, len(body))
        claims, key = _verified_vapid(headers.get("authorization", ""), self.base)
        if subscription.application_server_key not in (None, key):
            raise _Refusal(403, "signed with a key this subscription was not made for")
        payload = _decrypted(body, subscription)
        return ReceivedPush(f"{self.base}/push/{token}", payload, headers, claims, key, len(body))

    def _subscription(self, token: str) -> _Subscription:
        found = self._subscriptions.get(token)
        if found is None:
            raise _Refusal(404, "no such subscription")
        if found.gone:
            raise _Refusal(410, "the subscription has expired")
        return found


@asynccontextmanager
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    async with run_server(service.app()) as live:
        service.base = live.url
        yield service


def _check_headers(headers: dict[str, str], size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise _Refusal(413, f"{size} bytes is more than {MAX_BODY_BYTES}")
    if headers.get("content-encoding") != "aes128gcm":
        raise _Refusal(400, "Content-Encoding must be aes128gcm (RFC 8291)")
    if not headers.get("ttl", "").isdecimal():
        raise _Refusal(400, "a TTL header is required (RFC 8030 §5.2)")
    if headers.get("urgency", "normal") not in URGENCIES:
        raise _Refusal(400, "Urgency must be very-low, low, normal or high (RFC 8030 §5.3)")
    if "topic" in headers and not TOPIC.fullmatch(headers["topic"]):
        raise _Refusal(400, "a Topic is at most 32 base64url characters (RFC 8030 §5.4)")


def _verified_vapid(header: str, origin: str) -> tuple[dict[str, Any], str]:
    """The claims and key `k` of a valid `vapid t=…, k=…` header; 401 or 403 otherwise."""
    params = _auth_params(header)
    token, key = params.get("t", ""), params.get("k", "")
    if _jwt_header(token).get("alg") != "ES256":
        raise _Refusal(401, "the VAPID token must be an ES256 JWT")
    try:
        claims = vapid_jwt.decode(token, key)
    except InvalidSignature:
        raise _Refusal(401, "the VAPID signature does not verify under k") from None
    if not isinstance(claims, dict):
        raise _Refusal(401, "the VAPID claims are not an object")
    _check_claims(claims, origin)
    return claims, key


def _auth_params(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "vapid":
        raise _Refusal(401, "expected Authorization: vapid t=..., k=... (RFC 8292 §3)")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value
    return params


def _jwt_header(token: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64url_decode(token.split(".")[0]))
    except (ValueError, binascii.Error):
        raise _Refusal(401, "the VAPID token is not a JWT") from None
    return header if isinstance(header, dict) else {}


def _check_claims(claims: dict[str, Any], origin: str) -> None:
    now = time.time()
    if claims.get("aud") != origin:
        raise _Refusal(403, f"aud must be this push service's origin, {origin}")
    expires = claims.get("exp")
    if not isinstance(expires, int) or not now < expires <= now + MAX_VAPID_LIFETIME:
        raise _Refusal(403, "exp must be in the future and at most 24 hours ahead")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.startswith(("mailto:", "https:")):
        raise _Refusal(403, "sub must be a mailto: or https: URI")


def _decrypted(body: bytes, subscription: _Subscription) -> dict[str, Any]:
    try:
        plaintext = http_ece.decrypt(
            body,
            private_key=subscription.private_key,
            auth_secret=subscription.auth,
            version="aes128gcm",
        )
        payload = json.loads(plaintext)
    except (http_ece.ECEException, ValueError) as exc:
        raise _Refusal(400, f"cannot decrypt the payload: {exc}") from None
    if not isinstance(payload, dict):
        raise _Refusal(400, "the payload is not a JSON object")
    return payload


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
