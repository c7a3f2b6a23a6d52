"""Every setting Herald reads, with its default, in one place.

The embedded default needs no environment at all: SQLite next to the working directory, an
in-process bus, and a development signing secret kept in a file so that `herald token` and
`herald serve` agree on it. Production (`HERALD_ENV=production`) refuses to start without a
real secret instead of inventing one.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from herald_server.codec import MAX_DEPTH

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
    # A request's line and headers together, in bytes: a JWT with generous claims fits; a
    # longer head is refused with 431 (httptools alone would buffer a head of any size).
    max_request_head_bytes: int = 32 * 1024
    # A client has this long, from connecting (or its previous response), to send a request's
    # line and headers, then this long for its body; past either it gets a 408 and the
    # connection is closed, so trickling bytes (slowloris) cannot hold sockets for ever.
    request_head_timeout_seconds: float = 10.0
    request_body_timeout_seconds: float = 30.0
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
    # Each webhook or push subscription is one more request per notification to its user, so
    # these bound what one publish can make Herald send; past them a registration is a 422.
    max_webhooks_per_user: int = 10
    max_push_subscriptions_per_user: int = 10
    # Deliveries of one user queued or being sent at once, across every worker: their slow or
    # dead endpoints hold at most this many of the workers' slots; the rest wait in the store.
    max_deliveries_in_flight_per_user: int = 4
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
    # Dev login answers only to loopback clients that no proxy relays; this lets anyone who
    # can reach the node mint any token, admin included (development only; refused otherwise).
    insecure_dev_login_from_network: bool = False
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
    # Serve /metrics and /metrics/cluster on this port (same address as the API) instead of
    # the API's port, so a proxy in front never exposes them. Unset: on the API's port.
    metrics_port: int | None = None
    # JSON request bodies and WebSocket frames nest at most this deep (422 beyond): decoders
    # recurse once per level, and a document stored near Python's limit failed every read.
    max_json_depth: int = 32
    # Frames a WebSocket client may send per second, with bursts on top; past them the socket
    # is closed (1008), so one client cannot queue up work for the node.
    ws_frame_rate: float = 20.0
    ws_frame_burst: int = 40

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
    "HERALD_MAX_REQUEST_HEAD_BYTES": ("max_request_head_bytes", int),
    "HERALD_REQUEST_HEAD_TIMEOUT_SECONDS": ("request_head_timeout_seconds", float),
    "HERALD_REQUEST_BODY_TIMEOUT_SECONDS": ("request_body_timeout_seconds", float),
    "HERALD_PUBLISH_RATE": ("publish_rate", float),
    "HERALD_PUBLISH_BURST": ("publish_burst", int),
    "HERALD_RECIPIENT_RATE": ("recipient_rate", float),
    "HERALD_RECIPIENT_BURST": ("recipient_burst", int),
    "HERALD_MAX_STREAMS_PER_USER": ("max_streams_per_user", int),
    "HERALD_MAX_TOPICS_PER_USER": ("max_topics_per_user", int),
    "HERALD_MAX_WEBHOOKS_PER_USER": ("max_webhooks_per_user", int),
    "HERALD_MAX_PUSH_SUBSCRIPTIONS_PER_USER": ("max_push_subscriptions_per_user", int),
    "HERALD_MAX_DELIVERIES_IN_FLIGHT_PER_USER": ("max_deliveries_in_flight_per_user", int),
    "HERALD_CORS_ORIGINS": ("cors_origins", _cast_origins),
    "HERALD_SCHEDULER_INTERVAL": ("scheduler_interval", float),
    "HERALD_IDEMPOTENCY_TTL_SECONDS": ("idempotency_ttl_seconds", int),
    "HERALD_MIGRATE_ON_START": ("migrate_on_start", _cast_bool),
    "HERALD_DB_POOL_SIZE": ("db_pool_size", int),
    "HERALD_DB_POOL_TIMEOUT_SECONDS": ("db_pool_timeout_seconds", float),
    "HERALD_DB_QUERY_TIMEOUT_SECONDS": ("db_query_timeout_seconds", float),
    "HERALD_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", float),
    "HERALD_LOG_LEVEL": ("log_level", str.lower),
    "HERALD_LOG_FORMAT": ("log_format", _cast_log_format),
    "HERALD_DEV_LOGIN": ("dev_login", _cast_bool),
    "HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK": ("insecure_dev_login_from_network", _cast_bool),
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
    "HERALD_METRICS_PORT": ("metrics_port", int),
    "HERALD_MAX_JSON_DEPTH": ("max_json_depth", int),
    "HERALD_WS_FRAME_RATE": ("ws_frame_rate", float),
    "HERALD_WS_FRAME_BURST": ("ws_frame_burst", int),
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


# HERALD_* variables read by Herald's tooling rather than as settings: the image's
# healthcheck, and the test suite's services.
OTHER_VARIABLES = frozenset(
    {"HERALD_HEALTHCHECK_URL", "HERALD_TEST_DATABASE_URL", "HERALD_TEST_REDIS_URL"}
)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each HERALD_* variable that no setting reads, naming the setting it most
    likely meant: a misspelt name silently leaves its setting at the default."""
    env = os.environ if environ is None else environ
    known = [*_ENV, *OTHER_VARIABLES]
    warnings = []
    for name in sorted(env):
        if name.startswith("HERALD_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{name} is not a Herald setting and is ignored{hint}")
    return warnings


