"""GET /api/admin/audit: every admin action that changed something leaves one entry (actor,
action, target, the request's id, what changed) and a log line carrying it; reads, refusals
and non-admin actions leave none.

The PostgreSQL database is shared by the session's tests, so each test looks only at entries
newer than the newest one when it began."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

PATH = "/api/admin/audit"
TEMPLATE = {"locales": {"en": {"in_app": {"title": "Hi {{ name }}"}}}}


async def entries(client: httpx.AsyncClient, admin: dict[str, str], **params: str) -> list[Any]:
    response = await client.get(PATH, headers=admin, params=params)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


@pytest.fixture
async def baseline(client: httpx.AsyncClient, admin: dict[str, str]) -> int:
    newest = await entries(client, admin, limit="1")
    return int(newest[0]["id"]) if newest else 0


async def newer(
    client: httpx.AsyncClient, admin: dict[str, str], baseline: int, **params: str
) -> list[Any]:
    return [
        entry for entry in await entries(client, admin, **params) if int(entry["id"]) > baseline
    ]


async def test_each_admin_change_is_recorded_newest_first_with_its_request_id(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    baseline: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str, Any, int]] = [
        ("PUT", "/api/templates/welcome", TEMPLATE, 201),
        ("PUT", "/api/admin/types/alert", {"channels": {"email": False}}, 201),
        ("DELETE", "/api/admin/types/alert", None, 204),
        ("POST", "/api/notifications", {"broadcast": True, "title": "maintenance"}, 202),
        ("POST", "/api/admin/users/bob/revoke-streams", None, 204),
        ("DELETE", "/api/templates/welcome", None, 204),
    ]
    with caplog.at_level(logging.INFO, logger="herald.audit"):
        for n, (method, path, body, status) in enumerate(calls):
            headers = {**admin, "X-Request-ID": f"audit-{n}"}
            answer = await client.request(method, path, headers=headers, json=body)
            assert answer.status_code == status, answer.text

    found = await newer(client, admin, baseline)
    assert [(entry["action"], entry["target"]) for entry in found] == [
        ("template.delete", "welcome"),
        ("streams.revoke", "bob"),
        ("notification.broadcast", found[2]["target"]),
        ("type_defaults.delete", "alert"),
        ("type_defaults.put", "alert"),
        ("template.put", "welcome"),
    ]
    assert [entry["request_id"] for entry in found] == [f"audit-{n}" for n in (5, 4, 3, 2, 1, 0)]
    assert {entry["actor"] for entry in found} == {"ops"}
    assert found[-1]["detail"] == {"version": 1}
    assert found[-2]["detail"]["channels"] == {"email": False}
    logged = [record.audit for record in caplog.records if hasattr(record, "audit")]
    assert [entry["action"] for entry in logged] == [entry["action"] for entry in reversed(found)]


async def test_reads_refusals_and_other_users_actions_leave_no_entry(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    alice: dict[str, str],
    publisher: dict[str, str],
    baseline: int,
) -> None:
    await client.get("/api/templates", headers=admin)
    await client.put("/api/templates/bad", headers=admin, json={"locales": {}, "x": 1})
    await client.delete("/api/templates/missing", headers=admin)
    await client.post(
        "/api/notifications", headers=publisher, json={"recipients": ["a"], "title": "t"}
    )
    await client.post("/api/stream/revoke", headers=alice)
    await client.post("/api/webhooks", headers=alice, json={"url": "https://8.8.8.8/hook"})

    assert await newer(client, admin, baseline) == []


async def test_pages_back_and_filters_by_action(
    client: httpx.AsyncClient, admin: dict[str, str], baseline: int
) -> None:
    for user in ("u1", "u2", "u3"):
        answer = await client.post(f"/api/admin/users/{user}/revoke-streams", headers=admin)
        assert answer.status_code == 204, answer.text
    await client.put("/api/templates/welcome", headers=admin, json=TEMPLATE)

    first = (await client.get(PATH, headers=admin, params={"limit": "2"})).json()
    assert [entry["target"] for entry in first["items"]] == ["welcome", "u3"]
    rest = await newer(client, admin, baseline, before=first["next_cursor"])
    assert [entry["target"] for entry in rest] == ["u2", "u1"]
    revokes = await newer(client, admin, baseline, action="streams.revoke")
    assert [entry["target"] for entry in revokes] == ["u3", "u2", "u1"]


async def test_the_audit_log_needs_the_admin_scope(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    assert_problem(await client.get(PATH, headers=alice), 403, "forbidden")
    assert_problem(await client.get(PATH), 401, "unauthenticated")
    publisher = auth(settings, "svc", "notifications:publish")
    assert_problem(await client.get(PATH, headers=publisher), 403, "forbidden")


@pytest.mark.parametrize(
    "params",
    [
        ({"action": "template.put\n"}, "invalid-parameter"),
        ({"action": "drop table"}, "invalid-parameter"),
        ({"limit": "0"}, "invalid-parameter"),
        ({"before": "x"}, "invalid-cursor"),
    ],
    ids=["action-newline", "action-shape", "limit", "before"],
)
async def test_a_malformed_query_is_a_400(
    client: httpx.AsyncClient, admin: dict[str, str], params: tuple[dict[str, str], str]
) -> None:
    query, slug = params
    assert_problem(await client.get(PATH, headers=admin, params=query), 400, slug)
