"""Every setting Herald reads, with its default, in one place.

The embedded default needs no environment at all: SQLite next to the working directory, an
in-process bus, and a development signing secret kept in a file so that `herald token` and
`herald serve` agree on it. Production (`HERALD_ENV=production`) refuses to start without a
real secret instead of inventing one.
"""

from __future__ import annotations

import base64
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
    # Token buckets, per second with a burst on top; 0 turns a limit off. A publisher's
    # requests, and the notifications one publisher sends one recipient by name (topics and
    # broadcasts are fan-out by design, and a send to oneself hurts no one: not counted).
    publish_rate: float = 500.0
    publish_burst: int = 1000
    recipient_rate: float = 10.0
    recipient_burst: int = 100
    # Open streams one user may hold on one node; more are refused with 429.
    max_streams_per_user: int = 20
    max_topics_per_user: int = 100
    # Origins whose pages may call Herald (CORS) and open its WebSocket; empty: same origin.
    cors_origins: tuple[str, ...] = ()
    # How often each node looks for due `send_at` notifications.
    scheduler_interval: float = 1.0
    idempotency_ttl_seconds: int = 24 * 3600
    migrate_on_start: bool = True
    db_pool_size: int = 20
    # A request waits this long for a free pooled connection, then gets a 503 with Retry-After
    # rather than queueing behind a saturated pool.
    db_pool_timeout_seconds: float = 5.0
    # PostgreSQL that has not answered a query, or a new connection, in this long (a frozen
    # server, a cut network) fails it with a 503 instead of hanging the request: asyncpg waits
    # forever for a query and 60 s for a connection by default. It bounds every statement, so
    # raise it for `herald migrate` on a large table, or for very large retention batches.
    db_query_timeout_seconds: float = 10.0
    shutdown_grace_seconds: float = 5.0
    log_level: str = "info"
    # "json" (one object per line) or "text"; unset: json in production, text in development.
    log_format: Literal["json", "text"] | None = None
    # `POST /api/dev/login` mints tokens for anyone who asks: the demo page signs in with it.
    # Unset means on in development, off in production (where turning it on is refused).
    dev_login: bool | None = None
    # Where users reach this node from outside, for links in emails (unsubscribe). Unset means
    # http://HERALD_HOST:HERALD_PORT, right for development only.
    public_url: str | None = None
    # Channels: each is off until configured, except webhooks, which users register themselves.
    smtp_url: str | None = None
    email_from: str = "Herald <herald@localhost>"
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:herald@localhost"
    dev_vapid_file: str = "./.herald-dev-vapid"
    sms_url: str | None = None
    # A provider that has not answered in this long is tried again later.
    provider_timeout_seconds: float = 10.0
    # Webhook and push targets on loopback, private or link-local addresses are refused unless
    # this is on: otherwise any user could make Herald call into its own network (SSRF).
    allow_private_targets: bool = False
    # Seconds before each retry of a failed delivery; one attempt more than there are delays.
    delivery_backoff: tuple[float, ...] = (1.0, 5.0, 30.0, 300.0)
    # A job a worker took and has not acked in this long is taken over by another worker.
    job_visibility_seconds: float = 60.0
    # Deliveries one worker process sends at once.
    worker_concurrency: int = 16
    # How often a worker looks for deliveries that have come due (retries, quiet hours, ...).
    dispatch_interval: float = 0.5
    # A template gets this long and this much memory (beyond what its process starts with) to
    # render, in a process of its own; past either it is refused with a 422.
    template_timeout_seconds: float = 2.0
    template_memory_mb: int = 256
    # Notifications older than this many days are deleted (unset: kept forever); every node
    # deletes them hourly, and `herald retention` does it on demand.
    retention_days: int | None = None
    # Rows deleted per transaction, so retention never holds long locks.
    retention_batch: int = 5_000
    # `herald serve` runs the delivery workers itself. Unset means: when REDIS_URL is unset
    # (the embedded default); with Redis, run `herald worker` processes instead.
    in_process_worker: bool | None = None

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def dev_login_enabled(self) -> bool:
        return not self.production if self.dev_login is None else self.dev_login

    @property
    def log_style(self) -> Literal["json", "text"]:
        if self.log_format is None:
            return "json" if self.production else "text"
        return self.log_format

    @property
    def runs_worker_in_process(self) -> bool:
        if self.in_process_worker is None:
            return self.redis_url is None
        return self.in_process_worker

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _cast_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _cast_seconds_list(raw: str) -> tuple[float, ...]:
    delays = tuple(float(part) for part in raw.split(",") if part.strip())
    if not delays or any(not 0 <= delay <= 86_400 for delay in delays):
        raise ValueError(f"expected comma-separated seconds from 0 to 86400, got {raw!r}")
    return delays


def _cast_origins(raw: str) -> tuple[str, ...]:
    """Comma-separated `scheme://host[:port]` origins, or `*` for any."""
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https") or not parts.netloc or parts.path
        ):
            raise ValueError(f"expected origins like https://app.example.com, got {origin!r}")
    return origins