def validate(settings: Settings) -> None:
    """Every setting in its range, and the combinations that cannot work refused, each with
    one line naming the variable: before anything starts, never as a traceback later."""
    _validate_urls(settings)
    _validate_production(settings)
    _validate_ranges(settings)
    _validate_text(settings)
    if not 0 < settings.stream_token_notice < settings.stream_token_ttl:
        raise ConfigError(
            "HERALD_STREAM_TOKEN_NOTICE must be positive and below HERALD_STREAM_TOKEN_TTL,"
            " or every stream would be told to renew as soon as it opens"
        )
    if settings.jwt_secret is not None and len(settings.jwt_secret) < 32:
        raise ConfigError("HERALD_JWT_SECRET must be at least 32 characters")
    if settings.max_deliveries_in_flight_per_user > settings.worker_concurrency:
        raise ConfigError(
            "HERALD_MAX_DELIVERIES_IN_FLIGHT_PER_USER must be at most HERALD_WORKER_CONCURRENCY,"
            " or one user's slow endpoints could hold every slot"
        )
    if settings.metrics_port is not None and settings.metrics_port == settings.port:
        raise ConfigError("HERALD_METRICS_PORT must differ from HERALD_PORT")
    if not settings.provider_timeout_seconds < settings.job_visibility_seconds:
        raise ConfigError(
            "HERALD_PROVIDER_TIMEOUT_SECONDS must be below HERALD_JOB_VISIBILITY_SECONDS, or a"
            " slow provider would hand its job to a second worker while the first still sends it"
        )


def _validate_urls(settings: Settings) -> None:
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
    for name, url, schemes in (
        ("HERALD_SMTP_URL", settings.smtp_url, ("smtp", "smtps")),
        ("HERALD_SMS_URL", settings.sms_url, ("twilio", "twilio+http")),
        ("HERALD_PUBLIC_URL", settings.public_url, ("http", "https")),
        ("HERALD_JWKS_URL", settings.jwks_url, ("http", "https")),
    ):
        if url is not None and (urlsplit(url).scheme not in schemes or not urlsplit(url).netloc):
            raise ConfigError(f"{name}: expected {' or '.join(schemes)}://…, got {redact(url)}")


def _validate_production(settings: Settings) -> None:
    if not settings.production:
        return
    if not settings.jwt_secret:
        raise ConfigError(
            "HERALD_JWT_SECRET is required when HERALD_ENV=production"
            " (it verifies HS256 tokens and signs stream tokens)"
        )
    if settings.dev_login:
        raise ConfigError("HERALD_DEV_LOGIN would let anyone mint tokens; not in production")
    if settings.insecure_dev_login_from_network:
        raise ConfigError(
            "HERALD_INSECURE_DEV_LOGIN_FROM_NETWORK would let anyone mint tokens; not in production"
        )
    if settings.redis_url is not None and settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "REDIS_URL with a SQLite DATABASE_URL: nodes sharing Redis would each keep their own"
            " SQLite file and split the data; use PostgreSQL, or drop REDIS_URL for one node"
        )
    if settings.smtp_url is not None and settings.public_url is None:
        raise ConfigError(
            "HERALD_PUBLIC_URL is required with HERALD_SMTP_URL in production: the links in"
            f" emails would point at {settings.base_url}"
        )


