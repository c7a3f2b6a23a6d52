"""Templates are checked and rendered in child processes, each bounded in time and memory.

Jinja's sandbox stops a template from reaching Python's internals, and
`herald_server.core.templates` bounds the obvious ways to grow a value, but no sandbox inside
the process can stop a loop that spins for minutes or a string method that allocates gigabytes:
Jinja's own docs say to bound rendering from outside. A render that runs out of time is killed
with its process; one that runs out of memory fails with MemoryError there. Either is the
publisher's 422, and the node's event loop never stalls on a template.

Children are forked from a forkserver that has already imported the template code, so a
replacement starts in milliseconds; they are started on first use.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import resource
import threading
from collections.abc import Mapping
from typing import Any

import anyio

from herald_server.core.templates import Rendered, check, render
from herald_server.errors import MissingTemplateVariable, Problem, TemplateError
from herald_server.models import Template

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["herald_server.core.templates"])
# The problems a child may report, by name: they cross the pipe as (name, detail).
_PROBLEMS: dict[str, type[Problem]] = {
    cls.__name__: cls for cls in (TemplateError, MissingTemplateVariable)
}


def _serve(conn: multiprocessing.connection.Connection, memory: int) -> None:
    """A child's life: take (what, arguments), answer ("ok", result) or (problem, detail)."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + memory, mapped + memory))
    while True:
        try:
            what, arguments = conn.recv()
        except EOFError:
            return
        try:
            result = _run(what, arguments)
        except (TemplateError, MissingTemplateVariable) as exc:
            conn.send((type(exc).__name__, exc.detail))
        except MemoryError:
            # The allocation that failed is unwound with the render: the process goes on.
            conn.send(("TemplateError", f"needs more than {memory // 2**20} MB to render"))
        else:
            conn.send(("ok", result))


def _run(what: str, arguments: tuple[Any, ...]) -> Rendered | None:
    if what == "render":
        return render(*arguments)
    check(*arguments)
    return None


class _Child:
    """One child process and the pipe to it; used by one render at a time."""

    def __init__(self, memory: int) -> None:
        self._memory = memory
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self._conn, theirs = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(target=_serve, args=(theirs, self._memory), daemon=True)
        self._process.start()
        theirs.close()

    def exchange(self, request: tuple[str, tuple[Any, ...]], timeout: float) -> tuple[str, Any]:
        """Blocking: runs in a thread. A child that does not answer in time is killed and
        replaced, so the next render starts clean."""
        with self._lock:
            if not self._process.is_alive():
                self._start()
            try:
                self._conn.send(request)
                if self._conn.poll(timeout):
                    return self._conn.recv()  # type: ignore[no-any-return]
            except (EOFError, OSError):
                self._restart()
                return ("TemplateError", "the renderer stopped; try again")
            self._restart()
            return ("TemplateError", f"took longer than {timeout:g} s to render")

    def _restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        self._process.kill()
        self._process.join(timeout=5)
        self._conn.close()


class TemplateRenderer:
    def __init__(self, timeout: float = 2.0, memory_mb: int = 256, processes: int = 2) -> None:
        self._timeout = timeout
        self._memory = memory_mb * 2**20
        self._idle: list[_Child] = []
        self._slots = anyio.Semaphore(processes)

    async def check(self, document: Mapping[str, Any]) -> None:
        """Refuse a document with a part missing or a field that does not compile."""
        await self._call("check", (dict(document),))

    async def render(
        self, template: Template, variables: Mapping[str, Any], locale: str | None
    ) -> Rendered:
        rendered: Rendered = await self._call("render", (template, dict(variables), locale))
        return rendered

    async def _call(self, what: str, arguments: tuple[Any, ...]) -> Any:
        async with self._slots:
            child = self._idle.pop() if self._idle else _Child(self._memory)
            try:
                # Not abandoned on cancellation: the child's answer is read before it is
                # handed to anyone else, however the caller's request ended.
                kind, result = await anyio.to_thread.run_sync(
                    child.exchange, (what, arguments), self._timeout
                )
            finally:
                self._idle.append(child)
        if kind != "ok":
            raise _PROBLEMS[kind](result)
        return result

    def close(self) -> None:
        for child in self._idle:
            child.close()
        self._idle.clear()
