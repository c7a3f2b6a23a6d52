"""Bearer tokens: verifying API tokens, and issuing and verifying stream tokens.

Two kinds of token reach Herald. API tokens come from an identity provider (RS256/ES256,
keys from its JWKS URL) or from `herald token` (HS256 with Herald's secret). Stream tokens
are minted here for `?token=` because EventSource cannot send headers; a URL ends up in
access logs, so they live minutes and open streams and nothing else.

The key is chosen by the header's `alg` *before* anything is verified, and each algorithm
has exactly one source of keys: HS256 only ever meets our secret, RS256/ES256 only ever meet
the JWKS. That is what defeats algorithm confusion (an HS256 token "signed" with the IdP's
public key is checked against our secret and fails). Nothing here logs or echoes a token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
from joserfc import errors, jwk, jws, jwt

from herald_server.config import ConfigError, Settings, redact
from herald_server.errors import ServiceUnavailable, Unauthenticated
from herald_server.models import Principal

__all__ = [
    "STREAM_AUDIENCE",
    "STREAM_TYP",
    "Authenticator",
    "JwksFetcher",
    "bearer",
    "issue_token",
    "issue_unsubscribe_token",
]

log = logging.getLogger(__name__)

JwksFetcher = Callable[[str], Awaitable[dict[str, Any]]]

HMAC_ALGORITHM = "HS256"
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
# Only asymmetric keys may come from a JWKS: an "oct" key there would let whoever controls
# the document, or a confused IdP, hand us a shared secret.
JWKS_KEY_TYPES = frozenset({"RSA", "EC"})

STREAM_AUDIENCE = "herald-stream"
# Explicit typing (RFC 8725 §3.11) so a stream token can never pass for an API token.
STREAM_TYP = "herald-stream+jwt"
# Unsubscribe links in emails carry a token that does one thing: switch email off for one
# type. It lives long (an email is read months later) and so must never open anything else.
UNSUBSCRIBE_AUDIENCE = "herald-unsubscribe"
UNSUBSCRIBE_TYP = "herald-unsubscribe+jwt"
UNSUBSCRIBE_TTL_SECONDS = 366 * 86_400
# Tokens Herald mints for one purpose, refused wherever an API token is expected.
SINGLE_PURPOSE = {STREAM_TYP: STREAM_AUDIENCE, UNSUBSCRIBE_TYP: UNSUBSCRIBE_AUDIENCE}

# Real bearer tokens are well under 2 KB; the bound caps the work done on hostile input
# before any base64 or JSON decoding happens.
MAX_TOKEN_CHARS = 8192
# `sub` becomes a user id in the store and in URLs; a bound keeps both sane.
MAX_SUBJECT_CHARS = 200
# Verified API tokens are remembered this long (and never past their `exp`): a service that
# publishes thousands of times a second sends the same token each time, and verifying it again
# was a tenth of a publish's CPU. A key dropped from the JWKS stops working within this time.
VERIFIED_TOKEN_SECONDS = 60.0
VERIFIED_TOKENS_KEPT = 10_000
# An unknown `kid` may mean the IdP rotated its keys, so it earns a refresh, but no more often
# than this: otherwise a stream of garbage kids would turn every request into a JWKS fetch.
MIN_JWKS_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
# JWT times (NumericDate, seconds) must lie from the epoch to the last second of year 9999, the
# last `datetime` can hold: no issuer means more, and Herald turns `exp` into dates.
NUMERIC_DATES = ("exp", "iat", "nbf")
MAX_NUMERIC_DATE = 253_402_300_799


class Authenticator:
    """Turns bearer tokens into principals; one per node, shared by every transport.

    `fetch_jwks` and `clock` (monotonic seconds) exist so tests can stand in for the IdP
    and for the passing of time.
    """

    def __init__(
        self,
        settings: Settings,
        fetch_jwks: JwksFetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.jwt_secret:
            # Stream tokens are always signed with it, so a node without one cannot serve.
            raise ConfigError("HERALD_JWT_SECRET is not set; stream tokens need it")
        self._settings = settings
        self._leeway = settings.jwt_leeway
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._secret = jwk.OctKey.import_key(settings.jwt_secret)
        self._api_claims = _api_claims_registry(settings)
        self._stream_claims = _single_purpose_registry(settings, STREAM_AUDIENCE)
        self._unsubscribe_claims = _single_purpose_registry(settings, UNSUBSCRIBE_AUDIENCE)
        self._jwks = _JwksCache(
            settings.jwks_url, fetch_jwks or fetch_jwks_http, settings.jwks_cache_seconds, clock
        )

    async def authenticate(self, token: str) -> Principal:
        """The caller behind an API token; every failure is `Unauthenticated`."""
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, forget_at = remembered
            assert principal.expires_at is not None  # `exp` is essential in API tokens
            if (
                self._clock() < forget_at
                and time.time() < principal.expires_at / 1000 + self._leeway
            ):
                return principal
        principal = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, self._clock() + VERIFIED_TOKEN_SECONDS)
        return principal

    async def _verify(self, token: str) -> Principal:
        header = _header(token)
        if header.get("typ") in SINGLE_PURPOSE:
            raise Unauthenticated("this token is for one purpose only")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Unauthenticated("malformed token")
        key = await self._api_key(alg, header.get("kid"))
        claims = _verified_claims(token, key, alg)
        if any(_has_audience(claims, audience) for audience in SINGLE_PURPOSE.values()):
            raise Unauthenticated("this token is for one purpose only")
        _validate(claims, self._api_claims)
        subject, expires_at = _subject(claims), _expires_at_ms(claims)
        return Principal(subject, _scopes(claims), expires_at, topics=_topics(claims))

    def issue_stream_token(self, principal: Principal, now: int | None = None) -> tuple[str, int]:
        """A token for `?token=` and its expiry in ms.

        `now` is epoch seconds (JWT NumericDate). The token never outlives the token that
        asked for it, so a stream cannot be used to extend a session.
        """
        issued_at = int(time.time()) if now is None else now
        expires = issued_at + self._settings.stream_token_ttl
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at // 1000)
        if expires <= issued_at:
            raise Unauthenticated("token expired")
        claims = {
            "sub": principal.sub,
            "aud": STREAM_AUDIENCE,
            "iat": issued_at,
            "exp": expires,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": HMAC_ALGORITHM, "typ": STREAM_TYP}
        token = jwt.encode(header, claims, self._secret, algorithms=[HMAC_ALGORITHM])
        return token, expires * 1000

    async def authenticate_stream(self, token: str) -> Principal:
        """The caller behind a stream token. It carries no scopes: it only opens streams."""
        header = _header(token)
        if header.get("typ") != STREAM_TYP or header.get("alg") != HMAC_ALGORITHM:
            raise Unauthenticated("not a stream token")
        claims = _verified_claims(token, self._secret, HMAC_ALGORITHM)
        _validate(claims, self._stream_claims)
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int) or isinstance(issued_at, bool):
            raise Unauthenticated("a stream token needs iat")
        return Principal(_subject(claims), frozenset(), _expires_at_ms(claims), issued_at * 1000)

    def unsubscribe_request(self, token: str) -> tuple[str, str]:
        """(user, notification type or "*") of an unsubscribe link's token."""
        header = _header(token)
        if header.get("typ") != UNSUBSCRIBE_TYP or header.get("alg") != HMAC_ALGORITHM:
            raise Unauthenticated("not an unsubscribe link")
        claims = _verified_claims(token, self._secret, HMAC_ALGORITHM)
        _validate(claims, self._unsubscribe_claims)
        kind = claims.get("type")
        if not isinstance(kind, str) or not kind:
            raise Unauthenticated("not an unsubscribe link")
        return _subject(claims), kind

    async def _api_key(self, alg: str, kid: object) -> jwk.Key:
        """The one key `alg` may be verified with: the secret for HS256, the JWKS otherwise."""
        if alg == HMAC_ALGORITHM:
            return self._secret
        if alg in JWKS_ALGORITHMS and self._jwks.configured:
            if kid is not None and not isinstance(kid, str):
                raise Unauthenticated("malformed token")
            return await self._jwks.key(kid, alg)
        raise Unauthenticated("unsupported algorithm")