# Each number's range, inclusive. Each bound keeps a value from being nonsense: below it
# Herald would spin, refuse everything or lose data; above it a bound would be no bound.
_RANGES: dict[str, tuple[float, float]] = {
    "redis_stream_maxlen": (1_000, 100_000_000),  # fewer: a brief hiccup loses live events
    "jwt_leeway": (0, 300),  # more: an expired token would pass for minutes
    "jwks_cache_seconds": (1, 86_400),  # a day: a revoked key must stop working
    "port": (1, 65_535),  # TCP's ports
    "metrics_port": (1, 65_535),
    "stream_token_ttl": (10, 86_400),  # a token in a URL lives minutes, a day at most
    "replay_limit": (1, 1_000_000),  # 0 or less: every resume would be a reset
    "stream_buffer": (1, 100_000),  # per connection: more is memory one client pins
    "heartbeat_seconds": (1, 3_600),  # below 1 s streams spin; proxies cut idle ones at ~60 s
    "sse_retry_ms": (100, 3_600_000),  # below 100 ms clients hammer a node that restarts
    "send_timeout_seconds": (1, 3_600),  # a slow reader is cut within the hour
    "max_body_bytes": (1_024, 64 * 1024 * 1024),  # a publish must fit; more is a memory bomb
    "max_notification_bytes": (256, 16 * 1024 * 1024),  # a title must fit; a stream frame too
    "max_recipients": (1, 1_000_000),  # above: use a topic
    "max_request_head_bytes": (4_096, 1024 * 1024),  # a token must fit; a MiB is no bound
    "request_head_timeout_seconds": (1, 3_600),  # slow networks need a second; an hour at most
    "request_body_timeout_seconds": (1, 3_600),
    "publish_rate": (0, 1_000_000),  # 0: no limit
    "publish_burst": (0, 10_000_000),
    "recipient_rate": (0, 1_000_000),
    "recipient_burst": (0, 10_000_000),
    "max_streams_per_user": (1, 10_000),
    "max_topics_per_user": (1, 1_000_000),
    "max_webhooks_per_user": (1, 1_000),  # each is one more request per notification
    "max_push_subscriptions_per_user": (1, 1_000),
    "max_deliveries_in_flight_per_user": (1, 10_000),  # and at most the worker's concurrency
    "scheduler_interval": (0.01, 60),  # below 10 ms the node spins; above, sends are late
    "idempotency_ttl_seconds": (60, 30 * 86_400),  # retries come within minutes, not months
    "db_pool_size": (1, 1_000),  # PostgreSQL's own connection limit is in the hundreds
    "db_pool_timeout_seconds": (0.001, 3_600),  # 0 would fail every request; hours is no bound
    "db_query_timeout_seconds": (0.001, 3_600),
    "shutdown_grace_seconds": (0, 3_600),
    "provider_timeout_seconds": (0.1, 3_600),
    "job_visibility_seconds": (1, 86_400),
    "worker_concurrency": (1, 10_000),
    "dispatch_interval": (0.01, 60),  # as the scheduler's
    "template_timeout_seconds": (0.1, 60),  # a render is milliseconds; a minute is a loop
    "template_memory_mb": (16, 65_536),  # the interpreter alone needs some
    "retention_days": (1, 36_500),  # unset keeps everything
    "retention_batch": (1, 1_000_000),  # rows per transaction: more holds long locks
    "max_json_depth": (2, MAX_DEPTH),  # 2: a body holding one object; deeper broke decoders
    "ws_frame_rate": (0.01, 10_000),  # a socket must be able to send; no client needs more
    "ws_frame_burst": (1, 100_000),
}
_VARIABLES = {field_name: variable for variable, (field_name, _) in _ENV.items()}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")
_REDIS_PREFIX = re.compile(r"[!-~]{1,100}")


def _validate_ranges(settings: Settings) -> None:
    for field_name, (low, high) in _RANGES.items():
        value = getattr(settings, field_name)
        if value is not None and not low <= value <= high:
            raise ConfigError(
                f"{_VARIABLES[field_name]} must be from {low:.15g} to {high:.15g}, got {value:.15g}"
            )


def _validate_text(settings: Settings) -> None:
    checks = (
        ("HERALD_LOG_LEVEL", settings.log_level, settings.log_level in LOG_LEVELS,
         "one of " + ", ".join(LOG_LEVELS)),
        ("HERALD_HOST", settings.host,
         _is_ip(settings.host) or bool(_HOSTNAME.fullmatch(settings.host)),
         "an IP address or a host name"),
        ("HERALD_REDIS_PREFIX", settings.redis_prefix,
         bool(_REDIS_PREFIX.fullmatch(settings.redis_prefix)),
         "1-100 printable characters, no spaces"),
        ("HERALD_EMAIL_FROM", settings.email_from, "@" in parseaddr(settings.email_from)[1],
         "an address like Name <x@domain>"),
        # RFC 8292 asks for a contact URI, and Apple's push service refuses any other `sub`.
        ("HERALD_VAPID_SUBJECT", settings.vapid_subject,
         settings.vapid_subject.startswith(("mailto:", "https:")), "a mailto: or https: URI"),
        ("HERALD_DEV_SECRET_FILE", settings.dev_secret_file, bool(settings.dev_secret_file.strip()),
         "a file name"),
        ("HERALD_DEV_VAPID_FILE", settings.dev_vapid_file, bool(settings.dev_vapid_file.strip()),
         "a file name"),
    )  # fmt: skip
    for variable, value, valid, expected in checks:
        if not valid:
            raise ConfigError(f"{variable}: expected {expected}, got {value!r}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
