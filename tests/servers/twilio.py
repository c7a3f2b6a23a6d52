"""Twilio's Messages API on loopback: the request, the checks and the answers Twilio gives.

Only what creating a Message involves: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
form-encoded, with HTTP Basic auth. Errors carry Twilio's JSON (`code`, `message`, `more_info`,
`status`) and its codes, so a channel's handling of them is tested against the real shapes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote

import anyio
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import run_server

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


class FakeTwilio:
    def __init__(self) -> None:
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.sender = "+15550001111"
        # The HERALD_SMS_URL that reaches this server, known once it listens.
        self.url = ""
        # Accepted messages: the form fields as posted (To, From or MessagingServiceSid, Body)
        # and the sid Twilio gave them.
        self.messages: list[dict[str, str]] = []
        self.requests = 0
        # Numbers the carrier never reaches: their status reports end `undelivered`.
        self.unreachable: set[str] = set()
        # Status reports posted to a message's StatusCallback: (url, form, answer status).
        self.reports: list[tuple[str, dict[str, str], int]] = []
        self._failures: list[tuple[int, int | None]] = []
        self._arrived = anyio.Event()
        credentials = f"{self.account_sid}:{self.auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode()

    def fail_next(self, count: int, status: int = 503, retry_after: int | None = None) -> None:
        """Answer the next `count` requests with `status`, before any check."""
        self._failures.extend([(status, retry_after)] * count)

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, str]]:
        """The accepted messages, once there are at least `count` of them."""
        with anyio.fail_after(timeout):
            while len(self.messages) < count:
                await self._arrived.wait()
        return list(self.messages)

    def app(self) -> Starlette:
        path = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"
        return Starlette(routes=[Route(path, self._create_message, methods=["POST"])])

    async def _create_message(self, request: Request) -> Response:
        self.requests += 1
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return twilio_error(status, 20000 + status, HTTPStatus(status).phrase, headers)
        if request.headers.get("Authorization") != self._authorization:
            # Twilio's own challenge, as a browser would be shown it.
            challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            return twilio_error(401, 20003, "Authenticate", challenge)
        if request.path_params["account_sid"] != self.account_sid:
            message = f"The requested resource {request.url.path} was not found"
            return twilio_error(404, 20404, message)
        form = await _form(request)
        if refusal := _refusal(form):
            return refusal
        resource = self._resource(form)
        self.messages.append({**form, "sid": resource["sid"]})
        self._arrived.set()
        self._arrived = anyio.Event()
        callback = form.get("StatusCallback")
        reports = None if callback is None else BackgroundTask(self._report, callback, resource)
        return JSONResponse(resource, status_code=201, background=reports)

    async def _report(self, callback: str, resource: dict[str, Any]) -> None:
        """What Twilio posts to a StatusCallback: `sent`, then the carrier's answer, each
        signed as Twilio signs (HMAC-SHA1 of the URL and the sorted form)."""
        final = "undelivered" if resource["to"] in self.unreachable else "delivered"
        async with httpx.AsyncClient(timeout=5) as http:
            for status in ("sent", final):
                form = {
                    "AccountSid": self.account_sid,
                    "ApiVersion": API_VERSION,
                    "From": resource["from"] or "",
                    "MessageSid": resource["sid"],
                    "MessageStatus": status,
                    "SmsSid": resource["sid"],
                    "SmsStatus": status,
                    "To": resource["to"],
                }
                if status == "undelivered":
                    form["ErrorCode"] = "30003"
                headers = {"X-Twilio-Signature": self.signature(callback, form)}
                answer = await http.post(callback, data=form, headers=headers)
                self.reports.append((callback, form, answer.status_code))

    def signature(self, url: str, form: dict[str, str]) -> str:
        material = url + "".join(name + form[name] for name in sorted(form))
        digest = hmac.new(self.auth_token.encode(), material.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _resource(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        now = format_datetime(datetime.now(UTC))
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(segments(form["Body"])),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": form["To"],
            "uri": f"{uri}.json",
        }


async def _form(request: Request) -> dict[str, str]:
    """The posted fields; Twilio reads form encoding only, so a JSON body carries none."""
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    return {}


def _refusal(form: dict[str, str]) -> Response | None:
    """Twilio's answer to a form it cannot send, checked in Twilio's order."""
    if not form.get("To"):
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if not form.get("Body"):
        return twilio_error(400, 21602, "Message body is required.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not E164.match(form["To"]):
        return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {form['To']}")
    return None


def twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def segments(body: str) -> int:
    """How many SMS parts `body` takes, counting ASCII as GSM-7 (160 characters alone, 153 per
    part of a longer text) and anything else as UCS-2 (70, or 67 per part): close enough."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / part)


@asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio()
    async with run_server(twilio.app()) as live:
        address = live.url.removeprefix("http://")
        twilio.url = (
            f"twilio+http://{twilio.account_sid}:{twilio.auth_token}@{address}/"
            f"?from={quote(twilio.sender)}"
        )
        yield twilio
