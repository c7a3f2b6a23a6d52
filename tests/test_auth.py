"""Bearer tokens: what gets in, what is refused, and why (herald_server.auth)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwk, jwt

from herald_server.auth import (
    STREAM_AUDIENCE,
    STREAM_TYP,
    UNSUBSCRIBE_AUDIENCE,
    UNSUBSCRIBE_TYP,
    Authenticator,
    bearer,
    issue_token,
    issue_unsubscribe_token,
)
from herald_server.config import ConfigError, Settings
from herald_server.errors import ServiceUnavailable, Unauthenticated
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH, Principal

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
JWKS_URL = "https://idp.example/.well-known/jwks.json"


# A shared conftest may provide this later; defined here so the module runs on its own.
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def now() -> int:
    return int(time.time())


def settings(**overrides: Any) -> Settings:
    return replace(Settings(jwt_secret=SECRET), **overrides)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "iat": now(), "exp": now() + 600}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET, **header: Any) -> str:
    key = jwk.OctKey.import_key(secret)
    return jwt.encode({"alg": "HS256", **header}, payload, key, algorithms=["HS256"])


def signed(payload: dict[str, Any], key: jwk.Key, alg: str) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, payload, key, algorithms=[alg])


def hand_signed_hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made without joserfc, which rightly refuses a PEM as an HMAC secret."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIdP:
    """An identity provider's JWKS endpoint, counting how often it is asked."""

    def __init__(self, *keys: jwk.Key) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    async def fetch(self, url: str) -> dict[str, Any]:
        assert url == JWKS_URL
        self.fetches += 1
        if self.down:
            raise ConnectionError("identity provider unreachable")
        return {"keys": [key.as_dict(private=False) for key in self.keys]}


def rsa_key(kid: str) -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048, parameters={"kid": kid})


def ec_key(kid: str) -> jwk.ECKey:
    return jwk.ECKey.generate_key("P-256", parameters={"kid": kid})


def with_idp(idp: FakeIdP, clock: Clock | None = None, **overrides: Any) -> Authenticator:
    return Authenticator(
        settings(jwks_url=JWKS_URL, **overrides), idp.fetch, clock=clock or Clock()
    )


async def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(token)
    detail = caught.value.detail
    assert detail is not None
    # Never echoed: a 401 body may end up in a client's logs.
    assert not token or token not in str(caught.value.document())
    return detail


async def refused_stream(auth: Authenticator, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate_stream(token)
    assert caught.value.detail is not None
    return caught.value.detail


# --- HS256 API tokens ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_valid_hs256_token_gives_its_principal() -> None:
    exp = now() + 600
    token = hs256(claims(exp=exp, scope=SCOPE_PUBLISH))

    principal = await Authenticator(settings()).authenticate(token)

    assert principal == Principal("alice", frozenset({SCOPE_PUBLISH}), exp * 1000)


@pytest.mark.anyio
async def test_expired_token_is_refused() -> None:
    token = hs256(claims(exp=now() - 3600))
    assert await refused(Authenticator(settings()), token) == "token expired"


@pytest.mark.anyio
async def test_token_without_exp_is_refused() -> None:
    token = hs256(claims(exp=None))
    assert await refused(Authenticator(settings()), token) == "missing claim: exp"


@pytest.mark.anyio
async def test_non_numeric_exp_is_refused() -> None:
    token = hs256(claims(exp="tomorrow"))
    assert await refused(Authenticator(settings()), token) == "invalid expiry"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("sub", "detail"),
    [
        (None, "missing claim: sub"),
        ("", "invalid subject"),
        (42, "invalid subject"),
        ("u" * 201, "invalid subject"),
    ],
)
async def test_bad_subject_is_refused(sub: object, detail: str) -> None:
    payload = claims()
    payload.pop("sub")
    if sub is not None:
        payload["sub"] = sub
    assert await refused(Authenticator(settings()), hs256(payload)) == detail


@pytest.mark.anyio
async def test_subject_of_200_characters_is_accepted() -> None:
    principal = await Authenticator(settings()).authenticate(hs256(claims(sub="u" * 200)))
    assert principal.sub == "u" * 200


@pytest.mark.anyio
async def test_token_signed_with_another_secret_is_refused() -> None:
    token = hs256(claims(), secret="another-secret-of-sufficient-length-xxxxxxxx")
    assert await refused(Authenticator(settings()), token) == "bad signature"


