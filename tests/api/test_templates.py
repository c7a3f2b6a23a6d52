"""Templates, admin only: GET /api/templates, GET|PUT|DELETE /api/templates/{key} and
POST /api/templates/{key}/preview. Every field must compile to be stored; a preview renders as
a publish would; HTML is escaped and sanitized; the sandbox refuses what could reach Python's
internals or make the node allocate without bound."""

from __future__ import annotations

import secrets
import tracemalloc
from typing import Any

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.models import SCOPE_PUBLISH
from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.conftest import auth
from tests.helpers import assert_problem

pytestmark = pytest.mark.anyio

WELCOME: dict[str, Any] = {
    "description": "Sent when an account is created",
    "default_locale": "en",
    "locales": {
        "en": {
            "in_app": {"title": "Welcome, {{ name }}", "body": "You joined {{ team }}."},
            "email": {
                "subject": "Welcome to {{ team }}",
                "text": "Hello {{ name }},\nwelcome to {{ team }}.",
                "html": "<p>Hello <b>{{ name }}</b>, welcome to {{ team }}.</p>",
            },
            "push": {"title": "Welcome", "body": "{{ team }} is waiting"},
            "sms": {"text": "Welcome to {{ team }}, {{ name }}"},
        },
        "fr": {"in_app": {"title": "Bienvenue, {{ name }}"}},
    },
}
VARS = {"name": "Alice", "team": "Ops"}


def template_with(**in_app: str) -> dict[str, Any]:
    return {"locales": {"en": {"in_app": in_app}}}


async def put(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    key: str,
    document: dict[str, Any],
    status: int,
) -> dict[str, Any]:
    response = await client.put(f"/api/templates/{key}", headers=headers, json=document)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    stored: dict[str, Any] = response.json()
    return stored


