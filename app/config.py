"""Every setting Herald reads, with its default, in one place.

The embedded default needs no environment at all: SQLite next to the working directory, an
in-process bus, and a development signing secret kept in a file so that `herald token` and
`herald serve` agree on it. Production (`HERALD_ENV=production`) refuses to start without a
real secret instead of inventing one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

Environment = Literal["development", "production"]


class ConfigError(Exception):
    """A setting is missing or malformed; raised before anything starts, naming the variable."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///./herald.db"
    redis_url: str | None = None
    # Keys Herald writes in Redis start with this, so several deployments can share one.
    redis_prefix: str = "herald"
    # Live events kept in the Redis stream (approximately): enough for a node's brief hiccup;
    # anything older is read from the store anyway.
    redis_stream_maxlen: int = 100_000
    environment: Environment = "development"
    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # Tolerated clock skew between the token issuer and this node, in seconds.
    jwt_leeway: int = 10
    # How long fetched JWKS keys are trusted before a refresh; an unknown `kid` refreshes sooner.
    jwks_cache_seconds: int = 300
    dev_secret_file: str = "./.herald-dev-secret"  # noqa: S105 - a path, not a secret
    host: str = "127.0.0.1"
    port: int = 8000
    # A stream token sits in a URL, so it lives minutes, not days.
    stream_token_ttl: int = 900
    # Warn a stream this long before its token expires, so the client can renew in time.
    stream_token_notice: int = 30
    # Beyond this many missed events a resuming client gets `reset` and refetches over REST.
    replay_limit: int = 1000
    # Live events buffered per connection; a connection that falls further behind catches up
    # from the store instead of growing memory.
    stream_buffer: int = 256
    # Proxies commonly cut idle connections after 30-60 s; a comment every 15 s keeps them open.
    heartbeat_seconds: float = 15.0
    sse_retry_ms: int = 2000
    # A client that has not read for this long is cut, so it cannot pin server memory.
    send_timeout_seconds: float = 30.0
    max_body_bytes: int = 256 * 1024
    max_notification_bytes: int = 10 * 1024
    max_recipients: int = 10_000
    # How often each node looks for due `send_at` notifications.
    scheduler_interval: float = 1.0
    idempotency_ttl_seconds: int = 24 * 3600
    migrate_on_start: bool = True
    db_pool_size: int = 10
    shutdown_grace_seconds: float = 5.0
    log_level: str = "info"
    # `POST /api/dev/login` mints tokens for anyone who asks: the demo page signs in with it.
    # Unset means on in development, off in production (where turning it on is refused).
    dev_login: bool | None = None

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def dev_login_enabled(self) -> bool:
        return not self.production if self.dev_login is None else self.dev_login


def _cast_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _cast_environment(raw: str) -> Environment:
    if raw == "development":
        return "development"
    if raw == "production":
        return "production"
    raise ValueError(f"expected development or production, got {raw!r}")


_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "DATABASE_URL": ("database_url", str),
    "REDIS_URL": ("redis_url", str),
    "HERALD_REDIS_PREFIX": ("redis_prefix", str),
    "HERALD_REDIS_STREAM_MAXLEN": ("redis_stream_maxlen", int),
    "HERALD_ENV": ("environment", _cast_environment),
    "HERALD_JWT_SECRET": ("jwt_secret", str),
    "HERALD_JWKS_URL": ("jwks_url", str),
    "HERALD_JWT_AUDIENCE": ("jwt_audience", str),
    "HERALD_JWT_ISSUER": ("jwt_issuer", str),
    "HERALD_JWT_LEEWAY": ("jwt_leeway", int),
    "HERALD_JWKS_CACHE_SECONDS": ("jwks_cache_seconds", int),
    "HERALD_DEV_SECRET_FILE": ("dev_secret_file", str),
    "HERALD_HOST": ("host", str),
    "HERALD_PORT": ("port", int),
    "HERALD_STREAM_TOKEN_TTL": ("stream_token_ttl", int),
    "HERALD_STREAM_TOKEN_NOTICE": ("stream_token_notice", int),
    "HERALD_REPLAY_LIMIT": ("replay_limit", int),
    "HERALD_STREAM_BUFFER": ("stream_buffer", int),
    "HERALD_HEARTBEAT_SECONDS": ("heartbeat_seconds", float),
    "HERALD_SSE_RETRY_MS": ("sse_retry_ms", int),
    "HERALD_SEND_TIMEOUT_SECONDS": ("send_timeout_seconds", float),
    "HERALD_MAX_BODY_BYTES": ("max_body_bytes", int),
    "HERALD_MAX_NOTIFICATION_BYTES": ("max_notification_bytes", int),
    "HERALD_MAX_RECIPIENTS": ("max_recipients", int),
    "HERALD_SCHEDULER_INTERVAL": ("scheduler_interval", float),
    "HERALD_IDEMPOTENCY_TTL_SECONDS": ("idempotency_ttl_seconds", int),
    "HERALD_MIGRATE_ON_START": ("migrate_on_start", _cast_bool),
    "HERALD_DB_POOL_SIZE": ("db_pool_size", int),
    "HERALD_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", float),
    "HERALD_LOG_LEVEL": ("log_level", str),
    "HERALD_DEV_LOGIN": ("dev_login", _cast_bool),
}

_SCHEMES = {"sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg"}


def redact(url: str) -> str:
    """The URL with its password replaced, fit for an error message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment; a bad value names its variable."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for key, (field_name, cast) in _ENV.items():
        raw = env.get(key)
        if raw is None or raw == "":
            continue
        try:
            values[field_name] = cast(raw)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    settings = Settings(**values)  # type: ignore[arg-type]
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    scheme = urlsplit(settings.database_url).scheme
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"DATABASE_URL: unsupported scheme {scheme!r} in {redact(settings.database_url)}"
            " (use sqlite:///path or postgresql://…)"
        )
    if settings.redis_url is not None:
        redis_scheme = urlsplit(settings.redis_url).scheme
        if redis_scheme not in ("redis", "rediss", "memory"):
            raise ConfigError(
                f"REDIS_URL: unsupported scheme {redis_scheme!r} in {redact(settings.redis_url)}"
            )
    if settings.production and not settings.jwt_secret:
        raise ConfigError(
            "HERALD_JWT_SECRET is required when HERALD_ENV=production"
            " (it verifies HS256 tokens and signs stream tokens)"
        )
    if settings.production and settings.dev_login:
        raise ConfigError("HERALD_DEV_LOGIN would let anyone mint tokens; not in production")
    if not 0 < settings.stream_token_notice < settings.stream_token_ttl:
        raise ConfigError(
            "HERALD_STREAM_TOKEN_NOTICE must be positive and below HERALD_STREAM_TOKEN_TTL,"
            " or every stream would be told to renew as soon as it opens"
        )
    if settings.jwt_secret is not None and len(settings.jwt_secret) < 32:
        raise ConfigError("HERALD_JWT_SECRET must be at least 32 characters")


def with_dev_secret(settings: Settings) -> tuple[Settings, bool]:
    """Fill in the development secret, creating its file on first use.

    Returns the settings and whether a new secret was generated (so the CLI can print it once).
    """
    if settings.jwt_secret:
        return settings, False
    path = Path(settings.dev_secret_file)
    if path.exists():
        return replace(settings, jwt_secret=path.read_text().strip()), False
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return replace(settings, jwt_secret=secret), True
