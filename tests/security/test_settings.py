"""Hole 12: settings that were accepted but nonsense (streams spinning on a negative heartbeat,
another port bound, every resume reset), or that ended in a traceback. Each is refused at start
with one line naming its variable; a misspelt variable is warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald_server.config import _RANGES, _VARIABLES, ConfigError, from_env, unknown_variables
from tests.helpers import free_port
from tests.test_cli import herald

ROOT = Path(__file__).resolve().parents[2]
SECRET = "settings-test-secret-" + "w" * 32
PRODUCTION = {"HERALD_ENV": "production", "HERALD_JWT_SECRET": SECRET}
# Settings the issue found accepted, and combinations that cannot work: each refused, naming
# the variable to fix.
NONSENSE = [
    ({"HERALD_HEARTBEAT_SECONDS": "-5"}, "HERALD_HEARTBEAT_SECONDS"),
    ({"HERALD_PORT": "99999"}, "HERALD_PORT"),
    ({"HERALD_REPLAY_LIMIT": "-1"}, "HERALD_REPLAY_LIMIT"),
    ({"HERALD_LOG_LEVEL": "verbose"}, "HERALD_LOG_LEVEL"),
    ({"HERALD_SSE_RETRY_MS": "0"}, "HERALD_SSE_RETRY_MS"),
    ({"HERALD_SCHEDULER_INTERVAL": "0"}, "HERALD_SCHEDULER_INTERVAL"),
    ({"HERALD_SEND_TIMEOUT_SECONDS": "nan"}, "HERALD_SEND_TIMEOUT_SECONDS"),
    ({"HERALD_JWT_LEEWAY": "100000000"}, "HERALD_JWT_LEEWAY"),
    ({"HERALD_HOST": "not a host"}, "HERALD_HOST"),
    ({"HERALD_REDIS_PREFIX": "two words"}, "HERALD_REDIS_PREFIX"),
    ({"HERALD_EMAIL_FROM": "nobody"}, "HERALD_EMAIL_FROM"),
    ({"HERALD_JWKS_URL": "idp.example.com/keys"}, "HERALD_JWKS_URL"),
    ({**PRODUCTION, "REDIS_URL": "redis://cache:6379/0"}, "REDIS_URL"),
    ({**PRODUCTION, "HERALD_SMTP_URL": "smtp://mail.example.com"}, "HERALD_PUBLIC_URL"),
]


# A job's visibility must outlast the provider's timeout, whatever either's own value.
COMPANIONS = {
    "job_visibility_seconds": {"HERALD_PROVIDER_TIMEOUT_SECONDS": "0.1"},
    "provider_timeout_seconds": {"HERALD_JOB_VISIBILITY_SECONDS": "86400"},
    "max_deliveries_in_flight_per_user": {"HERALD_WORKER_CONCURRENCY": "10000"},
}


def ids(cases: list[tuple[dict[str, str], str]]) -> list[str]:
    return [" ".join(f"{k}={v}" for k, v in env.items() if k not in PRODUCTION) for env, _ in cases]


@pytest.mark.parametrize(("environ", "variable"), NONSENSE, ids=ids(NONSENSE))
def test_a_nonsense_setting_is_refused_in_one_line_naming_it(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable) as refused:
        from_env(environ)

    assert len(str(refused.value).splitlines()) == 1


@pytest.mark.parametrize(("field", "bounds"), sorted(_RANGES.items()))
def test_every_number_has_a_range_and_both_sides_are_refused(
    field: str, bounds: tuple[float, float]
) -> None:
    low, high = bounds
    variable = _VARIABLES[field]
    companion = COMPANIONS.get(field, {})

    for outside in (low - 1, high * 2 + 1):
        with pytest.raises(ConfigError, match=variable):
            from_env({variable: str(int(outside)), **companion})
    assert from_env({variable: str(int(high)), **companion})


def test_production_with_email_and_a_public_url_is_accepted() -> None:
    settings = from_env(
        {
            **PRODUCTION,
            "HERALD_SMTP_URL": "smtp://mail.example.com",
            "HERALD_PUBLIC_URL": "https://herald.example.com",
        }
    )

    assert settings.base_url == "https://herald.example.com"


def test_a_misspelt_variable_is_named_with_the_setting_it_likely_meant() -> None:
    warnings = unknown_variables(
        {
            "HERALD_HEARTBEAT_SECOND": "5",
            "HERALD_NOTHING_LIKE_IT": "1",
            "HERALD_PORT": "8000",
            "HERALD_HEALTHCHECK_URL": "http://127.0.0.1:8000/healthz",
            "PATH": "/usr/bin",
        }
    )

    assert warnings == [
        "HERALD_HEARTBEAT_SECOND is not a Herald setting and is ignored;"
        " did you mean HERALD_HEARTBEAT_SECONDS?",
        "HERALD_NOTHING_LIKE_IT is not a Herald setting and is ignored",
    ]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path}/herald.db",
        "HERALD_JWT_SECRET": SECRET,
    }


AT_START = [
    *NONSENSE[:4],
    ({"HERALD_SMTP_URL": "smtp://mail.example.com?tls=yes"}, "HERALD_SMTP_URL"),
    (
        {"HERALD_VAPID_PRIVATE_KEY": "-----BEGIN EC PRIVATE KEY-----MHcCAQEEI"},
        "HERALD_VAPID_PRIVATE_KEY",
    ),
    ({"DATABASE_URL": f"postgresql://herald:pw@127.0.0.1:{free_port()}/herald"}, "DATABASE_URL"),
    ({"DATABASE_URL": "sqlite:////no/such/directory/herald.db"}, "DATABASE_URL"),
    NONSENSE[-2],
]


@pytest.mark.parametrize(("setting", "variable"), AT_START, ids=ids(AT_START))
def test_serve_with_a_bad_setting_exits_with_one_line_naming_it(
    env: dict[str, str], tmp_path: Path, setting: dict[str, str], variable: str
) -> None:
    result = herald("serve", "--port", str(free_port()), env={**env, **setting}, cwd=tmp_path)

    assert result.returncode != 0
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert variable in result.stderr
    assert "pw@" not in result.stderr


def test_a_misspelt_variable_is_warned_about_by_the_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["HERALD_JWT_SECRETS"] = SECRET

    result = herald("token", "--sub", "alice", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "herald: warning: HERALD_JWT_SECRETS is not a Herald setting and is ignored;"
        " did you mean HERALD_JWT_SECRET?\n"
    )
