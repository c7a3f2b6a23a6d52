"""Templates (app/core/templates.py): checked when stored, rendered whole when used, in a
sandbox that a template author cannot escape or use to exhaust the node."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from herald_server import codec
from herald_server.core.templates import MAX_RENDERED_CHARS, Rendered, check, locale_chain, render
from herald_server.errors import MissingTemplateVariable, TemplateError
from herald_server.models import Template

ORDER = {
    "default_locale": "en",
    "locales": {
        "en": {
            "in_app": {"title": "Order {{ order }} shipped", "body": "Arrives {{ eta }}"},
            "email": {
                "subject": "Your order {{ order }}",
                "text": "Hello {{ name }}",
                "html": "<p>Hello <b>{{ name }}</b></p>",
            },
            "push": {"title": "Shipped: {{ order }}"},
            "sms": {"text": "Order {{ order }} shipped"},
        },
        "fr": {"in_app": {"title": "Commande {{ order }} expédiée", "body": "Arrivée {{ eta }}"}},
        "pt-BR": {"in_app": {"title": "Pedido {{ order }} enviado"}},
    },
}
VARS = {"order": "A-1", "eta": "Tuesday", "name": "Alice"}


def template(document: dict[str, Any], key: str = "order_shipped") -> Template:
    return Template(key, 1, document, 0, "ops")


def one_field(source: str, channel: str = "in_app", name: str = "title") -> Template:
    parts: dict[str, dict[str, str]] = {"in_app": {"title": "t"}}
    if channel == "email":
        parts["email"] = {"subject": "s", name: source}
    else:
        parts[channel] = {name: source}
    return template({"default_locale": "en", "locales": {"en": parts}})


def rendered(source: str, variables: dict[str, Any] | None = None, **where: str) -> str:
    result = render(one_field(source, **where), variables or {}, None)
    locales = codec.loads(result.content)["locales"]
    channel = where.get("channel", "in_app")
    text: str = locales["en"][channel][where.get("name", "title")]
    return text


# --- check ----------------------------------------------------------------------------------


def test_a_complete_document_passes() -> None:
    check(ORDER)


def test_the_default_locale_needs_an_in_app_part() -> None:
    with pytest.raises(TemplateError, match="'de'"):
        check({"default_locale": "de", "locales": ORDER["locales"]})
    with pytest.raises(TemplateError, match="in_app"):
        check({"default_locale": "en", "locales": {"en": {"sms": {"text": "x"}}}})


def test_the_default_locale_is_found_whatever_its_case() -> None:
    check({"default_locale": "EN", "locales": ORDER["locales"]})
    probe = Template("k", 1, {"default_locale": "EN", "locales": ORDER["locales"]}, 0, "ops")
    assert render(probe, VARS, "de").title == "Order A-1 shipped"


def test_a_locale_without_parts_is_refused() -> None:
    with pytest.raises(TemplateError, match="'fr' has no parts"):
        check({"default_locale": "en", "locales": {"en": {"in_app": {"title": "t"}}, "fr": {}}})


@pytest.mark.parametrize(
    ("part", "missing"),
    [
        ({"in_app": {"body": "b"}}, "title"),
        ({"email": {"text": "t"}}, "subject"),
        ({"email": {"subject": "s"}}, "text or html"),
        ({"push": {"body": "b"}}, "title"),
        ({"sms": {"text": ""}}, "text"),
    ],
)
def test_a_part_without_its_required_fields_is_refused(
    part: dict[str, dict[str, str]], missing: str
) -> None:
    channel = next(iter(part))
    document = {"default_locale": "en", "locales": {"en": {"in_app": {"title": "t"}}, "fr": part}}
    with pytest.raises(TemplateError, match=f"fr, {channel}: {missing} required"):
        check(document)


def test_a_syntax_error_is_refused_naming_locale_channel_field_and_line() -> None:
    document = {
        "default_locale": "en",
        "locales": {
            "en": {"in_app": {"title": "t"}, "email": {"subject": "s", "html": "a\n{% if %}"}}
        },
    }
    with pytest.raises(TemplateError, match=r"en, email\.html, line 2"):
        check(document)
    with pytest.raises(TemplateError, match=r"in_app\.title"):
        check({"default_locale": "en", "locales": {"en": {"in_app": {"title": "{{ x "}}}})


# --- render ---------------------------------------------------------------------------------


def test_render_fills_every_locale_and_channel_and_returns_the_in_app_text() -> None:
    result = render(template(ORDER), VARS, "en")
    assert result.title == "Order A-1 shipped"
    assert result.body == "Arrives Tuesday"
    content = codec.loads(result.content)
    assert content["default_locale"] == "en"
    assert content["locales"]["en"]["sms"] == {"text": "Order A-1 shipped"}
    assert content["locales"]["en"]["email"]["subject"] == "Your order A-1"
    assert content["locales"]["fr"]["in_app"]["title"] == "Commande A-1 expédiée"
    assert content["locales"]["pt-BR"] == {"in_app": {"title": "Pedido A-1 enviado"}}


def test_the_in_app_text_follows_the_publish_locale_with_language_fallback() -> None:
    assert render(template(ORDER), VARS, "fr").title == "Commande A-1 expédiée"
    assert render(template(ORDER), VARS, "FR-ca").title == "Commande A-1 expédiée"
    assert render(template(ORDER), VARS, "pt-br") == Rendered(
        "Pedido A-1 enviado", "", render(template(ORDER), VARS, None).content
    )
    assert render(template(ORDER), VARS, "de").title == "Order A-1 shipped"
    assert render(template(ORDER), VARS, None).title == "Order A-1 shipped"


def test_a_missing_variable_names_the_template_locale_channel_and_field() -> None:
    with pytest.raises(MissingTemplateVariable) as caught:
        render(template(ORDER), {"order": "A-1", "eta": "soon"}, "en")
    message = str(caught.value)
    assert "'order_shipped'" in message
    assert "en, email.text" in message
    assert "'name' is undefined" in message


def test_a_variable_missing_in_another_locale_is_still_an_error() -> None:
    document = {
        "default_locale": "en",
        "locales": {"en": {"in_app": {"title": "hi"}}, "fr": {"in_app": {"title": "{{ nom }}"}}},
    }
    with pytest.raises(MissingTemplateVariable, match=r"fr, in_app\.title"):
        render(template(document), {}, "en")


def test_an_attribute_of_a_missing_variable_is_a_missing_variable() -> None:
    with pytest.raises(MissingTemplateVariable, match="'user' is undefined"):
        rendered("{{ user.name }}")


def test_variables_may_be_nested_and_use_filters() -> None:
    assert rendered("{{ user.name | upper }} ({{ items | length }})", {
        "user": {"name": "alice"}, "items": [1, 2, 3],
    }) == "ALICE (3)"  # fmt: skip


def test_a_runtime_failure_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        rendered("{{ 1 / 0 }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ f.__globals__ }}",
        "{{ f.__code__ }}",
        "{{ d.__class__.__base__ }}",
    ],
)
def test_the_sandbox_refuses_dunder_attributes(source: str) -> None:
    with pytest.raises(TemplateError, match=r"unsafe|SecurityError|undefined"):
        rendered(source, {"f": rendered, "d": {}})


def test_an_immutable_sandbox_refuses_to_change_a_variable() -> None:
    items: list[int] = []
    with pytest.raises(TemplateError, match="SecurityError"):
        rendered("{{ items.append(1) }}", {"items": items})
    assert items == []


@pytest.mark.parametrize(
    "source",
    ["{{ 'x' * 10**9 }}", "{{ 10**9 * 'x' }}", "{{ ['x'] * 10**9 }}", "{{ 2 ** (10**9) }}"],
)
def test_repetition_and_powers_too_large_are_refused_quickly(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"SecurityError: (repetition|exponent) too large"):
        rendered(source)
    assert time.monotonic() - started < 1


def test_small_repetition_and_powers_render() -> None:
    assert rendered("{{ '-' * 3 }}{{ 2 ** 10 }}{{ 3 * 4 }}") == "---102412"


def test_a_chain_of_powers_is_refused_before_it_is_computed() -> None:
    with pytest.raises(TemplateError) as caught:
        rendered("{{ 3 ** 64 ** 64 ** 64 ** 16 }}")
    assert "SecurityError" in str(caught.value), str(caught.value)


def test_a_string_built_by_repeated_concatenation_is_refused() -> None:
    doubling = "{% set a = a ~ a %}" * 5
    source = "{% set a = 'x' * 100000 %}" + doubling + "{{ a | length }}"
    with pytest.raises(TemplateError):
        rendered(source)


def test_output_larger_than_the_limit_is_refused() -> None:
    with pytest.raises(TemplateError, match=f"more than {MAX_RENDERED_CHARS}"):
        rendered("{% for i in range(3) %}{{ 'x' * 100000 }}{% endfor %}")


def test_output_beyond_the_limit_is_refused_before_it_is_all_built() -> None:
    source = "{% for i in range(200) %}{{ 'x' * 100000 }}{% endfor %}"  # 20 MB of output
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=f"more than {MAX_RENDERED_CHARS}"):
            rendered(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"peak {peak / 1e6:.0f} MB while refusing 20 MB of output"


def test_a_nul_character_is_refused() -> None:
    with pytest.raises(TemplateError, match="NUL"):
        rendered("{{ x }}", {"x": "a\x00b"})
    with pytest.raises(TemplateError, match="NUL"):
        rendered("<p>{{ x }}</p>", {"x": "a\x00b"}, channel="email", name="html")


# --- HTML -----------------------------------------------------------------------------------


def test_variables_in_html_are_escaped() -> None:
    html = rendered(
        "<p>{{ name }}</p>", {"name": "<b>Alice & co</b>"}, channel="email", name="html"
    )
    assert html == "<p>&lt;b&gt;Alice &amp; co&lt;/b&gt;</p>"


def test_variables_in_text_fields_are_not_escaped() -> None:
    text = rendered("{{ name }}", {"name": "<Alice & co>"}, channel="email", name="text")
    assert text == "<Alice & co>"
    assert rendered("{{ name }}", {"name": "<Alice & co>"}) == "<Alice & co>"


def test_scripts_and_event_handlers_in_the_template_itself_are_stripped() -> None:
    source = (
        '<p onclick="steal()">Hi</p><script>steal()</script>'
        '<img src="https://example.com/a.png" onerror="steal()">'
        '<a href="javascript:steal()">x</a>'
        '<a href="https://example.com" onmouseover="steal()">y</a>'
        '<iframe src="https://evil.example"></iframe><style>p{}</style>'
    )
    html = rendered(source, channel="email", name="html")
    lowered = html.lower()
    for forbidden in ("<script", "steal", "onclick", "onerror", "onmouseover", "javascript:"):
        assert forbidden not in lowered, (forbidden, html)
    assert "<iframe" not in lowered
    assert "<style" not in lowered
    assert "<p>Hi</p>" in html
    assert 'src="https://example.com/a.png"' in html
    assert 'href="https://example.com"' in html
    assert 'rel="noopener noreferrer"' in html


def test_layout_attributes_mail_clients_need_are_kept() -> None:
    source = (
        '<table width="600" align="center"><tr><td valign="top" colspan="2">x</td></tr></table>'
    )
    html = rendered(source, channel="email", name="html")
    for kept in ('width="600"', 'align="center"', 'valign="top"', 'colspan="2"'):
        assert kept in html, html


def test_a_markup_safe_variable_cannot_smuggle_a_script_past_the_sanitizer() -> None:
    html = rendered(
        "{{ x | safe }}", {"x": "<script>steal()</script><b>ok</b>"}, channel="email", name="html"
    )
    assert "script" not in html
    assert "steal" not in html
    assert "<b>ok</b>" in html


# --- locale_chain ---------------------------------------------------------------------------


def test_locale_chain_tries_the_locale_its_language_then_the_default() -> None:
    available = {"en": 1, "fr": 1, "fr-CA": 1}
    assert locale_chain("fr-CA", "en", available) == ["fr-CA", "fr", "en"]
    assert locale_chain("fr-BE", "en", available) == ["fr", "en"]
    assert locale_chain("de-AT", "en", available) == ["en"]
    assert locale_chain(None, "en", available) == ["en"]
    assert locale_chain("en", "en", available) == ["en"]


def test_locale_chain_ignores_case_and_answers_with_the_available_spelling() -> None:
    available = {"en": 1, "pt-BR": 1, "FR": 1}
    assert locale_chain("PT-br", "en", available) == ["pt-BR", "en"]
    assert locale_chain("fr-ca", "en", available) == ["FR", "en"]
    assert locale_chain("xx", "EN", available) == ["en"]


def test_locale_chain_is_empty_when_nothing_matches() -> None:
    assert locale_chain("de", "it", {"en": 1}) == []