class _JwksCache:
    """The IdP's signing keys, fetched lazily, refreshed on schedule and on an unknown kid.

    A failed fetch keeps the keys we had (an IdP blip should not log everyone out) and is not
    retried for a while (a dead IdP should not add a timeout to every request).
    """

    def __init__(
        self,
        url: str | None,
        fetch: JwksFetcher,
        ttl_seconds: int,
        clock: Callable[[], float],
    ) -> None:
        self._url = url
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._keys: jwk.KeySet | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._failed_at = -math.inf
        # One fetch at a time: a burst of requests after expiry must not become a burst of
        # fetches.
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._url)

    async def key(self, kid: str | None, alg: str) -> jwk.Key:
        if self._stale():
            await self._refresh(self._stale)
        found = self._find(kid, alg)
        if found is None and kid is not None and self._may_force():
            await self._refresh(lambda: self._may_force() and self._find(kid, alg) is None)
            found = self._find(kid, alg)
        if found is not None:
            return found
        if self._keys is None:
            # Not the caller's fault: 503 tells a client to retry, a 401 would log it out.
            raise ServiceUnavailable("the identity provider's keys are unavailable")
        raise Unauthenticated("unknown key id" if kid is not None else "missing key id")

    def _stale(self) -> bool:
        now = self._clock()
        expired = now >= self._fetched_at + self._ttl
        return expired and now >= self._failed_at + MIN_JWKS_REFRESH_SECONDS

    def _may_force(self) -> bool:
        # Counted from any fetch: keys fetched moments ago are unlikely to be out of date.
        return self._clock() >= self._attempted_at + MIN_JWKS_REFRESH_SECONDS

    def _find(self, kid: str | None, alg: str) -> jwk.Key | None:
        if self._keys is None:
            return None
        try:
            return self._keys.get_by_kid(kid, {"alg": alg, "use": "sig"})
        except errors.InvalidKeyIdError:
            return None

    async def _refresh(self, still_needed: Callable[[], bool]) -> None:
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            if still_needed():
                await self._fetch_now()

    async def _fetch_now(self) -> None:
        assert self._url is not None
        started = self._clock()
        self._attempted_at = started
        try:
            # A total bound, not only httpx's per-read one: requests queue on the lock meanwhile.
            async with asyncio.timeout(JWKS_FETCH_TIMEOUT_SECONDS):
                document = await self._fetch(self._url)
            keys = _import_jwks(document)
        except Exception as exc:
            self._failed_at = started
            log.warning("JWKS fetch from %s failed: %s", redact(self._url), exc)
            return
        self._keys = keys
        self._fetched_at = started