@pytest.mark.anyio
async def test_tampered_payload_is_refused() -> None:
    header, _, signature = hs256(claims()).split(".")
    forged = f"{header}.{b64json(claims(sub='mallory'))}.{signature}"
    assert await refused(Authenticator(settings()), forged) == "bad signature"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "not a token at all",
        "eyJhbGciOiJIUzI1NiJ9.eyJ.sig",
        "é.é.é",
        f"{b64json({'typ': 'JWT'})}.{b64json({'sub': 'alice'})}.sig",
        "x" * 20_000,
    ],
    ids=["empty", "word", "dots", "spaces", "bad-payload", "non-ascii", "no-alg", "huge"],
)
async def test_garbled_token_is_refused(token: str) -> None:
    assert await refused(Authenticator(settings()), token) == "malformed token"


@pytest.mark.anyio
async def test_payload_that_is_not_an_object_is_refused() -> None:
    header = b64json({"alg": "HS256"})
    payload = b64url(b'["alice"]')
    mac = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64url(mac)}"
    assert await refused(Authenticator(settings()), token) == "malformed token"


# --- Algorithms ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("with_jwks", [False, True])
async def test_alg_none_is_refused(with_jwks: bool) -> None:
    token = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims())}."
    auth = with_idp(FakeIdP(rsa_key("k1"))) if with_jwks else Authenticator(settings())
    assert await refused(auth, token) == "unsupported algorithm"


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS512", "PS256", "EdDSA", "None", ""])
async def test_other_algorithms_are_refused(alg: str) -> None:
    token = f"{b64json({'alg': alg})}.{b64json(claims())}.c2ln"
    assert await refused(with_idp(FakeIdP(rsa_key("k1"))), token) == "unsupported algorithm"


@pytest.mark.anyio
async def test_alg_that_is_not_a_string_is_refused() -> None:
    token = f"{b64json({'alg': ['HS256']})}.{b64json(claims())}.c2ln"
    assert await refused(Authenticator(settings()), token) == "malformed token"


@pytest.mark.anyio
async def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    """Algorithm confusion: the IdP's public key is public, so it must never be an HMAC key."""
    key = rsa_key("k1")
    idp = FakeIdP(key)
    auth = with_idp(idp)
    assert (await auth.authenticate(signed(claims(), key, "RS256"))).sub == "alice"
    public_pem = key.get_op_key("verify").public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    forged = hand_signed_hs256({"alg": "HS256", "kid": "k1"}, claims(), public_pem)

    assert await refused(auth, forged) == "bad signature"


@pytest.mark.anyio
async def test_rs256_without_a_jwks_url_is_refused() -> None:
    key = rsa_key("k1")
    token = signed(claims(), key, "RS256")
    assert await refused(Authenticator(settings()), token) == "unsupported algorithm"


@pytest.mark.anyio
async def test_unknown_critical_header_is_refused() -> None:
    token = hand_signed_hs256(
        {"alg": "HS256", "crit": ["x-herald"], "x-herald": 1}, claims(), SECRET.encode()
    )
    assert await refused(Authenticator(settings()), token) == "unsupported header"


# --- JWKS ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rs256_token_verified_with_jwks() -> None:
    key = rsa_key("rsa-1")
    exp = now() + 600
    token = signed(claims(exp=exp, scope=SCOPE_ADMIN), key, "RS256")

    principal = await with_idp(FakeIdP(key)).authenticate(token)

    assert principal == Principal("alice", frozenset({SCOPE_ADMIN}), exp * 1000)


@pytest.mark.anyio
async def test_es256_token_verified_with_jwks() -> None:
    key = ec_key("ec-1")
    idp = FakeIdP(rsa_key("rsa-1"), key)
    principal = await with_idp(idp).authenticate(signed(claims(), key, "ES256"))
    assert principal.sub == "alice"


@pytest.mark.anyio
async def test_token_signed_by_a_key_the_idp_never_published_is_refused() -> None:
    published = rsa_key("k1")
    impostor = rsa_key("k1")
    token = signed(claims(), impostor, "RS256")
    assert await refused(with_idp(FakeIdP(published)), token) == "bad signature"