async def stored_templates(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """key → template, as the list shows them."""
    items = (await get_json(client, "/api/templates", admin))["items"]
    return {item["key"]: item for item in items}


async def preview(
    client: httpx.AsyncClient, admin: dict[str, str], key: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/api/templates/{key}/preview", headers=admin, json=body)


async def rendered(
    client: httpx.AsyncClient, admin: dict[str, str], key: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await preview(client, admin, key, body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


# --- the happy path ------------------------------------------------------------------------


async def test_a_template_is_stored_201_and_each_put_increments_its_version(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    first = await put(client, admin, "welcome", WELCOME, 201)
    assert {key: first[key] for key in WELCOME} == WELCOME
    assert (first["key"], first["version"], first["updated_by"]) == ("welcome", 1, "ops")
    assert first["updated_at"].endswith("Z")
    assert await get_json(client, "/api/templates/welcome", admin) == first

    second = await put(client, admin, "welcome", template_with(title="Hi {{ name }}"), 200)
    assert second["version"] == 2
    assert second["locales"] == {"en": {"in_app": {"title": "Hi {{ name }}"}}}
    # Left out, the description and default locale take their defaults.
    assert (second["description"], second["default_locale"]) == ("", "en")
    third = await put(client, admin, "welcome", WELCOME, 200)
    assert third["version"] == 3
    assert await get_json(client, "/api/templates/welcome", admin) == third


# Enough concurrent PUTs that, without a lock, some read the same version (seen on every run).
CONCURRENT_PUTS = 20


async def test_concurrent_puts_each_get_a_version_of_their_own(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    answers: list[httpx.Response] = []

    async def one() -> None:
        answers.append(await client.put("/api/templates/race", headers=admin, json=WELCOME))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            for _ in range(CONCURRENT_PUTS):
                tasks.start_soon(one)
    assert sorted(answer.status_code for answer in answers) == [200] * (CONCURRENT_PUTS - 1) + [
        201
    ], [answer.text for answer in answers if answer.status_code >= 500][:1]
    versions = sorted(answer.json()["version"] for answer in answers)
    assert versions == list(range(1, CONCURRENT_PUTS + 1))
    assert (await get_json(client, "/api/templates/race", admin))["version"] == CONCURRENT_PUTS


async def test_the_list_holds_every_template_by_key(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert await stored_templates(client, admin) == {}
    for key in ("welcome", "billing.invoice:due", "A_b-9"):
        await put(client, admin, key, WELCOME, 201)
    found = await stored_templates(client, admin)
    assert set(found) == {"welcome", "billing.invoice:due", "A_b-9"}
    assert all(item["version"] == 1 for item in found.values())


async def test_parts_left_out_are_not_stored_as_nulls(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    document = {
        "locales": {
            "en": {"in_app": {"title": "Hi", "body": None}, "email": None, "sms": {"text": "x"}}
        }
    }
    stored = await put(client, admin, "sparse", document, 201)
    assert stored["locales"] == {"en": {"in_app": {"title": "Hi"}, "sms": {"text": "x"}}}


async def test_delete_answers_204_then_404_and_the_template_is_gone(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    await put(client, admin, "kept", WELCOME, 201)
    gone = await client.delete("/api/templates/welcome", headers=admin)
    assert gone.status_code == 204
    assert gone.content == b""
    assert_problem(await client.get("/api/templates/welcome", headers=admin), 404, "not-found")
    assert_problem(await client.delete("/api/templates/welcome", headers=admin), 404, "not-found")
    assert set(await stored_templates(client, admin)) == {"kept"}
    # Stored again, it starts over at version 1.
    assert (await put(client, admin, "welcome", WELCOME, 201))["version"] == 1


async def test_a_preview_renders_every_locale_and_channel_and_the_asked_locales_in_app(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    english = await rendered(client, admin, "welcome", {"vars": VARS})
    assert (english["title"], english["body"]) == ("Welcome, Alice", "You joined Ops.")
    assert english["locales"] == {
        "en": {
            "in_app": {"title": "Welcome, Alice", "body": "You joined Ops."},
            "email": {
                "subject": "Welcome to Ops",
                "text": "Hello Alice,\nwelcome to Ops.",
                "html": "<p>Hello <b>Alice</b>, welcome to Ops.</p>",
            },
            "push": {"title": "Welcome", "body": "Ops is waiting"},
            "sms": {"text": "Welcome to Ops, Alice"},
        },
        "fr": {"in_app": {"title": "Bienvenue, Alice"}},
    }
    french = await rendered(client, admin, "welcome", {"vars": VARS, "locale": "fr-CA"})
    assert (french["title"], french["body"]) == ("Bienvenue, Alice", "")
    unknown = await rendered(client, admin, "welcome", {"vars": VARS, "locale": "de"})
    assert unknown["title"] == "Welcome, Alice"


async def test_a_preview_without_a_body_renders_a_template_without_variables(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(client, admin, "static", template_with(title="Maintenance tonight"), 201)
    response = await client.post("/api/templates/static/preview", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Maintenance tonight"


async def test_a_preview_changes_nothing(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    stored = await put(client, admin, "welcome", WELCOME, 201)
    await rendered(client, admin, "welcome", {"vars": VARS})
    assert await get_json(client, "/api/templates/welcome", admin) == stored
    page = await get_json(client, "/api/admin/notifications", admin)
    assert page["items"] == []


# --- HTML and the sandbox ------------------------------------------------------------------


async def test_html_fields_escape_variables_and_text_fields_keep_them_verbatim(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    name = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    found = await rendered(client, admin, "welcome", {"vars": {**VARS, "name": name}})
    html = found["locales"]["en"]["email"]["html"]
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.startswith("<p>Hello <b>")
    # Text is text: served as a JSON string for a client to show as text (README).
    assert found["title"] == f"Welcome, {name}"
    assert found["locales"]["en"]["sms"]["text"] == f"Welcome to Ops, {name}"


async def test_markup_in_an_html_template_is_sanitized(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    source = (
        '<p onclick="steal()">Hi {{ name }}</p><script>steal()</script>'
        '<a href="javascript:steal()">x</a><a href="https://example.com/">ok</a>'
        "<style>p { color: red }</style><iframe src='https://example.com'></iframe>"
    )
    document = {
        "locales": {"en": {"in_app": {"title": "t"}, "email": {"subject": "s", "html": source}}}
    }
    await put(client, admin, "markup", document, 201)
    html = (await rendered(client, admin, "markup", {"vars": VARS}))["locales"]["en"]["email"][
        "html"
    ]
    for forbidden in ("<script", "steal()", "onclick", "javascript:", "<style", "<iframe"):
        assert forbidden not in html, (forbidden, html)
    assert "<p>Hi Alice</p>" in html
    assert 'href="https://example.com/"' in html


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self._TemplateReference__context }}",
        "{{ ''.format.__globals__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
    ids=["class", "subclasses", "globals", "cycler-os", "context", "format-globals", "mutation"],
)
async def test_the_sandbox_refuses_python_internals(
    client: httpx.AsyncClient, admin: dict[str, str], source: str
) -> None:
    await put(client, admin, "probe", template_with(title=source), 201)
    response = await preview(client, admin, "probe", {"vars": VARS})
    problem = assert_problem(response, 422, "template-error")
    # Refused, not rendered: no repr of a class, function or module leaks out.
    for leaked in ("<class", "<function", "<built-in", "<module", "<bound"):
        assert leaked not in str(problem)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{{ ['x'] * 10**9 }}",
        "{{ 'x' * 150000 * 2 }}",
        "{{ 7 ** 100000 }}",
        "{% for i in range(10**9) %}x{% endfor %}",
    ],
    ids=["repeat-string", "repeat-reversed", "repeat-list", "repeat-twice", "power", "range"],
)
async def test_the_sandbox_refuses_giant_repetition(
    client: httpx.AsyncClient, admin: dict[str, str], source: str
) -> None:
    await put(client, admin, "probe", template_with(title=source), 201)
    response = await preview(client, admin, "probe", {"vars": VARS})
    assert_problem(response, 422, "template-error")


async def test_a_rendering_larger_than_the_limit_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(
        client, admin, "big", template_with(title="{{ 'x' * 100000 }}{{ 'y' * 100001 }}"), 201
    )
    assert_problem(await preview(client, admin, "big", {}), 422, "template-error")


# Far below what Herald refuses, far above what refusing it should cost.
PADDING = 10**8


async def refused_when_stored_or_rendered(
    client: httpx.AsyncClient, admin: dict[str, str], source: str
) -> None:
    """A 422 template-error from the PUT, or else from a preview of what was stored."""
    stored = await client.put(
        "/api/templates/probe", headers=admin, json=template_with(title=source)
    )
    if stored.status_code != 201:
        assert_problem(stored, 422, "template-error")
        return
    assert_problem(await preview(client, admin, "probe", {}), 422, "template-error")


@pytest.mark.parametrize(
    "source",
    [
        f"{{{{ 'x'.ljust({PADDING}) }}}}",
        f"{{{{ '{{:>{PADDING}}}'.format('x') }}}}",
        f"{{{{ 'x' | center({PADDING}) }}}}",
    ],
    ids=["ljust", "format-width", "center-filter"],
)
async def test_the_sandbox_bounds_padding_as_it_bounds_repetition(
    client: httpx.AsyncClient, admin: dict[str, str], source: str
) -> None:
    """Templates compile and render in a child process: a template must not make the node
    allocate a hundred megabytes to find out the result is too large."""
    # Compiled templates are cached by their text: a text of its own compiles afresh.
    source += f"{{# {secrets.token_hex(8)} #}}"
    tracemalloc.start()
    try:
        await refused_when_stored_or_rendered(client, admin, source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PADDING // 4, f"peak {peak / 1e6:.0f} MB"


# --- refusals: the template ----------------------------------------------------------------


TEMPLATE_ERRORS = {
    "syntax": template_with(title="Hello {{ name"),
    "unclosed-block": template_with(title="{% if x %}yes"),
    "unknown-tag": template_with(title="{% frobnicate %}"),
    "syntax-in-another-locale": {
        "locales": {"en": {"in_app": {"title": "ok"}}, "de": {"in_app": {"title": "{{ }}"}}}
    },
    "syntax-in-html": {
        "locales": {
            "en": {"in_app": {"title": "ok"}, "email": {"subject": "s", "html": "{% for %}"}}
        }
    },
    "default-locale-missing": {
        "default_locale": "de",
        "locales": {"en": {"in_app": {"title": "x"}}},
    },
    "default-locale-without-in-app": {"locales": {"en": {"sms": {"text": "x"}}}},
    "email-without-text-or-html": {
        "locales": {"en": {"in_app": {"title": "x"}, "email": {"subject": "s"}}}
    },
    "email-with-empty-text": {
        "locales": {"en": {"in_app": {"title": "x"}, "email": {"subject": "s", "text": ""}}}
    },
    "locale-without-parts": {"locales": {"en": {"in_app": {"title": "x"}}, "fr": {}}},
}


@pytest.mark.parametrize("case", TEMPLATE_ERRORS.keys())
async def test_a_template_that_cannot_render_is_a_422_and_the_stored_one_stays(
    client: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    stored = await put(client, admin, "welcome", WELCOME, 201)
    for key in ("welcome", "fresh"):
        response = await client.put(
            f"/api/templates/{key}", headers=admin, json=TEMPLATE_ERRORS[case]
        )
        assert_problem(response, 422, "template-error")
    assert await stored_templates(client, admin) == {"welcome": stored}


SCHEMA_ERRORS = {
    "no-locales": {"description": "x"},
    "empty-locales": {"locales": {}},
    "bad-locale-tag": {"locales": {"english": {"in_app": {"title": "x"}}}},
    "unknown-channel": {"locales": {"en": {"in_app": {"title": "x"}, "fax": {"text": "x"}}}},
    "unknown-field-in-a-part": {"locales": {"en": {"in_app": {"title": "x", "icon": "y"}}}},
    "empty-title": {"locales": {"en": {"in_app": {"title": ""}}}},
    "title-not-a-string": {"locales": {"en": {"in_app": {"title": 7}}}},
    "email-without-subject": {
        "locales": {"en": {"in_app": {"title": "x"}, "email": {"text": "t"}}}
    },
    "bad-default-locale": {
        "default_locale": "en_US",
        "locales": {"en": {"in_app": {"title": "x"}}},
    },
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS.keys())
async def test_a_template_that_does_not_match_the_schema_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    stored = await put(client, admin, "welcome", WELCOME, 201)
    response = await client.put("/api/templates/welcome", headers=admin, json=SCHEMA_ERRORS[case])
    assert_problem(response, 422, "validation-failed")
    assert await stored_templates(client, admin) == {"welcome": stored}


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_template_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str
) -> None:
    stored = await put(client, admin, "welcome", WELCOME, 201)
    case = malformed(kind, WELCOME)
    response = await send_malformed(client, "PUT", "/api/templates/welcome", admin, case)
    assert_problem(response, case.status, case.slug)
    assert await stored_templates(client, admin) == {"welcome": stored}


@pytest.mark.parametrize(
    "key", ["bad%20key", "a" * 101, "k%0A", "%C3%A9t%C3%A9", "semi;colon", "star*"]
)
async def test_a_key_no_template_could_have_is_a_404_and_stores_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], key: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, f"/api/templates/{key}", headers=admin, json=WELCOME
        )
        assert_problem(response, 404, "not-found")
    assert_problem(await preview(client, admin, key, {}), 404, "not-found")
    assert await stored_templates(client, admin) == {}


# --- refusals: the preview -----------------------------------------------------------------


async def test_a_preview_missing_a_variable_is_a_422_naming_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    response = await preview(client, admin, "welcome", {"vars": {"name": "Alice"}})
    problem = assert_problem(response, 422, "template-variable-missing")
    assert "team" in problem["detail"]


async def test_a_preview_of_an_unknown_template_is_a_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert_problem(await preview(client, admin, "nope", {"vars": VARS}), 404, "not-found")


@pytest.mark.parametrize(
    "body",
    [{"vars": [1, 2]}, {"locale": "english"}, {"vars": VARS, "title": "x"}, {"vars": "name"}],
    ids=["vars-list", "bad-locale", "unknown-field", "vars-string"],
)
async def test_a_preview_body_that_does_not_match_the_schema_is_a_422(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    assert_problem(await preview(client, admin, "welcome", body), 422, "validation-failed")


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_preview_body_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str
) -> None:
    await put(client, admin, "welcome", WELCOME, 201)
    case = malformed(kind, {"vars": VARS})
    response = await send_malformed(client, "POST", "/api/templates/welcome/preview", admin, case)
    assert_problem(response, case.status, case.slug)


# --- admin only ----------------------------------------------------------------------------


OPERATIONS = [
    ("GET", "/api/templates"),
    ("GET", "/api/templates/welcome"),
    ("PUT", "/api/templates/welcome"),
    ("DELETE", "/api/templates/welcome"),
    ("POST", "/api/templates/welcome/preview"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("scope", [None, SCOPE_PUBLISH])
async def test_templates_refuse_anyone_without_the_admin_scope_and_change_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    admin: dict[str, str],
    method: str,
    path: str,
    scope: str | None,
) -> None:
    stored = await put(client, admin, "welcome", WELCOME, 201)
    caller = auth(settings, "mallory", *([scope] if scope else []))
    body = template_with(title="Pwned") if method == "PUT" else {"vars": VARS}
    response = await client.request(method, path, headers=caller, json=body)
    problem = assert_problem(response, 403, "forbidden")
    assert "Welcome" not in str(problem)
    anonymous = await client.request(method, path, json=body)
    assert_problem(anonymous, 401, "unauthenticated")
    assert await stored_templates(client, admin) == {"welcome": stored}
