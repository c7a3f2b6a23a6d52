"""`herald serve | migrate | token | send`: argv → Settings → run."""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from app import codec
from app.config import ConfigError, Settings, from_env, with_dev_secret
from app.models import SCOPE_PUBLISH


def _settings() -> Settings:
    settings, generated = with_dev_secret(from_env())
    if generated:
        print(
            f"herald: generated a development secret in {settings.dev_secret_file};"
            " set HERALD_JWT_SECRET to choose your own",
            file=sys.stderr,
        )
    return settings


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    print(
        f"herald: serving on http://{host}:{port} (store {settings.database_url.split('://')[0]},"
        f" bus {'redis' if settings.redis_url else 'in-process'});"
        " mint a token with `herald token --sub alice`",
        file=sys.stderr,
    )
    if settings.dev_login_enabled:
        print(
            f"herald: demo page http://{host}:{port}/ and admin page http://{host}:{port}/admin"
            " (development login on; HERALD_DEV_LOGIN=false turns it off)",
            file=sys.stderr,
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        # The legacy websockets implementation is deprecated (websockets 14+).
        ws="websockets-sansio",
        log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )


def migrate(args: argparse.Namespace) -> None:
    from app.store import open_store

    async def run() -> list[str]:
        store = open_store(from_env())
        try:
            return await store.migrate()
        finally:
            await store.aclose()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "up to date", file=sys.stderr)


def token(args: argparse.Namespace) -> None:
    from app.auth import issue_token

    try:
        print(issue_token(_settings(), args.sub, args.scope.split(), args.ttl))
    except ValueError as exc:
        raise SystemExit(f"herald token: {exc}") from None


def send(args: argparse.Namespace) -> None:
    """Publish through a running node's HTTP API, so live streams see it."""
    from app.auth import issue_token

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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="herald", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="serve the API and the streams")
    p.add_argument("--host", help="default HERALD_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, help="default HERALD_PORT (8000)")
    p.set_defaults(run=serve)
    p = commands.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(run=migrate)
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