@pytest.mark.anyio
async def test_alg_that_does_not_fit_the_key_is_refused() -> None:
    key = ec_key("ec-1")
    token = signed(claims(), rsa_key("ec-1"), "RS256")
    assert await refused(with_idp(FakeIdP(key)), token) == "key does not fit the algorithm"


@pytest.mark.anyio
async def test_token_without_kid_uses_a_lone_key_but_not_one_of_many() -> None:
    key = rsa_key("k1")
    token = jwt.encode({"alg": "RS256"}, claims(), key, algorithms=["RS256"])

    assert (await with_idp(FakeIdP(key)).authenticate(token)).sub == "alice"
    assert await refused(with_idp(FakeIdP(key, rsa_key("k2"))), token) == "missing key id"


@pytest.mark.anyio
async def test_keys_are_cached_until_they_expire() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    clock = Clock()
    auth = with_idp(idp, clock, jwks_cache_seconds=300)
    # A new token each time: a token already verified is answered without its key.
    tokens = (signed(claims(jti=str(n)), key, "RS256") for n in range(3))

    await auth.authenticate(next(tokens))
    clock.advance(299)
    await auth.authenticate(next(tokens))
    assert idp.fetches == 1

    clock.advance(1)
    await auth.authenticate(next(tokens))
    assert idp.fetches == 2


@pytest.mark.anyio
async def test_a_verified_token_is_remembered_for_a_minute_without_its_key() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    clock = Clock()
    auth = with_idp(idp, clock, jwks_cache_seconds=10)
    token = signed(claims(), key, "RS256")
    await auth.authenticate(token)

    clock.advance(30)  # the keys are stale, the verified token is not
    assert (await auth.authenticate(token)).sub == "alice"
    assert idp.fetches == 1

    clock.advance(31)
    assert (await auth.authenticate(token)).sub == "alice"
    assert idp.fetches == 2


@pytest.mark.anyio
async def test_a_remembered_token_still_expires_on_time() -> None:
    auth = Authenticator(settings(jwt_leeway=0))
    token = hs256(claims(exp=now() + 1))
    await auth.authenticate(token)

    await anyio.sleep(1.1)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(token)


@pytest.mark.anyio
async def test_a_burst_of_requests_shares_one_fetch() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    release = anyio.Event()

    async def slow_fetch(url: str) -> dict[str, Any]:
        await release.wait()
        return await idp.fetch(url)

    auth = Authenticator(settings(jwks_url=JWKS_URL), slow_fetch, clock=Clock())
    token = signed(claims(), key, "RS256")
    subjects: list[str] = []

    async def call() -> None:
        subjects.append((await auth.authenticate(token)).sub)

    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        release.set()

    assert subjects == ["alice"] * 10
    assert idp.fetches == 1


@pytest.mark.anyio
async def test_unknown_kid_refreshes_once_and_finds_the_rotated_key() -> None:
    old, new = rsa_key("old"), rsa_key("new")
    idp = FakeIdP(old)
    clock = Clock()
    auth = with_idp(idp, clock)
    await auth.authenticate(signed(claims(), old, "RS256"))
    assert idp.fetches == 1

    clock.advance(31)
    idp.keys = [new]
    principal = await auth.authenticate(signed(claims(), new, "RS256"))

    assert principal.sub == "alice"
    assert idp.fetches == 2


@pytest.mark.anyio
async def test_unknown_kids_refresh_at_most_once_per_30_seconds() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    clock = Clock()
    auth = with_idp(idp, clock)
    await auth.authenticate(signed(claims(), key, "RS256"))
    clock.advance(31)

    assert await refused(auth, signed(claims(), rsa_key("garbage-1"), "RS256")) == (
        "unknown key id"
    )
    assert idp.fetches == 2
    clock.advance(29)
    assert await refused(auth, signed(claims(), rsa_key("garbage-2"), "RS256")) == (
        "unknown key id"
    )
    assert idp.fetches == 2

    clock.advance(1)
    await refused(auth, signed(claims(), rsa_key("garbage-3"), "RS256"))
    assert idp.fetches == 3


