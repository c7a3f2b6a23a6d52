"""create_app: the composition root. The lifespan builds the store, bus, hub and core once,
runs the node's background loops, and tears them down in reverse."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from herald_server import api
from herald_server.api import metrics
from herald_server.api.cors import cors_middleware
from herald_server.api.metrics import node_metrics, process_registry, serving_metrics
from herald_server.api.observe import Observer, latency_histogram
from herald_server.auth import Authenticator
from herald_server.bus import open_bus, open_limiter, open_queue
from herald_server.channels import configured_channels, open_channels
from herald_server.config import Settings
from herald_server.core.audit import Auditor
from herald_server.core.hub import Hub, StreamLimits
from herald_server.core.inbox import Inbox
from herald_server.core.publishing import Publisher, PublishLimits
from herald_server.core.renderer import TemplateRenderer
from herald_server.core.scheduler import Retention, Scheduler
from herald_server.services import Services
from herald_server.store import open_store
from herald_server.streams import sse, ws
from herald_server.streams.sse import end_streams_on_exit
from herald_server.worker import Worker, build_worker

log = logging.getLogger("herald")
# The pages and herald.js ship inside the package; an installed wheel unpacks them as files.
STATIC_DIR = Path(str(files("herald_server.static")))


async def stop_worker(worker: Worker | None, grace: float) -> None:
    """Let attempts under way finish (the grace period at most): one cut short would be sent
    again by another worker after the visibility timeout."""
    if worker is None:
        return
    worker.stop()
    with anyio.move_on_after(grace):
        await worker.finished.wait()


def build_services(settings: Settings) -> Services:
    store = open_store(settings)
    bus = open_bus(settings.redis_url, settings.redis_prefix, settings.redis_stream_maxlen)
    worker = None
    if settings.runs_worker_in_process:
        queue = open_queue(
            settings.redis_url, settings.redis_prefix, settings.job_visibility_seconds
        )
        worker = build_worker(settings, store, queue, open_channels(settings))
    sms_signature = None
    if settings.sms_url is not None:
        from herald_server.channels.sms import parse_sms_url, valid_signature

        sms_signature = functools.partial(valid_signature, parse_sms_url(settings.sms_url).token)
    vapid_key = None
    if settings.vapid_private_key is not None:
        from herald_server.channels.webpush import vapid_public_key

        vapid_key = vapid_public_key(settings.vapid_private_key)
    limits = StreamLimits(
        replay_limit=settings.replay_limit,
        buffer=settings.stream_buffer,
        token_notice=settings.stream_token_notice,
        per_user=settings.max_streams_per_user,
    )
    renderer = TemplateRenderer(settings.template_timeout_seconds, settings.template_memory_mb)
    publish_limits = PublishLimits(
        max_recipients=settings.max_recipients,
        max_notification_bytes=settings.max_notification_bytes,
        publish_rate=settings.publish_rate,
        publish_burst=settings.publish_burst,
        recipient_rate=settings.recipient_rate,
        recipient_burst=settings.recipient_burst,
    )
    limiter = open_limiter(settings.redis_url, settings.redis_prefix)
    return Services(
        settings=settings,
        store=store,
        bus=bus,
        hub=Hub(store, limits),
        publisher=Publisher(
            store,
            bus,
            publish_limits,
            templates=store,
            renderer=renderer,
            limiter=limiter,
            on_published=None if worker is None else worker.wake,
        ),
        inbox=Inbox(store, bus),
        auth=Authenticator(settings),
        renderer=renderer,
        limiter=limiter,
        audit=Auditor(store),
        channels=frozenset(configured_channels(settings)),
        vapid_public_key=vapid_key,
        worker=worker,
        sms_signature=sms_signature,
    )


def create_app(settings: Settings) -> Starlette:
    registry = process_registry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        found = build_services(settings)
        try:
            if settings.migrate_on_start:
                applied = await found.store.migrate()
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
            app.state.services = found
            app.state.metrics = node_metrics(registry, found)
            scheduler = Scheduler(
                found.store,
                found.publisher,
                settings.scheduler_interval,
                settings.idempotency_ttl_seconds,
                retention=None
                if settings.retention_days is None
                else Retention(found.store, settings.retention_days, settings.retention_batch),
            )
            loops = found.supervisor
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    loops.run,
                    "bus listener",
                    lambda: found.bus.run(found.hub.deliver, found.hub.resync),
                )
                tasks.start_soon(loops.run, "scheduler", scheduler.run)
                # The server drains connections before the lifespan hears of shutdown: streams
                # are ended as soon as the server is told (see herald_server.streams.sse), not
                # after.
                tasks.start_soon(end_streams_on_exit, found.hub)
                if found.worker is not None:
                    tasks.start_soon(found.worker.run)
                async with serving_metrics(app.state.metrics, settings.host, settings.metrics_port):
                    yield
                found.hub.close()
                await stop_worker(found.worker, settings.shutdown_grace_seconds)
                tasks.cancel_scope.cancel()
        finally:
            if found.worker is not None:
                await found.worker.aclose()
            found.renderer.close()
            await found.limiter.aclose()
            await found.bus.aclose()
            await found.store.aclose()

    def page(name: str) -> Callable[[object], Awaitable[Response]]:
        async def serve(request: object) -> Response:
            return FileResponse(STATIC_DIR / name)

        return serve

    routes = [
        *api.routes(),
        # With a metrics port of its own, /metrics is served there and not here.
        *(metrics.routes if settings.metrics_port is None else []),
        *sse.routes,
        *ws.routes,
        Route("/", page("index.html"), methods=["GET"]),
        Route("/admin", page("admin.html"), methods=["GET"]),
        Route("/docs", page("docs.html"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    observe = Middleware(Observer, latency=latency_histogram(registry), routes=lambda: routes)
    return Starlette(
        routes=routes,
        middleware=[observe, *cors_middleware(settings.cors_origins)],
        exception_handlers=api.exception_handlers,
        lifespan=lifespan,
    )
