"""Targets users register for delivery, checked before they are stored: a browser's push
subscription must be one Herald can encrypt for and may call, a webhook URL one it may call."""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.hazmat.primitives.asymmetric import ec

from herald_server.errors import ValidationFailed
from herald_server.netguard import check_target

# Standard Webhooks secrets: "whsec_" and the base64 of 24 to 64 random bytes.
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
WEBHOOK_SECRET_BYTES = 32


def new_webhook_secret() -> str:
    return (
        WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode()
    )


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    await check_target(url, allow_private=allow_private)


async def check_push_subscription(
    endpoint: str, p256dh: str, auth: str, *, allow_private: bool
) -> None:
    """The endpoint must be https (push services are) and public; the keys must be what RFC
    8291 encrypts for: an uncompressed P-256 point and a 16-byte secret."""
    await check_target(endpoint, allow_private=allow_private, require_https=True)
    point = _base64url(p256dh, "keys.p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise ValidationFailed("keys.p256dh is not a P-256 public key") from None
    if len(point) != 65:
        raise ValidationFailed("keys.p256dh must be an uncompressed P-256 point (65 bytes)")
    if len(_base64url(auth, "keys.auth")) != 16:
        raise ValidationFailed("keys.auth must be 16 bytes")


def _base64url(text: str, field: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValidationFailed(f"{field} is not base64url") from None