@pytest.mark.anyio
async def test_unreachable_idp_with_no_keys_is_a_503_not_a_401() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    idp.down = True
    clock = Clock()
    auth = with_idp(idp, clock)
    token = signed(claims(), key, "RS256")

    with pytest.raises(ServiceUnavailable):
        await auth.authenticate(token)
    with pytest.raises(ServiceUnavailable):
        await auth.authenticate(token)
    assert idp.fetches == 1

    idp.down = False
    clock.advance(30)
    assert (await auth.authenticate(token)).sub == "alice"


@pytest.mark.anyio
async def test_unreachable_idp_keeps_the_keys_we_had() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    clock = Clock()
    auth = with_idp(idp, clock, jwks_cache_seconds=60)
    token = signed(claims(), key, "RS256")
    await auth.authenticate(token)

    idp.down = True
    clock.advance(60)
    assert (await auth.authenticate(token)).sub == "alice"
    assert (await auth.authenticate(token)).sub == "alice"
    assert idp.fetches == 2


@pytest.mark.anyio
async def test_jwks_symmetric_and_malformed_keys_are_ignored() -> None:
    key = rsa_key("k1")
    idp = FakeIdP(key)
    oct_key = {"kty": "oct", "kid": "shared", "k": b64url(SECRET.encode())}
    broken = {"kty": "RSA", "kid": "broken", "n": "AQAB"}

    async def fetch(url: str) -> dict[str, Any]:
        document = await idp.fetch(url)
        document["keys"] += [oct_key, broken]
        return document

    auth = Authenticator(settings(jwks_url=JWKS_URL), fetch, clock=Clock())
    assert (await auth.authenticate(signed(claims(), key, "RS256"))).sub == "alice"
    forged = hand_signed_hs256({"alg": "HS256", "kid": "shared"}, claims(), SECRET.encode() * 2)
    assert await refused(auth, forged) == "bad signature"


def serving(document: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, jwk.RSAKey]]:
    """A real HTTP JWKS endpoint, so the default httpx fetcher is exercised too."""
    key = rsa_key("served")
    document = json.dumps({"keys": [key.as_dict(private=False)]}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), serving(document))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.anyio
async def test_default_fetcher_reads_a_real_jwks_endpoint(
    jwks_server: tuple[str, jwk.RSAKey],
) -> None:
    url, key = jwks_server
    auth = Authenticator(settings(jwks_url=url))
    assert (await auth.authenticate(signed(claims(), key, "RS256"))).sub == "alice"


# --- Audience, issuer, leeway -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("aud", "detail"),
    [
        ("someone-else", "wrong audience"),
        (["someone-else", "another"], "wrong audience"),
        (None, "missing claim: aud"),
    ],
)
async def test_wrong_audience_is_refused(aud: object, detail: str) -> None:
    auth = Authenticator(settings(jwt_audience="herald"))
    assert await refused(auth, hs256(claims(aud=aud))) == detail


@pytest.mark.anyio
@pytest.mark.parametrize("aud", ["herald", ["other", "herald"]])
async def test_right_audience_is_accepted(aud: object) -> None:
    auth = Authenticator(settings(jwt_audience="herald"))
    assert (await auth.authenticate(hs256(claims(aud=aud)))).sub == "alice"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("iss", "detail"),
    [("https://evil.example", "wrong issuer"), (None, "missing claim: iss")],
)
async def test_wrong_issuer_is_refused(iss: object, detail: str) -> None:
    auth = Authenticator(settings(jwt_issuer="https://idp.example"))
    assert await refused(auth, hs256(claims(iss=iss))) == detail


@pytest.mark.anyio
async def test_right_issuer_is_accepted() -> None:
    auth = Authenticator(settings(jwt_issuer="https://idp.example"))
    token = hs256(claims(iss="https://idp.example"))
    assert (await auth.authenticate(token)).sub == "alice"


@pytest.mark.anyio
async def test_audience_is_not_checked_when_not_configured() -> None:
    token = hs256(claims(aud="anything"))
    assert (await Authenticator(settings()).authenticate(token)).sub == "alice"


@pytest.mark.anyio
async def test_leeway_tolerates_clock_skew_and_no_more() -> None:
    auth = Authenticator(settings(jwt_leeway=30))
    assert (await auth.authenticate(hs256(claims(exp=now() - 20)))).sub == "alice"
    assert await refused(auth, hs256(claims(exp=now() - 40))) == "token expired"
    assert await refused(auth, hs256(claims(iat=now() + 60))) == "token issued in the future"
    assert (await auth.authenticate(hs256(claims(nbf=now() + 20)))).sub == "alice"
    assert await refused(auth, hs256(claims(nbf=now() + 60))) == "token not yet valid"

    strict = Authenticator(settings(jwt_leeway=0))
    assert await refused(strict, hs256(claims(exp=now() - 20))) == "token expired"


