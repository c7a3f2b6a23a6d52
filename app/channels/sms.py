"""TwilioChannel: text messages through Twilio's Messages API, over one reused HTTP client.

HERALD_SMS_URL names the account and the sender:

    twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/?from=%2B15550001111
    twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/?messaging_service_sid=MG…

`twilio+http://` speaks plain HTTP, for a local stand-in in tests and nothing else.

Twilio documents no idempotency key for creating a Message, so sending is at-least-once: when
the answer to an accepted request is lost (a timeout), the retry sends the text again.

With a status callback URL, Twilio later reports whether the carrier delivered the text;
`valid_signature` checks those reports' `X-Twilio-Signature`, so nobody else can fake one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import anyio
import httpx

from herald_server.channels import Channel, Message, Outcome, PhoneNumber, SmsContent
from herald_server.config import ConfigError, redact

API_VERSION = "2010-04-01"
SCHEMES = {"twilio": "https", "twilio+http": "http"}
# Where the URL's query names the sender, and the form field that carries it to Twilio.
SENDER_FIELDS = {"from": "From", "messaging_service_sid": "MessagingServiceSid"}
# Worth another try later: Twilio timed out reading us, throttles us (429), or is failing (5xx).
TRANSIENT_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    base_url: str
    sid: str
    # Out of the repr, so logging an account cannot leak it.
    token: str = field(repr=False)
    # The sender as form fields: From, MessagingServiceSid, or both (From within the service).
    sender: dict[str, str]


def parse_sms_url(url: str) -> TwilioAccount:
    try:
        return _account(url)
    except ValueError as exc:
        raise ConfigError(f"HERALD_SMS_URL: {exc} in {redact(url)}") from None


def _account(url: str) -> TwilioAccount:
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ValueError("expected twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/?from=…")
    if not parts.username or not parts.password:
        raise ValueError("the account SID and auth token are required")
    options = dict(parse_qsl(parts.query))
    if unknown := sorted(set(options) - set(SENDER_FIELDS)):
        raise ValueError(f"unknown option {', '.join(unknown)}")
    sender = {SENDER_FIELDS[name]: value for name, value in options.items()}
    if not sender:
        raise ValueError("a sender is required: ?from=+1… or ?messaging_service_sid=MG…")
    return TwilioAccount(
        base_url=str(httpx.URL(scheme=scheme, host=parts.hostname, port=parts.port)),
        sid=unquote(parts.username),
        token=unquote(parts.password),
        sender=sender,
    )


def valid_signature(token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Twilio's request signature: HMAC-SHA1 with the auth token over the URL Twilio called,
    followed by every POST parameter's name and value, sorted by name, in base64."""
    material = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), material.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), signature)


class TwilioChannel:
    def __init__(self, url: str, timeout: float, status_callback: str | None = None) -> None:
        """`status_callback`: where Twilio reports the carrier's answer (a public URL)."""
        account = parse_sms_url(url)
        self._path = f"/{API_VERSION}/Accounts/{quote(account.sid, safe='')}/Messages.json"
        self._sender = account.sender
        self._status_callback = status_callback
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=account.base_url, auth=(account.sid, account.token), timeout=timeout
        )

    async def send(self, message: Message) -> Outcome:
        assert isinstance(message.content, SmsContent)
        assert isinstance(message.target, PhoneNumber)
        form = {"To": message.target.number, **self._sender, "Body": message.content.text}
        if self._status_callback is not None:
            # The delivery's key in the URL names it in every report, even one that arrives
            # before Herald has recorded Twilio's answer to this request.
            form["StatusCallback"] = f"{self._status_callback}?delivery={quote(message.key)}"
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange, so a server
            # that trickles its answer cannot hold a worker.
            with anyio.fail_after(self._timeout):
                response = await self._http.post(self._path, data=form)
        except TimeoutError:
            return Outcome("retry", f"no answer within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        return _outcome(response)

    async def aclose(self) -> None:
        await self._http.aclose()


def _outcome(response: httpx.Response) -> Outcome:
    status = response.status_code
    body = _json_object(response)
    if response.is_success:
        sid = body.get("sid")
        provider_id = sid if isinstance(sid, str) else None
        return Outcome("sent", f"{status} {body.get('status')}", provider_id=provider_id)
    detail = f"{status} {response.reason_phrase}"
    if "code" in body:
        detail = f"{status} {body['code']}: {body.get('message')}"
    if status in TRANSIENT_STATUSES or status >= 500:
        return Outcome("retry", detail, retry_after=_retry_after(response))
    return Outcome("failed", detail)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """Twilio's JSON answer, or nothing when a proxy on the way answered with something else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds; the HTTP-date form is left to the worker's own backoff."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


_: type[Channel] = TwilioChannel
