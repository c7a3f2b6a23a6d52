"""`herald serve | worker | migrate | retention | token | send`: argv → Settings → run."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import replace

from herald_server import __version__, codec
from herald_server.config import (
    ConfigError,
    Settings,
    from_env,
    redact,
    unknown_variables,
    with_dev_secret,
    with_dev_vapid_key,
)
from herald_server.models import SCOPE_PUBLISH


def _environment() -> Settings:
    """Settings from the environment, after a warning for each HERALD_* name no setting reads."""
    for warning in unknown_variables():
        print(f"herald: warning: {warning}", file=sys.stderr)
    return from_env()


def _settings() -> Settings:
    settings, generated = with_dev_secret(_environment())
    if generated:
        print(
            f"herald: generated a development secret in {settings.dev_secret_file};"
            " set HERALD_JWT_SECRET to choose your own",
            file=sys.stderr,
        )
    return with_dev_vapid_key(settings)


def _preflight(settings: Settings, channels: bool) -> None:
    """Open the store, and the channels if asked, as the node will, before it starts: a bad
    setting or an unreachable database is then one line, not a traceback from its startup."""
    from herald_server.channels import open_channels

    async def check() -> None:
        if channels:
            for channel in open_channels(settings).values():
                await channel.aclose()
        if not settings.database_url.startswith("sqlite"):
            await _reach_database(settings)

    asyncio.run(check())
    if settings.database_url.startswith("sqlite"):
        _open_sqlite(settings)


async def _reach_database(settings: Settings) -> None:
    from herald_server.store import open_store

    store = open_store(settings)
    try:
        await store.ping()
    # The drivers' errors share no base class narrower than this; each one means unreachable.
    except Exception as exc:
        raise _unreachable(settings, exc) from None
    finally:
        await store.aclose()


def _open_sqlite(settings: Settings) -> None:
    """SQLite, opened directly: aiosqlite's thread would outlive a failed attempt's loop."""
    import sqlite3

    from sqlalchemy.engine import make_url

    try:
        sqlite3.connect(make_url(settings.database_url).database or ":memory:").close()
    except sqlite3.Error as exc:
        raise _unreachable(settings, exc) from None


def _unreachable(settings: Settings, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"DATABASE_URL: cannot reach {redact(settings.database_url)}: {_root_cause(exc)}"
    )


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost cause: the driver's own words, not its wrappers'."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    found = orig if isinstance(orig, BaseException) else exc
    return (str(found).splitlines() or [type(found).__name__])[0]


# uvicorn's exit status for a server that never started (a port in use, a failed lifespan).
STARTUP_FAILURE = 3


def _drained(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> None:
    import signal

    import uvicorn

    from herald_server.main import create_app
    from herald_server.server import uvicorn_config

    settings = _settings()
    _preflight(settings, channels=True)
    host = args.host or settings.host
    port = args.port or settings.port
    # The metrics port (HERALD_METRICS_PORT) listens on the same address as the API.
    settings = replace(settings, host=host, port=port)
    print(
        f"herald: serving on http://{host}:{port} (store {settings.database_url.split('://')[0]},"
        f" bus {'redis' if settings.redis_url else 'in-process'});"
        " mint a token with `herald token --sub alice`",
        file=sys.stderr,
    )
    from herald_server.channels import configured_channels

    channels = ", ".join(sorted(configured_channels(settings)))
    delivery = (
        f"herald: delivering by {channels} in this process"
        if settings.runs_worker_in_process
        else f"herald: {channels} delivered by `herald worker` processes (none run here)"
    )
    print(delivery, file=sys.stderr)
    if settings.metrics_port is not None:
        print(
            f"herald: metrics on http://{host}:{settings.metrics_port}/metrics and"
            " /metrics/cluster, not on the API's port",
            file=sys.stderr,
        )
    if settings.dev_login_enabled:
        print(_dev_login_notice(settings, host, port), file=sys.stderr)
    # uvicorn drains on SIGTERM, then raises the signal again into the handler it found
    # installed: by default the node would die of it (status 143) after a clean shutdown.
    signal.signal(signal.SIGTERM, _drained)
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings), host=host, port=port))
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _dev_login_notice(settings: Settings, host: str, port: int) -> str:
    if settings.insecure_dev_login_from_network:
        return (
            "herald: WARNING: dev login answers anyone who can reach this node"
            " (HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK): they can mint any token, admin included"
        )
    return (
        f"herald: demo page http://{host}:{port}/ and admin page http://{host}:{port}/admin"
        " (development login on, for clients on this machine only;"
        " HERALD_DEV_LOGIN=false turns it off)"
    )


def worker(args: argparse.Namespace) -> None:
    """Deliver by email, Web Push, webhook and SMS until SIGTERM or SIGINT, then finish the
    attempts under way and exit."""
    import signal

    import uvloop

    from herald_server.api.metrics import serving_metrics, worker_metrics
    from herald_server.bus import open_queue
    from herald_server.channels import configured_channels, open_channels
    from herald_server.logs import configure
    from herald_server.store import open_store
    from herald_server.worker import build_worker

    settings = _settings()
    _preflight(settings, channels=False)
    configure(settings.log_level, settings.log_style)

    async def run() -> None:
        store = open_store(settings)
        queue = open_queue(
            settings.redis_url, settings.redis_prefix, settings.job_visibility_seconds
        )
        running = build_worker(settings, store, queue, open_channels(settings))
        try:
            if settings.migrate_on_start:
                await store.migrate()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, running.stop)
            print(
                f"herald: worker delivering by {', '.join(sorted(configured_channels(settings)))}"
                f" (queue {'redis' if settings.redis_url else 'in-process'})",
                file=sys.stderr,
            )
            async with serving_metrics(
                worker_metrics(store, running.deliverer.attempts),
                args.metrics_host,
                args.metrics_port,
            ):
                await running.run()
        finally:
            await running.aclose()
            await store.aclose()

    uvloop.run(run())


def migrate(args: argparse.Namespace) -> None:
    from herald_server.store import open_store

    settings = _environment()
    _preflight(settings, channels=False)

    async def run() -> list[str]:
        store = open_store(settings)
        try:
            return await store.migrate()
        finally:
            await store.aclose()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "up to date", file=sys.stderr)


def retention(args: argparse.Namespace) -> None:
    """Delete notifications older than --days (default HERALD_RETENTION_DAYS) now, in batches
    of HERALD_RETENTION_BATCH rows, and print what went."""
    from herald_server.core.scheduler import Retention
    from herald_server.models import now_ms
    from herald_server.store import open_store

    settings = _environment()
    _preflight(settings, channels=False)
    days = settings.retention_days if args.days is None else args.days
    if days is None:
        raise SystemExit("herald retention: pass --days N or set HERALD_RETENTION_DAYS")
    if days < 1:
        raise SystemExit("herald retention: --days must be at least 1")

    async def run() -> str:
        store = open_store(settings)
        try:
            report = await Retention(store, days, settings.retention_batch).run(now_ms())
        finally:
            await store.aclose()
        return (
            f"deleted notifications older than {days} days: {report.notifications} notifications,"
            f" {report.inbox} inbox items, {report.deliveries} deliveries,"
            f" {report.attempts} delivery attempts, {report.user_events} state events,"
            f" {report.idempotency_keys} idempotency keys"
            f"; partitions dropped: {', '.join(report.partitions_dropped) or 'none'}"
            f"; partitions created: {', '.join(report.partitions_created) or 'none'}"
        )

    print(asyncio.run(run()))


def token(args: argparse.Namespace) -> None:
    from herald_server.auth import issue_token

    try:
        print(issue_token(_settings(), args.sub, args.scope.split(), args.ttl))
    except ValueError as exc:
        raise SystemExit(f"herald token: {exc}") from None


def send(args: argparse.Namespace) -> None:
    """Publish through a running node's HTTP API, so live streams see it."""
    from herald_server.auth import issue_token

    bearer = issue_token(_settings(), "herald-cli", [SCOPE_PUBLISH], 60)
    body = {"recipients": [args.to], "title": args.title, "body": args.body, "type": args.type}
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own node
        args.url.rstrip("/") + "/api/notifications",
        data=codec.dumps(body),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"herald send: {exc.code} {exc.read().decode()}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"herald send: cannot reach {args.url}: {exc.reason}") from None