# --- Scopes -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "scopes"),
    [
        ({}, set()),
        ({"scope": ""}, set()),
        ({"scope": f"{SCOPE_PUBLISH}  {SCOPE_ADMIN} "}, {SCOPE_PUBLISH, SCOPE_ADMIN}),
        ({"scp": [SCOPE_PUBLISH, SCOPE_ADMIN]}, {SCOPE_PUBLISH, SCOPE_ADMIN}),
        ({"scp": SCOPE_ADMIN}, {SCOPE_ADMIN}),
        ({"scope": SCOPE_PUBLISH, "scp": ["profile"]}, {SCOPE_PUBLISH, "profile"}),
    ],
)
async def test_scopes_come_from_scope_and_scp(extra: dict[str, Any], scopes: set[str]) -> None:
    principal = await Authenticator(settings()).authenticate(hs256(claims(**extra)))
    assert principal.scopes == frozenset(scopes)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"scope": 7}, "malformed scope claim"),
        ({"scope": {"a": 1}}, "malformed scope claim"),
        ({"scp": [SCOPE_ADMIN, 1]}, "malformed scp claim"),
    ],
)
async def test_malformed_scopes_are_refused(extra: dict[str, Any], detail: str) -> None:
    assert await refused(Authenticator(settings()), hs256(claims(**extra))) == detail


# --- Stream tokens ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_token_round_trip() -> None:
    auth = Authenticator(settings(stream_token_ttl=900))
    caller = Principal("alice", frozenset({SCOPE_ADMIN}), (now() + 3600) * 1000)
    issued_at = now()

    token, expires_at = auth.issue_stream_token(caller, now=issued_at)
    principal = await auth.authenticate_stream(token)

    assert expires_at == (issued_at + 900) * 1000
    assert principal == Principal("alice", frozenset(), expires_at, issued_at * 1000)
    header, payload = (
        json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2]
    )
    assert header == {"alg": "HS256", "typ": STREAM_TYP}
    assert payload["aud"] == STREAM_AUDIENCE
    assert payload["iat"] == issued_at
    assert isinstance(payload["jti"], str)
    assert len(payload["jti"]) >= 16


def test_stream_tokens_are_unique() -> None:
    auth = Authenticator(settings())
    caller = Principal("alice")
    issued_at = now()
    first, _ = auth.issue_stream_token(caller, now=issued_at)
    second, _ = auth.issue_stream_token(caller, now=issued_at)
    assert first != second


@pytest.mark.anyio
async def test_stream_token_expiry_is_capped_by_the_callers_token() -> None:
    auth = Authenticator(settings(stream_token_ttl=900))
    issued_at = now()
    caller = Principal("alice", expires_at=(issued_at + 120) * 1000 + 999)

    token, expires_at = auth.issue_stream_token(caller, now=issued_at)

    assert expires_at == (issued_at + 120) * 1000
    assert (await auth.authenticate_stream(token)).expires_at == expires_at


def test_stream_token_is_not_issued_for_an_expired_caller() -> None:
    auth = Authenticator(settings())
    issued_at = now()
    caller = Principal("alice", expires_at=issued_at * 1000)
    with pytest.raises(Unauthenticated, match="token expired"):
        auth.issue_stream_token(caller, now=issued_at)


@pytest.mark.anyio
async def test_expired_stream_token_is_refused() -> None:
    auth = Authenticator(settings(stream_token_ttl=60, jwt_leeway=0))
    token, _ = auth.issue_stream_token(Principal("alice"), now=now() - 120)
    assert await refused_stream(auth, token) == "token expired"


@pytest.mark.anyio
async def test_stream_token_does_not_open_the_api() -> None:
    auth = Authenticator(settings())
    token, _ = auth.issue_stream_token(Principal("alice", frozenset({SCOPE_ADMIN})))
    assert await refused(auth, token) == "this token is for one purpose only"