def _cast_log_format(raw: str) -> Literal["json", "text"]:
    if raw == "json":
        return "json"
    if raw == "text":
        return "text"
    raise ValueError(f"expected json or text, got {raw!r}")


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
    "HERALD_PUBLISH_RATE": ("publish_rate", float),
    "HERALD_PUBLISH_BURST": ("publish_burst", int),
    "HERALD_RECIPIENT_RATE": ("recipient_rate", float),
    "HERALD_RECIPIENT_BURST": ("recipient_burst", int),
    "HERALD_MAX_STREAMS_PER_USER": ("max_streams_per_user", int),
    "HERALD_MAX_TOPICS_PER_USER": ("max_topics_per_user", int),
    "HERALD_CORS_ORIGINS": ("cors_origins", _cast_origins),
    "HERALD_SCHEDULER_INTERVAL": ("scheduler_interval", float),
    "HERALD_IDEMPOTENCY_TTL_SECONDS": ("idempotency_ttl_seconds", int),
    "HERALD_MIGRATE_ON_START": ("migrate_on_start", _cast_bool),
    "HERALD_DB_POOL_SIZE": ("db_pool_size", int),
    "HERALD_DB_POOL_TIMEOUT_SECONDS": ("db_pool_timeout_seconds", float),
    "HERALD_DB_QUERY_TIMEOUT_SECONDS": ("db_query_timeout_seconds", float),
    "HERALD_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", float),
    "HERALD_LOG_LEVEL": ("log_level", str),
    "HERALD_LOG_FORMAT": ("log_format", _cast_log_format),
    "HERALD_DEV_LOGIN": ("dev_login", _cast_bool),
    "HERALD_PUBLIC_URL": ("public_url", str),
    "HERALD_SMTP_URL": ("smtp_url", str),
    "HERALD_EMAIL_FROM": ("email_from", str),
    "HERALD_VAPID_PRIVATE_KEY": ("vapid_private_key", str),
    "HERALD_VAPID_SUBJECT": ("vapid_subject", str),
    "HERALD_DEV_VAPID_FILE": ("dev_vapid_file", str),
    "HERALD_SMS_URL": ("sms_url", str),
    "HERALD_PROVIDER_TIMEOUT_SECONDS": ("provider_timeout_seconds", float),
    "HERALD_ALLOW_PRIVATE_TARGETS": ("allow_private_targets", _cast_bool),
    "HERALD_DELIVERY_BACKOFF": ("delivery_backoff", _cast_seconds_list),
    "HERALD_JOB_VISIBILITY_SECONDS": ("job_visibility_seconds", float),
    "HERALD_WORKER_CONCURRENCY": ("worker_concurrency", int),
    "HERALD_DISPATCH_INTERVAL": ("dispatch_interval", float),
    "HERALD_IN_PROCESS_WORKER": ("in_process_worker", _cast_bool),
    "HERALD_TEMPLATE_TIMEOUT_SECONDS": ("template_timeout_seconds", float),
    "HERALD_TEMPLATE_MEMORY_MB": ("template_memory_mb", int),
    "HERALD_RETENTION_DAYS": ("retention_days", int),
    "HERALD_RETENTION_BATCH": ("retention_batch", int),
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
    _validate_channels(settings)
    if settings.retention_days is not None and settings.retention_days < 1:
        raise ConfigError("HERALD_RETENTION_DAYS must be at least 1 (unset keeps everything)")
    limits = (
        settings.publish_rate,
        settings.recipient_rate,
        settings.publish_burst,
        settings.recipient_burst,
    )
    if min(limits) < 0 or settings.max_streams_per_user < 1 or settings.max_topics_per_user < 1:
        raise ConfigError(
            "rates and bursts must be 0 (no limit) or positive, and the stream and topic"
            " limits at least 1"
        )
    if settings.retention_batch < 1:
        raise ConfigError("HERALD_RETENTION_BATCH must be at least 1")
    _validate_database(settings)


def _validate_database(settings: Settings) -> None:
    for name, seconds in (
        ("HERALD_DB_POOL_TIMEOUT_SECONDS", settings.db_pool_timeout_seconds),
        ("HERALD_DB_QUERY_TIMEOUT_SECONDS", settings.db_query_timeout_seconds),
    ):
        if not 0 < seconds <= 3600:
            raise ConfigError(
                f"{name} must be above 0 and at most 3600: 0 would fail every request, and"
                " a bound of hours is no bound"
            )


def _validate_channels(settings: Settings) -> None:
    for name, url, schemes in (
        ("HERALD_SMTP_URL", settings.smtp_url, ("smtp", "smtps")),
        ("HERALD_SMS_URL", settings.sms_url, ("twilio", "twilio+http")),
        ("HERALD_PUBLIC_URL", settings.public_url, ("http", "https")),
    ):
        if url is not None and urlsplit(url).scheme not in schemes:
            raise ConfigError(f"{name}: expected {' or '.join(schemes)}://…, got {redact(url)}")
    if not 0 < settings.provider_timeout_seconds < settings.job_visibility_seconds:
        raise ConfigError(
            "HERALD_PROVIDER_TIMEOUT_SECONDS must be positive and below"
            " HERALD_JOB_VISIBILITY_SECONDS, or a slow provider would hand its job to a second"
            " worker while the first is still sending it"
        )
    if settings.worker_concurrency < 1 or settings.dispatch_interval <= 0:
        raise ConfigError("HERALD_WORKER_CONCURRENCY and HERALD_DISPATCH_INTERVAL must be positive")


# The order of the P-256 group: a VAPID private key is a number from 1 to P256_ORDER - 1.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def with_dev_vapid_key(settings: Settings) -> Settings:
    """Fill in a development VAPID key (raw, base64url), creating its file on first use, so
    browsers that subscribed keep working across restarts. Production gets none: Web Push
    stays off until HERALD_VAPID_PRIVATE_KEY is set."""
    if settings.vapid_private_key or settings.production:
        return settings
    path = Path(settings.dev_vapid_file)
    if not path.exists():
        scalar = 0
        while not 0 < scalar < P256_ORDER:
            scalar = int.from_bytes(secrets.token_bytes(32), "big")
        raw = base64.urlsafe_b64encode(scalar.to_bytes(32, "big")).rstrip(b"=").decode()
        path.touch(mode=0o600)
        path.write_text(raw + "\n")
    return replace(settings, vapid_private_key=path.read_text().strip())


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