def _port(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 65_535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {raw!r}")
    return int(raw)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="herald", description=__doc__)
    root.add_argument("--version", action="version", version=f"herald {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="serve the API and the streams")
    p.add_argument("--host", help="default HERALD_HOST (127.0.0.1)")
    p.add_argument("--port", type=_port, help="default HERALD_PORT (8000)")
    p.set_defaults(run=serve)
    p = commands.add_parser("worker", help="deliver by email, Web Push, webhook and SMS")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on this port (off)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="its address (127.0.0.1)")
    p.set_defaults(run=worker)
    p = commands.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(run=migrate)
    p = commands.add_parser("retention", help="delete old notifications now, in batches")
    p.add_argument("--days", type=int, help="older than this (default HERALD_RETENTION_DAYS)")
    p.set_defaults(run=retention)
    p = commands.add_parser("token", help="print a signed token (development and scripts)")
    p.add_argument("--sub", required=True, help="the user id")
    p.add_argument("--scope", default="", help='e.g. "notifications:publish notifications:admin"')
    p.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (3600)")
    p.set_defaults(run=token)
    p = commands.add_parser("send", help="send a notification through a running node")
    p.add_argument("--to", required=True, help="the recipient's user id")
    p.add_argument("--title", required=True)
    p.add_argument("--body", default="")
    p.add_argument("--type", default="default")
    p.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the node (http://127.0.0.1:8000)"
    )
    p.set_defaults(run=send)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ConfigError as exc:
        raise SystemExit(f"herald: {exc}") from None
