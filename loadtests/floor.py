"""The floor the benchmark compares Herald with: a bare sse-starlette fan-out.

What an afternoon's SSE notification server looks like: one EventSourceResponse per connection,
a bounded anyio memory stream per connection as its mailbox, connections indexed by user, and
an event encoded by sse-starlette for every connection it reaches. No store, no auth, no
resume: every figure Herald reaches beside it is the cost of its own code, or its saving.

It speaks just enough of Herald's API for `bench.py` to drive both the same way:
`GET /api/stream?user=…` and `POST /api/notifications` with `recipients` or `broadcast`.

    python loadtests/floor.py --port 8100
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import AsyncIterator

import anyio
import uvicorn
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAILBOX = 256
Mailbox = MemoryObjectSendStream[ServerSentEvent]

connections: dict[str, set[Mailbox]] = {}
ids = itertools.count(1)


async def stream(request: Request) -> Response:
    user = request.query_params["user"]
    mailbox, events = anyio.create_memory_object_stream[ServerSentEvent](MAILBOX)
    connections.setdefault(user, set()).add(mailbox)

    async def body(events: MemoryObjectReceiveStream[ServerSentEvent]) -> AsyncIterator[object]:
        try:
            yield ServerSentEvent(comment="floor")
            async with events:
                async for event in events:
                    yield event
        finally:
            mine = connections.get(user, set())
            mine.discard(mailbox)
            if not mine:
                connections.pop(user, None)

    return EventSourceResponse(body(events), ping=15, send_timeout=30)


async def publish(request: Request) -> Response:
    draft = json.loads(await request.body())
    notification_id = next(ids)
    payload = json.dumps({"id": str(notification_id), **draft})
    if draft.get("broadcast"):
        mailboxes = [box for boxes in connections.values() for box in boxes]
    else:
        mailboxes = [box for user in draft["recipients"] for box in connections.get(user, ())]
    for mailbox in mailboxes:
        event = ServerSentEvent(data=payload, event="notification", id=str(notification_id))
        try:
            mailbox.send_nowait(event)
        except (anyio.WouldBlock, anyio.BrokenResourceError):
            continue
    return JSONResponse({"id": str(notification_id), "recipients": len(mailboxes)}, 202)


async def ready(request: Request) -> Response:
    return JSONResponse({"status": "ready"})


app = Starlette(
    routes=[
        Route("/api/stream", stream),
        Route("/api/notifications", publish, methods=["POST"]),
        Route("/readyz", ready),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    # The same server settings as `herald serve`, so only the application differs.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
