"""One-click unsubscribe (RFC 8058) from the link in every email Herald sends.

Mail clients POST `List-Unsubscribe=One-Click` to the link; a person who opens it gets a page
with a button that POSTs the same. A GET never unsubscribes: mail scanners fetch links.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from herald_server.api._http import read_body, services
from herald_server.errors import InvalidParameter, Unauthenticated
from herald_server.models import EVERY_TYPE

MAX_FORM_BYTES = 1024


def _request(request: Request) -> tuple[str, str]:
    token = request.query_params.get("token")
    if not token:
        raise InvalidParameter("the link has no token")
    try:
        return services(request).auth.unsubscribe_request(token)
    except Unauthenticated:
        raise InvalidParameter("this unsubscribe link is not valid") from None


def _what(kind: str) -> str:
    return "any email" if kind == EVERY_TYPE else f"email about {html.escape(kind)}"


async def confirm(request: Request) -> Response:
    _, kind = _request(request)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribe</title>"
        f"<p>Stop receiving {_what(kind)}?</p>"
        '<form method="post"><button name="List-Unsubscribe" value="One-Click">'
        "Unsubscribe</button></form>",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def unsubscribe(request: Request) -> Response:
    user, kind = _request(request)
    await read_body(request, MAX_FORM_BYTES)
    await services(request).store.set_switch(user, kind, "email", False)
    return HTMLResponse(
        f"<!doctype html><title>Unsubscribed</title><p>You will not receive {_what(kind)}"
        " any more. You can turn it back on in your notification preferences.</p>",
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route("/api/unsubscribe", confirm, methods=["GET"]),
    Route("/api/unsubscribe", unsubscribe, methods=["POST"]),
]
