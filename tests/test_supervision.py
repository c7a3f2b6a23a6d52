"""The supervisor of a node's background loops: a loop that keeps crashing is reported as
such (for /readyz) until a crash window passes without one; a single crash is not."""

from __future__ import annotations

import anyio
import pytest

from herald_server.supervision import CRASH_WINDOW, CRASHES_UNREADY, Supervisor

pytestmark = pytest.mark.anyio


class Clock:
    """The supervisor's clock, moved by the test: the crash window is a minute long."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def crash_times(supervisor: Supervisor, name: str, times: int) -> None:
    """Run a loop under `supervisor` that crashes on each of its first `times` runs, and
    return once it has, with the supervisor still running it."""
    runs = 0
    crashed = anyio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == times:
            crashed.set()
        if runs <= times:
            raise RuntimeError(f"crash {runs}")
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(supervisor.run, name, loop)
        with anyio.fail_after(10):
            await crashed.wait()
        tasks.cancel_scope.cancel()


async def test_a_loop_that_keeps_crashing_is_crashing_until_a_window_passes_without_one() -> None:
    clock = Clock()
    supervisor = Supervisor(clock)

    await crash_times(supervisor, "scheduler", CRASHES_UNREADY)
    crashing = supervisor.crashing()
    clock.now += CRASH_WINDOW + 1
    forgiven = supervisor.crashing()

    assert crashing == ["scheduler"]
    assert forgiven == []
    assert supervisor.crashes["scheduler"] == CRASHES_UNREADY


async def test_crashes_spread_wider_than_the_window_never_make_a_loop_crashing() -> None:
    clock = Clock()
    supervisor = Supervisor(clock)

    await crash_times(supervisor, "scheduler", 1)
    clock.now += CRASH_WINDOW / 2 + 1
    await crash_times(supervisor, "scheduler", 1)
    clock.now += CRASH_WINDOW / 2 + 1
    await crash_times(supervisor, "scheduler", 1)

    assert supervisor.crashes["scheduler"] == 3
    assert supervisor.crashing() == []
    assert supervisor.loops() == ["scheduler"]
