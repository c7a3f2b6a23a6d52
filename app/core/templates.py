"""Templates: one key, per locale, per channel, in sandboxed Jinja2, rendered whole at publish.

Rendering every locale and channel when the notification is published makes a missing variable
the publisher's 422, never a half-rendered email an hour later, and means a template edited
after publishing cannot change what was already sent (the renderings are stored with the
notification).

A template document:

    {"default_locale": "en",
     "locales": {"en": {"in_app": {"title": "…", "body": "…"},
                        "email": {"subject": "…", "text": "…", "html": "…"},
                        "push": {"title": "…", "body": "…"},
                        "sms": {"text": "…"}},
                 "fr": {…}}}

The default locale needs `in_app`; every other part is optional and falls back (see
`herald_server.core.content`). HTML fields are autoescaped, then sanitized with nh3, since a human's
mail client shows them; text fields are plain text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import nh3
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herald_server import codec
from herald_server.errors import MissingTemplateVariable, TemplateError
from herald_server.models import Template

FIELDS: Mapping[str, tuple[str, ...]] = {
    "in_app": ("title", "body"),
    "email": ("subject", "text", "html"),
    "push": ("title", "body"),
    "sms": ("text",),
}
REQUIRED: Mapping[str, tuple[str, ...]] = {
    "in_app": ("title",),
    "email": ("subject",),
    "push": ("title",),
    "sms": ("text",),
}
HTML_FIELDS = frozenset({("email", "html")})
# A rendered field larger than this is an error, not an email: a template or its variables
# went wrong (or someone is trying to make Herald allocate a gigabyte).
MAX_RENDERED_CHARS = 200_000
# No message needs a number of more than a few thousand digits.
MAX_POWER_BITS = 16_384
# Attributes mail clients rely on for layout, beyond nh3's defaults. No `style`: nh3 cannot
# sanitize CSS.
EMAIL_ATTRIBUTES = {
    **{tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()},
    "table": {"align", "width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"align", "valign", "width", "colspan", "rowspan", "bgcolor"},
    "th": {"align", "valign", "width", "colspan", "rowspan", "scope"},
    "img": {"src", "alt", "width", "height"},
    "a": {"href", "title"},
}


class _BoundedConcat(CodeGenerator):
    """Compiles `a ~ b` so its result passes `environment.bounded`: the sandbox cannot
    intercept `~` as it does binary operators."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox bounds `range`, not how large a value may grow: `{{ 'x' * 10**9 }}`
    would allocate a gigabyte, a chain of `**` spin the CPU for minutes, and `{% set a = a ~ a
    %}` double a string as often as it is written. Each is checked before it is computed."""

    intercepted_binops = frozenset({"*", "**", "+"})
    code_generator_class = _BoundedConcat

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
            raise SecurityError("exponent too large")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                repeated = _sized(sequence) and isinstance(times, int)
                if repeated and len(sequence) * times > MAX_RENDERED_CHARS:
                    raise SecurityError("repetition too large")
        joined = operator == "+" and _sized(left) and _sized(right)
        if joined and len(left) + len(right) > MAX_RENDERED_CHARS:
            raise SecurityError("concatenation too large")
        return super().call_binop(context, operator, left, right)

    def bounded(self, value: Any) -> Any:
        if _sized(value) and len(value) > MAX_RENDERED_CHARS:
            raise SecurityError("concatenation too large")
        return value


def _sized(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _power_bits(base: Any, exponent: Any) -> int:
    """About how many bits `base ** exponent` takes, known before it is computed."""
    if not isinstance(base, int) or not isinstance(exponent, int) or exponent <= 0:
        return 0
    return max(base.bit_length(), 1) * exponent


_ENVIRONMENTS = {
    False: _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False),
    True: _Sandbox(undefined=jinja2.StrictUndefined, autoescape=True),
}


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> jinja2.Template:
    """Compiled once per source text: templates are read from the store on every publish, so
    this cache is keyed by content, and an edit on any node simply compiles anew."""
    return _ENVIRONMENTS[html].from_string(source)


@dataclass(frozen=True, slots=True)
class Rendered:
    """The in-app title and body in the publish locale, and every rendering, as JSON."""

    title: str
    body: str
    content: str


def check(document: Mapping[str, Any]) -> None:
    """Refuse a document with a part missing or a field that does not compile."""
    locales: Mapping[str, Mapping[str, Mapping[str, str]]] = document["locales"]
    default = document["default_locale"]
    # Locale tags compare without regard to case (BCP 47); the stored key is what is used.
    default = next((name for name in locales if name.lower() == default.lower()), default)
    if default not in locales or "in_app" not in locales[default]:
        raise TemplateError(f"the default locale {default!r} needs an in_app part")
    for locale, parts in locales.items():
        if not parts:
            raise TemplateError(f"locale {locale!r} has no parts")
        for channel, fields in parts.items():
            _check_part(locale, channel, fields)


def _check_part(locale: str, channel: str, fields: Mapping[str, str]) -> None:
    where = f"{locale}, {channel}"
    missing = [name for name in REQUIRED[channel] if not fields.get(name)]
    if missing:
        raise TemplateError(f"{where}: {', '.join(missing)} required")
    if channel == "email" and not (fields.get("text") or fields.get("html")):
        raise TemplateError(f"{where}: text or html required")
    for name, source in fields.items():
        if source is None:
            continue
        try:
            _compiled(source, (channel, name) in HTML_FIELDS)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{where}.{name}, line {exc.lineno}: {exc.message}") from None


def render(template: Template, variables: Mapping[str, Any], locale: str | None) -> Rendered:
    """Render every field of every locale; the in-app part in `locale`'s best match."""
    locales: dict[str, dict[str, dict[str, str]]] = {}
    for name, parts in template.document["locales"].items():
        locales[name] = {
            channel: _render_part(template.key, name, channel, fields, variables)
            for channel, fields in parts.items()
        }
    default = template.document["default_locale"]
    in_app = next(
        locales[name]["in_app"]
        for name in locale_chain(locale, default, locales)
        if "in_app" in locales[name]
    )
    content = {"default_locale": default, "locales": locales}
    return Rendered(in_app["title"], in_app.get("body", ""), codec.dumps_str(content))