def _api_claims_registry(settings: Settings) -> jwt.JWTClaimsRegistry:
    """`exp` must be present (joserfc only checks it when there), `aud`/`iss` when set."""
    options: dict[str, jwt.ClaimsOption] = {
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    if settings.jwt_audience:
        options["aud"] = {"essential": True, "value": settings.jwt_audience}
    if settings.jwt_issuer:
        options["iss"] = {"essential": True, "value": settings.jwt_issuer}
    # `now` and `leeway` go by position so no claim option can take their place.
    return jwt.JWTClaimsRegistry(None, settings.jwt_leeway, **options)


def _single_purpose_registry(settings: Settings, audience: str) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        leeway=settings.jwt_leeway,
        exp={"essential": True},
        sub={"essential": True},
        aud={"essential": True, "value": audience},
    )


def _import_jwks(document: dict[str, Any]) -> jwk.KeySet:
    """The usable public keys of a JWKS; one malformed key does not spoil the others."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS has no 'keys' list")
    keys: list[jwk.Key] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in JWKS_KEY_TYPES:
            continue
        try:
            keys.append(jwk.import_key(entry))
        except (errors.JoseError, ValueError, TypeError) as exc:
            log.warning("skipping a JWKS key (kid %r): %s", entry.get("kid"), exc)
    if not keys:
        raise ValueError("JWKS holds no usable RSA or EC key")
    return jwk.KeySet(keys)


async def fetch_jwks_http(url: str) -> dict[str, Any]:
    """GET the JWKS document. A new client per fetch: fetches are minutes apart."""
    async with httpx.AsyncClient(timeout=JWKS_FETCH_TIMEOUT_SECONDS) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    if not isinstance(document, dict):
        raise ValueError("JWKS is not a JSON object")
    return document


def _header(token: str) -> dict[str, Any]:
    """The unverified header, read only to choose a key and to refuse early."""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise Unauthenticated("malformed token")
    try:
        return dict(jws.extract_compact(token.encode("ascii")).headers())
    except (errors.JoseError, ValueError):
        raise Unauthenticated("malformed token") from None


def _verified_claims(token: str, key: jwk.Key, alg: str) -> dict[str, Any]:
    # `algorithms` pins the one algorithm the key was chosen for, so the header cannot
    # switch it after the fact.
    try:
        return jwt.decode(token, key, algorithms=[alg]).claims
    except errors.JoseError as exc:
        raise Unauthenticated(_describe(exc)) from None
    except ValueError:
        raise Unauthenticated("malformed token") from None


def _validate(claims: dict[str, Any], registry: jwt.JWTClaimsRegistry) -> None:
    try:
        registry.validate(claims)
    except errors.JoseError as exc:
        raise Unauthenticated(_describe(exc)) from None
    # The registry checks these are finite numbers, not that they are dates: `exp: 1e308`
    # passed, and overflowed when turned into milliseconds.
    for name in NUMERIC_DATES:
        value = claims.get(name)
        if value is not None and not 0 <= value <= MAX_NUMERIC_DATE:
            raise Unauthenticated(f"{name} is not a date from 1970 to 9999")


_CLAIM_FAILURES = {
    "aud": "wrong audience",
    "iss": "wrong issuer",
    "sub": "invalid subject",
    "nbf": "token not yet valid",
    "iat": "token issued in the future",
    "exp": "invalid expiry",
}


def _describe(exc: errors.JoseError) -> str:
    """A short detail for the 401: enough for a developer, nothing about our keys."""
    if isinstance(exc, errors.ExpiredTokenError):
        return "token expired"
    if isinstance(exc, errors.MissingClaimError):
        return f"missing claim: {exc.claim}"
    if isinstance(exc, errors.InvalidClaimError):
        return _CLAIM_FAILURES.get(exc.claim, f"invalid claim: {exc.claim}")
    if isinstance(exc, errors.BadSignatureError):
        return "bad signature"
    if isinstance(exc, errors.UnsupportedAlgorithmError):
        return "unsupported algorithm"
    if isinstance(exc, errors.KeyParameterError | errors.InvalidKeyCurveError):
        return "key does not fit the algorithm"
    if isinstance(exc, errors.UnsupportedHeaderError | errors.MissingCritHeaderError):
        return "unsupported header"
    return "malformed token"


def _has_audience(claims: dict[str, Any], audience: str) -> bool:
    aud = claims.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)


def _subject(claims: dict[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_CHARS or not sub.isprintable():
        raise Unauthenticated("invalid subject")
    return sub


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth's space-separated `scope`, and `scp`, which IdPs send as a list or a string."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            found.update(item for item in value if item)
        else:
            raise Unauthenticated(f"malformed {name} claim")
    return frozenset(found)


def _topics(claims: dict[str, Any]) -> frozenset[str]:
    """The private topics the `topics` claim (a list of names) lets the user join."""
    value = claims.get("topics")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated("malformed topics claim")
    return frozenset(value)


def _expires_at_ms(claims: dict[str, Any]) -> int:
    # `_validate` has already checked `exp` is a date `iso` can print.
    return int(claims["exp"] * 1000)


def issue_token(settings: Settings, sub: str, scopes: Iterable[str], ttl: int) -> str:
    """An HS256 API token, as `herald token` prints it: for development and service callers."""
    if not settings.jwt_secret:
        raise ConfigError("HERALD_JWT_SECRET is not set; cannot sign a token")
    if not sub or len(sub) > MAX_SUBJECT_CHARS or not sub.isprintable():
        raise ValueError(f"sub must be 1 to {MAX_SUBJECT_CHARS} printable characters")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "scope": " ".join(dict.fromkeys(scope for scope in scopes if scope)),
        "iat": now,
        "exp": now + ttl,
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    key = jwk.OctKey.import_key(settings.jwt_secret)
    return jwt.encode({"alg": HMAC_ALGORITHM}, claims, key, algorithms=[HMAC_ALGORITHM])


def issue_unsubscribe_token(settings: Settings, user: str, notification_type: str) -> str:
    """The token of a one-click unsubscribe link: email off for this type, for this user."""
    if not settings.jwt_secret:
        raise ConfigError("HERALD_JWT_SECRET is not set; cannot sign an unsubscribe link")
    now = int(time.time())
    claims = {
        "sub": user,
        "aud": UNSUBSCRIBE_AUDIENCE,
        "type": notification_type,
        "iat": now,
        "exp": now + UNSUBSCRIBE_TTL_SECONDS,
    }
    key = jwk.OctKey.import_key(settings.jwt_secret)
    header = {"alg": HMAC_ALGORITHM, "typ": UNSUBSCRIBE_TYP}
    return jwt.encode(header, claims, key, algorithms=[HMAC_ALGORITHM])


def bearer(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None for anything else."""
    if header_value is None:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    # RFC 6750's b64token has no whitespace; a token with inner spaces is not one.
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token
