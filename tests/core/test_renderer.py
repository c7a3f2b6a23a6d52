"""Templates render in child processes bounded in time and memory (app/core/renderer.py): a
template that spins or swells is refused, the renderer recovers, and the caller's event loop
never waits on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from herald_server.core.renderer import TemplateRenderer
from herald_server.core.templates import render
from herald_server.errors import MissingTemplateVariable, TemplateError
from herald_server.models import Template

pytestmark = pytest.mark.anyio

SPINS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
# Each step replaces every one of 150,000 characters by 150,000: 22.5 GB.
SWELLS = "{{ ('x' * 150000).replace('x', 'x' * 150000) | length }}"


def template(title: str, **parts: dict[str, str]) -> Template:
    locales = {"en": {"in_app": {"title": title}, **parts}}
    return Template("probe", 1, {"default_locale": "en", "locales": locales}, 0, "ops")


@pytest.fixture
async def renderer() -> AsyncIterator[TemplateRenderer]:
    started = TemplateRenderer(timeout=1.0, memory_mb=128, processes=2)
    yield started
    started.close()


async def test_a_render_in_a_child_is_the_render_in_process(renderer: TemplateRenderer) -> None:
    probe = template(
        "Hello {{ name }}", email={"subject": "Hi {{ name }}", "html": "<b>{{ name }}</b>"}
    )
    variables = {"name": "<Ada>"}

    assert await renderer.render(probe, variables, "en") == render(probe, variables, "en")


async def test_problems_cross_from_the_child_as_they_are(renderer: TemplateRenderer) -> None:
    with pytest.raises(MissingTemplateVariable, match="'name' is undefined"):
        await renderer.render(template("Hello {{ name }}"), {}, None)
    with pytest.raises(TemplateError, match="line 1"):
        await renderer.check(template("Hello {{ name").document)
    await renderer.check(template("Hello {{ name }}").document)


async def test_a_template_that_spins_is_stopped_and_the_next_one_renders(
    renderer: TemplateRenderer,
) -> None:
    with anyio.fail_after(10), pytest.raises(TemplateError, match="longer than 1 s"):
        await renderer.render(template(SPINS), {}, None)

    assert (await renderer.render(template("after {{ n }}"), {"n": 1}, None)).title == "after 1"


async def test_a_template_that_swells_is_refused_and_the_next_one_renders(
    renderer: TemplateRenderer,
) -> None:
    with anyio.fail_after(10), pytest.raises(TemplateError, match="MB"):
        await renderer.render(template(SWELLS), {}, None)

    assert (await renderer.render(template("after"), {}, None)).title == "after"


async def test_a_caller_cancelled_mid_render_leaves_no_answer_for_the_next(
    renderer: TemplateRenderer,
) -> None:
    slow = template(
        "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}slow"
    )
    with anyio.move_on_after(0.05):
        await renderer.render(slow, {}, None)

    results = []
    async with anyio.create_task_group() as renders:
        for n in range(6):

            async def one(n: int = n) -> None:
                results.append(
                    (n, (await renderer.render(template("n{{ n }}"), {"n": n}, None)).title)
                )

            renders.start_soon(one)

    assert sorted(results) == [(n, f"n{n}") for n in range(6)]


async def test_the_event_loop_goes_on_while_a_template_spins(renderer: TemplateRenderer) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        with pytest.raises(TemplateError):
            await renderer.render(template(SPINS), {}, None)
        tasks.cancel_scope.cancel()

    # A blocked loop would not have ticked at all while the render ran.
    assert ticks > 10