def _render_part(
    key: str,
    locale: str,
    channel: str,
    fields: Mapping[str, str | None],
    variables: Mapping[str, Any],
) -> dict[str, str]:
    rendered = {}
    for name, source in fields.items():
        if source is None:
            continue
        where = f"template {key!r} ({locale}, {channel}.{name})"
        html = (channel, name) in HTML_FIELDS
        try:
            text = _generate(_compiled(source, html), variables, where)
        except UndefinedError as exc:
            raise MissingTemplateVariable(f"{where}: {exc.message}") from None
        except (TemplateError, MemoryError):
            raise
        except Exception as exc:  # any failure of a template is the publisher's 422
            raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from None
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL, and no message needs it.
            raise TemplateError(f"{where}: renders a NUL character")
        rendered[name] = sanitize_html(text) if html else text
    return rendered


def _generate(template: jinja2.Template, variables: Mapping[str, Any], where: str) -> str:
    """The output, refused as soon as it grows past the limit rather than once it is built."""
    parts, size = [], 0
    for part in template.generate(variables):
        size += len(part)
        if size > MAX_RENDERED_CHARS:
            raise TemplateError(f"{where}: renders to more than {MAX_RENDERED_CHARS} characters")
        parts.append(part)
    return "".join(parts)


def sanitize_html(html: str) -> str:
    return nh3.clean(html, attributes=EMAIL_ATTRIBUTES, link_rel="noopener noreferrer")


def strip_tags(markup: str) -> str:
    return nh3.clean(markup, tags=set())


def locale_chain(wanted: str | None, default: str, available: Mapping[str, object]) -> list[str]:
    """The available locales to try, best first: `wanted`, its language, the default.
    Locale tags compare without regard to case (BCP 47)."""
    by_lower = {name.lower(): name for name in available}
    chain: list[str] = []
    candidates = [wanted, wanted.split("-")[0] if wanted else None, default]
    for candidate in candidates:
        found = by_lower.get(candidate.lower()) if candidate else None
        if found is not None and found not in chain:
            chain.append(found)
    return chain