@pytest.mark.anyio
async def test_stream_audience_without_stream_type_does_not_open_the_api() -> None:
    token = hs256(claims(aud=STREAM_AUDIENCE))
    assert await refused(Authenticator(settings()), token) == "this token is for one purpose only"


@pytest.mark.anyio
async def test_an_unsubscribe_link_names_its_user_and_type_and_opens_nothing_else() -> None:
    auth = Authenticator(settings())
    token = issue_unsubscribe_token(settings(), "alice", "order_shipped")

    assert auth.unsubscribe_request(token) == ("alice", "order_shipped")
    assert await refused(auth, token) == "this token is for one purpose only"
    assert await refused_stream(auth, token) == "not a stream token"
    untyped = hs256(claims(aud=UNSUBSCRIBE_AUDIENCE, type="order_shipped"))
    assert await refused(auth, untyped) == "this token is for one purpose only"


def test_forged_unsubscribe_links_are_refused() -> None:
    auth = Authenticator(settings())
    other = "another-secret-of-sufficient-length-xxxxxxxx"
    typed = {"typ": UNSUBSCRIBE_TYP}
    good = claims(aud=UNSUBSCRIBE_AUDIENCE, type="*")
    forged = [
        hs256(good, secret=other, **typed),
        hs256(claims(aud="herald", type="*"), **typed),
        hs256(claims(aud=UNSUBSCRIBE_AUDIENCE), **typed),
        hs256(good),
        auth.issue_stream_token(Principal("alice"))[0],
    ]
    for token in forged:
        with pytest.raises(Unauthenticated):
            auth.unsubscribe_request(token)


@pytest.mark.anyio
async def test_api_token_does_not_open_a_stream() -> None:
    auth = Authenticator(settings())
    assert await refused_stream(auth, hs256(claims())) == "not a stream token"
    key = rsa_key("k1")
    rs_token = signed(claims(), key, "RS256")
    assert await refused_stream(with_idp(FakeIdP(key)), rs_token) == "not a stream token"


@pytest.mark.anyio
async def test_forged_stream_tokens_are_refused() -> None:
    auth = Authenticator(settings())
    other = "another-secret-of-sufficient-length-xxxxxxxx"
    wrong_secret = hs256(claims(aud=STREAM_AUDIENCE), secret=other, typ=STREAM_TYP)
    wrong_audience = hs256(claims(aud="herald"), typ=STREAM_TYP)
    no_exp = hs256(claims(aud=STREAM_AUDIENCE, exp=None), typ=STREAM_TYP)
    unsigned = f"{b64json({'alg': 'none', 'typ': STREAM_TYP})}.{b64json(claims())}."

    assert await refused_stream(auth, wrong_secret) == "bad signature"
    assert await refused_stream(auth, wrong_audience) == "wrong audience"
    assert await refused_stream(auth, no_exp) == "missing claim: exp"
    assert await refused_stream(auth, unsigned) == "not a stream token"
    assert await refused_stream(auth, "garbage") == "malformed token"


# --- issue_token, construction, bearer ----------------------------------------------------


@pytest.mark.anyio
async def test_issue_token_round_trips_through_authenticate() -> None:
    configured = settings(jwt_audience="herald", jwt_issuer="https://herald.example")
    token = issue_token(configured, "svc-billing", [SCOPE_PUBLISH, SCOPE_PUBLISH], ttl=60)

    principal = await Authenticator(configured).authenticate(token)

    assert principal.sub == "svc-billing"
    assert principal.scopes == frozenset({SCOPE_PUBLISH})
    assert principal.expires_at is not None
    assert 0 < principal.expires_at - now() * 1000 <= 61_000


def test_issue_token_needs_a_secret() -> None:
    with pytest.raises(ConfigError):
        issue_token(Settings(), "alice", [], ttl=60)


@pytest.mark.parametrize(("sub", "ttl"), [("", 60), ("u" * 201, 60), ("alice", 0)])
def test_issue_token_refuses_tokens_authenticate_would_refuse(sub: str, ttl: int) -> None:
    with pytest.raises(ValueError, match=r"sub|ttl"):
        issue_token(settings(), sub, [], ttl=ttl)


def test_authenticator_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="HERALD_JWT_SECRET"):
        Authenticator(Settings())


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearerabc", None),
        ("Bearer abc def", None),
        ("Token abc", None),
    ],
)
def test_bearer_parses_the_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer(header) == token
