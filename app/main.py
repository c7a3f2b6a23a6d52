"""create_app: the composition root. The lifespan builds the store, bus, hub and core once,
runs the node's background loops, and tears them down in reverse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app import api
from app.api.metrics import registry_for
from app.auth import Authenticator
from app.bus import open_bus
from app.config import Settings
from app.core.hub import Hub, StreamLimits
from app.core.inbox import Inbox
from app.core.publishing import Publisher, PublishLimits
from app.core.scheduler import Scheduler
from app.services import Services
from app.store import open_store
from app.streams import sse, ws

log = logging.getLogger("herald")
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# A background loop that crashes is logged and restarted after this pause, never lost silently.
RESTART_DELAY = 1.0


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await loop()
        except Exception:
            log.exception("%s crashed; restarting in %.0f s", name, RESTART_DELAY)
        await anyio.sleep(RESTART_DELAY)


def build_services(settings: Settings) -> Services:
    store = open_store(settings)
    bus = open_bus(settings.redis_url, settings.redis_prefix, settings.redis_stream_maxlen)
    limits = StreamLimits(
        replay_limit=settings.replay_limit,
        buffer=settings.stream_buffer,
        token_notice=settings.stream_token_notice,
    )
    publish_limits = PublishLimits(
        max_recipients=settings.max_recipients,
        max_notification_bytes=settings.max_notification_bytes,
    )
    return Services(
        settings=settings,
        store=store,
        bus=bus,
        hub=Hub(store, limits),
        publisher=Publisher(store, bus, publish_limits),
        inbox=Inbox(store, bus),
        auth=Authenticator(settings),
    )


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        found = build_services(settings)
        try:
            if settings.migrate_on_start:
                applied = await found.store.migrate()
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
            app.state.services = found
            app.state.metrics_registry = registry_for(found)
            scheduler = Scheduler(
                found.store,
                found.publisher,
                settings.scheduler_interval,
                settings.idempotency_ttl_seconds,
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    supervise,
                    "bus listener",
                    lambda: found.bus.run(found.hub.deliver, found.hub.resync),
                )
                tasks.start_soon(supervise, "scheduler", scheduler.run)
                yield
                found.hub.close()
                tasks.cancel_scope.cancel()
        finally:
            await found.bus.aclose()
            await found.store.aclose()

    def page(name: str) -> Callable[[object], Awaitable[Response]]:
        async def serve(request: object) -> Response:
            return FileResponse(STATIC_DIR / name)

        return serve

    routes = [
        *api.routes(),
        *sse.routes,
        *ws.routes,
        Route("/", page("index.html"), methods=["GET"]),
        Route("/admin", page("admin.html"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers=api.exception_handlers,
        lifespan=lifespan,
    )
