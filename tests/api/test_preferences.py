"""GET|PUT /api/preferences and GET /api/channels: a user's own delivery choices, each field
round-tripped, every bad value refused without touching what was stored, and nobody's
choices visible to anyone else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

DEFAULTS = {
    "muted": False,
    "timezone": "UTC",
    "locale": None,
    "quiet_hours": None,
    "digest": {"frequency": "off", "at": "08:00"},
    "channels": {},
    "types": {},
}
# Every field away from its default.
CHOSEN = {
    "muted": True,
    "timezone": "America/St_Johns",
    "locale": "fr-CA",
    "quiet_hours": {"start": "22:30", "end": "07:15:30"},
    "digest": {"frequency": "daily", "at": "18:45:10"},
    "channels": {"email": True, "sms": False, "in_app": True},
    "types": {
        "build.failed": {"push": False, "webhook": True},
        "billing:invoice": {"email": False, "sms": True, "in_app": False},
    },
}


async def preferences_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(client, "/api/preferences", headers)
    return found


async def choose(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.put("/api/preferences", headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answered: dict[str, Any] = response.json()
    return answered


# --- the happy path ------------------------------------------------------------------------


async def test_a_user_without_choices_gets_the_defaults(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    assert await preferences_of(client, alice) == DEFAULTS


async def test_every_field_round_trips(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    assert await choose(client, alice, CHOSEN) == CHOSEN
    assert await preferences_of(client, alice) == CHOSEN


async def test_a_put_replaces_every_choice_rather_than_merging(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await choose(client, alice, CHOSEN)
    smaller = {"types": {"build.failed": {"email": True}}}
    assert await choose(client, alice, smaller) == {**DEFAULTS, **smaller}
    assert await preferences_of(client, alice) == {**DEFAULTS, **smaller}
    assert await choose(client, alice, {}) == DEFAULTS
    assert await preferences_of(client, alice) == DEFAULTS


@pytest.mark.parametrize(
    ("start", "end", "served"),
    [
        ("22:00", "07:00", ("22:00", "07:00")),
        ("00:00", "23:59", ("00:00", "23:59")),
        ("23:59:59", "00:00:01", ("23:59:59", "00:00:01")),
        # Whole minutes are served as HH:MM, whichever way they were written.
        ("22:00:00", "06:30:00", ("22:00", "06:30")),
        ("09:00", "17:00:30", ("09:00", "17:00:30")),
    ],
)
async def test_quiet_hours_accept_hh_mm_and_hh_mm_ss_and_may_wrap_midnight(
    client: httpx.AsyncClient, alice: dict[str, str], start: str, end: str, served: tuple[str, str]
) -> None:
    body = {"timezone": "Europe/Paris", "quiet_hours": {"start": start, "end": end}}
    expected = {**DEFAULTS, **body, "quiet_hours": {"start": served[0], "end": served[1]}}
    assert await choose(client, alice, body) == expected
    assert await preferences_of(client, alice) == expected


@pytest.mark.parametrize("frequency", ["off", "hourly", "daily"])
async def test_each_digest_frequency_round_trips(
    client: httpx.AsyncClient, alice: dict[str, str], frequency: str
) -> None:
    body = {"digest": {"frequency": frequency, "at": "06:05"}}
    assert await choose(client, alice, body) == {**DEFAULTS, **body}
    assert (await preferences_of(client, alice))["digest"] == body["digest"]


async def test_a_type_with_no_switches_is_not_kept(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    body = {"types": {"build": {}, "deploy": {"push": False}}}
    expected = {**DEFAULTS, "types": {"deploy": {"push": False}}}
    assert await choose(client, alice, body) == expected
    assert await preferences_of(client, alice) == expected


# --- isolation -----------------------------------------------------------------------------


async def test_a_user_never_sees_or_changes_another_users_preferences(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    await choose(client, alice, CHOSEN)
    assert await preferences_of(client, bob) == DEFAULTS
    bobs = {"muted": True, "channels": {"push": False}}
    await choose(client, bob, bobs)
    assert await preferences_of(client, alice) == CHOSEN
    assert await preferences_of(client, bob) == {**DEFAULTS, **bobs}


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_preferences_need_a_token(
    client: httpx.AsyncClient, alice: dict[str, str], method: str
) -> None:
    await choose(client, alice, CHOSEN)
    response = await client.request(method, "/api/preferences", json=DEFAULTS)
    assert_problem(response, 401, "unauthenticated")
    assert await preferences_of(client, alice) == CHOSEN


# --- refusals ------------------------------------------------------------------------------


INVALID = {
    "unknown-zone": {"timezone": "Mars/Olympus_Mons"},
    "zone-path": {"timezone": "../../../etc/passwd"},
    "zone-nul": {"timezone": "Europe/Paris\u0000"},
    "empty-zone": {"timezone": ""},
    "start-equals-end": {"quiet_hours": {"start": "22:00", "end": "22:00"}},
    "start-equals-end-with-seconds": {"quiet_hours": {"start": "22:00", "end": "22:00:00"}},
    "hour-24": {"quiet_hours": {"start": "24:00", "end": "07:00"}},
    "one-digit-hour": {"quiet_hours": {"start": "7:00", "end": "08:00"}},
    "minute-60": {"quiet_hours": {"start": "22:60", "end": "07:00"}},
    "second-60": {"quiet_hours": {"start": "22:00:60", "end": "07:00"}},
    "am-pm": {"quiet_hours": {"start": "10pm", "end": "07:00"}},
    "trailing-newline": {"quiet_hours": {"start": "22:00\n", "end": "07:00"}},
    "missing-end": {"quiet_hours": {"start": "22:00"}},
    "digest-clock": {"digest": {"frequency": "daily", "at": "8 o'clock"}},
    "digest-frequency": {"digest": {"frequency": "weekly"}},
    "unknown-channel": {"channels": {"carrier_pigeon": True}},
    "unknown-channel-for-a-type": {"types": {"build": {"fax": True}}},
    "switch-not-bool": {"channels": {"email": "yes"}},
    "bad-type-name": {"types": {"build failed": {"email": True}}},
    "every-type-as-a-type": {"types": {"*": {"email": True}}},
    "bad-locale": {"locale": "english please"},
    "muted-not-bool": {"muted": "true"},
}


@pytest.mark.parametrize("case", INVALID.keys())
async def test_an_invalid_value_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], case: str
) -> None:
    await choose(client, alice, CHOSEN)
    response = await client.put("/api/preferences", headers=alice, json=INVALID[case])
    assert_problem(response, 422, "validation-failed")
    assert await preferences_of(client, alice) == CHOSEN


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], kind: str
) -> None:
    await choose(client, alice, CHOSEN)
    case = malformed(kind, {**CHOSEN, "muted": False})
    response = await send_malformed(client, "PUT", "/api/preferences", alice, case)
    assert_problem(response, case.status, case.slug)
    assert await preferences_of(client, alice) == CHOSEN


# --- GET /api/channels ---------------------------------------------------------------------


async def test_channels_show_what_this_node_sends_on_and_nothing_of_push_without_a_key(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    assert await get_json(client, "/api/channels", alice) == {
        "available": ["in_app", "webhook"],
        "contact": {"email": None, "phone": None},
        "push_public_key": None,
        "defaults": {},
    }


async def test_channels_show_the_callers_own_contact_and_the_admins_defaults(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    admin: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    contact = {"email": "alice@example.com", "phone": "+15551230001"}
    put = await client.put("/api/contacts/alice", headers=publisher, json=contact)
    assert put.status_code == 201, put.text
    for kind, channels in (("build", {"email": True}), ("*", {"push": False}), ("quiet", {})):
        response = await client.put(
            f"/api/admin/types/{kind}", headers=admin, json={"channels": channels}
        )
        assert response.status_code == 201, response.text

    alices = await get_json(client, "/api/channels", alice)
    assert alices["contact"] == contact
    # A type with no switches has nothing to show a preferences page.
    assert alices["defaults"] == {"*": {"push": False}, "build": {"email": True}}
    bobs = await get_json(client, "/api/channels", bob)
    assert bobs["contact"] == {"email": None, "phone": None}
    assert bobs["defaults"] == alices["defaults"]
    assert_problem(await client.get("/api/channels"), 401, "unauthenticated")
