"""Settings (app/config.py): defaults without environment, every variable parsed, loud failures
that name the variable, and secrets never echoed."""

from __future__ import annotations

import dataclasses
import stat
import typing
from pathlib import Path

import pytest

from herald_server.bus import open_bus
from herald_server.config import ConfigError, Settings, from_env, redact, with_dev_secret
from herald_server.store import open_store

LONG_SECRET = "s" * 32
# Variables whose names do not follow HERALD_<FIELD> (fixed names, e.g. DATABASE_URL).
FIXED_NAMES = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "environment": "HERALD_ENV",
}
# A valid value for the fields a generic string would not suit.
VALID_TEXT = {
    "database_url": "postgresql://herald@db.internal/herald",
    "redis_url": "redis://cache:6379/0",
    "environment": "production",
    "jwt_secret": LONG_SECRET,
    "public_url": "https://herald.example.com",
    "smtp_url": "smtp://mailer:secret@smtp.example.com:587?starttls=true",
    "sms_url": "twilio://AC123:token@api.twilio.com/?from=%2B15550001111",
    "jwks_url": "https://idp.example.com/.well-known/jwks.json",
    "log_level": "debug",
    "email_from": "Alerts <alerts@example.com>",
    "vapid_subject": "https://example.com/contact",
}
# Fields whose default is what the generic value for their type would give.
VALID_PARSED: dict[str, tuple[str, object]] = {
    "allow_private_targets": ("true", True),
    "insecure_dev_login_from_network": ("true", True),
    # Numbers whose range leaves out the generic 42.
    "redis_stream_maxlen": ("5000", 5000),
    "sse_retry_ms": ("500", 500),
    "max_body_bytes": ("65536", 65536),
    "max_notification_bytes": ("4096", 4096),
    "max_request_head_bytes": ("8192", 8192),
    "idempotency_ttl_seconds": ("3600", 3600),
    "cors_origins": (
        "https://app.example.com, http://localhost:3000/",
        ("https://app.example.com", "http://localhost:3000"),
    ),
    "log_format": ("json", "json"),
}
# Production needs a secret to start at all; a job's visibility must outlast a provider's timeout;
# one user's share of the delivery slots must fit in them.
COMPANIONS = {
    "environment": {"HERALD_JWT_SECRET": LONG_SECRET},
    "job_visibility_seconds": {"HERALD_PROVIDER_TIMEOUT_SECONDS": "1"},
    "max_deliveries_in_flight_per_user": {"HERALD_WORKER_CONCURRENCY": "64"},
}
VALID_BY_TYPE: dict[object, tuple[str, object]] = {
    int: ("42", 42),
    int | None: ("42", 42),
    float: ("2.5", 2.5),
    bool: ("false", False),
    bool | None: ("false", False),
    str: ("some-value", "some-value"),
    str | None: ("some-value", "some-value"),
    tuple[float, ...]: ("0.5, 2,10", (0.5, 2.0, 10.0)),
}
INVALID_BY_TYPE: dict[object, list[str]] = {
    int: ["forty-two", "2.5"],
    int | None: ["forty-two"],
    float: ["fast"],
    bool: ["maybe"],
    bool | None: ["maybe"],
    tuple[float, ...]: [",", "1,soon", "-1", "90000"],
    typing.Literal["json", "text"] | None: ["xml", "JSON"],
    tuple[str, ...]: ["app.example.com", "ftp://files.example.com", "https://a.example.com/path"],
}
HINTS = typing.get_type_hints(Settings)
FIELDS = [field.name for field in dataclasses.fields(Settings)]


def variable(field: str) -> str:
    return FIXED_NAMES.get(field, f"HERALD_{field.upper()}")


def test_defaults_need_no_environment() -> None:
    settings = from_env({})

    assert settings == Settings()
    assert settings.database_url == "sqlite:///./herald.db"
    assert settings.redis_url is None
    assert not settings.production


@pytest.mark.parametrize("field", FIELDS)
def test_every_setting_is_read_from_its_variable(field: str) -> None:
    raw, expected = (
        (VALID_TEXT[field], VALID_TEXT[field])
        if field in VALID_TEXT
        else VALID_PARSED.get(field) or VALID_BY_TYPE[HINTS[field]]
    )

    settings = from_env({variable(field): raw, **COMPANIONS.get(field, {})})

    assert getattr(settings, field) == expected
    assert getattr(settings, field) != getattr(Settings(), field)


