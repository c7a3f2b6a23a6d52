"""Twilio's status callback: the carrier's word on each text, after Twilio accepted it.

`delivered` marks the delivery delivered; `undelivered` and `failed` put it in the dead-letter
queue with Twilio's error code. The URL Herald gave Twilio names the delivery (`?delivery=`,
its key); the request must carry Twilio's signature over that URL and the form, or nothing
changes.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald_server.api._http import read_body, services
from herald_server.channels import SMS_STATUS_PATH
from herald_server.core.delivery import parse_delivery_key
from herald_server.errors import Forbidden, NotFound
from herald_server.models import now_ms

MAX_FORM_BYTES = 16 * 1024
# Twilio's final statuses, as Herald's.
FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}


async def sms_status(request: Request) -> Response:
    found = services(request)
    if found.sms_signature is None:
        raise NotFound("SMS is not configured here")
    raw = await read_body(request, MAX_FORM_BYTES)
    form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    url = found.settings.base_url + SMS_STATUS_PATH
    if request.url.query:
        url += "?" + request.url.query
    if not found.sms_signature(url, form, request.headers.get("x-twilio-signature", "")):
        raise Forbidden("not signed by Twilio with this account's auth token")
    status = FINAL.get(form.get("MessageStatus", ""))
    delivery = parse_delivery_key(request.query_params.get("delivery", ""))
    if status is not None and delivery is not None:
        code = form.get("ErrorCode")
        detail = f"Twilio reports {form['MessageStatus']}" + (f" (error {code})" if code else "")
        await found.store.provider_report(*delivery, "sms", status, detail, now_ms())
    # Twilio needs no more than a 2xx; an unknown or interim report changes nothing.
    return Response(status_code=204)


routes = [Route(SMS_STATUS_PATH, sms_status, methods=["POST"])]