@pytest.mark.parametrize(
    ("field", "raw"),
    [(field, raw) for field in FIELDS for raw in INVALID_BY_TYPE.get(HINTS[field], [])]
    + [("environment", "staging")],
)
def test_a_malformed_value_names_its_variable(field: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable(field)):
        from_env({variable(field): raw})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("on", True),
     ("0", False), ("False", False), ("no", False), (" off ", False)],
)  # fmt: skip
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert from_env({"HERALD_MIGRATE_ON_START": raw}).migrate_on_start is expected


def test_an_empty_variable_means_the_default() -> None:
    assert from_env({"HERALD_PORT": "", "DATABASE_URL": ""}) == Settings()


def test_an_unsupported_database_scheme_is_refused_with_the_password_redacted() -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"DATABASE_URL": "mysql://herald:hunter2@db.internal/herald"})

    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "mysql" in message
    assert "hunter2" not in message
    assert "herald:***@db.internal" in message


def test_an_unsupported_redis_scheme_is_refused_with_the_password_redacted() -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"REDIS_URL": "amqp://guest:hunter2@mq.internal/"})

    assert "REDIS_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_backend_factories_redact_passwords_too() -> None:
    with pytest.raises(ConfigError) as store_error:
        open_store(Settings(database_url="mysql://herald:hunter2@db.internal/herald"))
    with pytest.raises(ConfigError) as bus_error:
        open_bus("amqp://guest:hunter2@mq.internal/")

    for error in (store_error.value, bus_error.value):
        assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://herald:hunter2@db/herald", "postgresql://herald:***@db/herald"),
        ("postgresql://herald:p%40ss@db:5432/herald", "postgresql://herald:***@db:5432/herald"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://herald@db/herald", "postgresql://herald@db/herald"),
        ("sqlite:///./herald.db", "sqlite:///./herald.db"),
    ],
)
def test_redact_hides_only_the_password(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_production_without_a_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="HERALD_JWT_SECRET"):
        from_env({"HERALD_ENV": "production"})


def test_production_with_a_secret_is_accepted() -> None:
    settings = from_env({"HERALD_ENV": "production", "HERALD_JWT_SECRET": LONG_SECRET})

    assert settings.production
    assert settings.jwt_secret == LONG_SECRET


@pytest.mark.parametrize(("ttl", "notice"), [("60", "60"), ("60", "90"), ("60", "0")])
def test_a_stream_token_notice_not_below_its_lifetime_is_refused(ttl: str, notice: str) -> None:
    environ = {"HERALD_STREAM_TOKEN_TTL": ttl, "HERALD_STREAM_TOKEN_NOTICE": notice}
    with pytest.raises(ConfigError, match="HERALD_STREAM_TOKEN_NOTICE"):
        from_env(environ)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="HERALD_JWT_SECRET"):
        from_env({"HERALD_JWT_SECRET": "s" * 31})


def test_the_dev_secret_is_created_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "dev-secret"
    settings = Settings(dev_secret_file=str(path))

    first, generated = with_dev_secret(settings)
    second, generated_again = with_dev_secret(settings)

    assert generated
    assert not generated_again
    assert first.jwt_secret is not None
    assert len(first.jwt_secret) >= 32
    assert second.jwt_secret == first.jwt_secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.jwt_secret


def test_an_explicit_secret_leaves_the_dev_secret_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "dev-secret"
    settings = Settings(jwt_secret=LONG_SECRET, dev_secret_file=str(path))

    assert with_dev_secret(settings) == (settings, False)
    assert not path.exists()


@pytest.mark.parametrize("raw", ["0", "65536", "8000"])
def test_a_metrics_port_that_is_no_port_or_the_api_port_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_METRICS_PORT"):
        from_env({"HERALD_METRICS_PORT": raw, "HERALD_PORT": "8000"})


@pytest.mark.parametrize(
    "environ",
    [
        {"HERALD_MAX_WEBHOOKS_PER_USER": "0"},
        {"HERALD_MAX_PUSH_SUBSCRIPTIONS_PER_USER": "1001"},
        {"HERALD_MAX_DELIVERIES_IN_FLIGHT_PER_USER": "0"},
        {"HERALD_MAX_DELIVERIES_IN_FLIGHT_PER_USER": "17", "HERALD_WORKER_CONCURRENCY": "16"},
    ],
    ids=["no-webhooks", "push-subscriptions-past-1000", "no-share", "share-past-the-workers"],
)
def test_per_user_delivery_limits_out_of_range_are_refused_naming_the_variable(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match=next(iter(environ))):
        from_env(environ)
