"""The layers' import table, enforced by walking every module's imports (function-level
ones included: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
CONCRETE = (
    "herald_server.store.sql",
    "herald_server.store.sqlite",
    "herald_server.store.postgres",
    "herald_server.store.dialect",
    "herald_server.store.tables",
    "herald_server.store.migrations",
    "herald_server.bus.memory",
    "herald_server.bus.redis",
)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "herald_server.core": ("starlette", "sse_starlette", "sqlalchemy", "databases", "redis",
                           "httpx", "herald_server.api", "herald_server.streams", *CONCRETE),
    "herald_server.store": ("starlette", "redis", "herald_server.core", "herald_server.bus",
                            "herald_server.api", "herald_server.streams"),
    "herald_server.bus": ("starlette", "sqlalchemy", "databases", "herald_server.core",
                          "herald_server.store", "herald_server.api"),
    "herald_server.api": ("sqlalchemy", "databases", "redis", "herald_server.streams", *CONCRETE),
    "herald_server.streams": ("sqlalchemy", "databases", "redis", "herald_server.api", *CONCRETE),
    "herald_server.auth": ("starlette", "herald_server.store", "herald_server.bus"),
}  # fmt: skip
STDLIB_ONLY = ("herald_server.models", "herald_server.errors")


def module_name(path: Path) -> str:
    """The name `path` is imported by: the app/ folder is the herald_server package."""
    parts = ("herald_server", *path.relative_to(APP).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports; `from a import b` counts as both `a` and `a.b`."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_module_imports_respect_the_layer_table(path: Path) -> None:
    name = module_name(path)
    found = imports(path)
    violations = [
        f"{name} imports {imported} (forbidden: {prefix})"
        for layer, forbidden in FORBIDDEN.items()
        if matches(name, layer)
        for imported in sorted(found)
        for prefix in forbidden
        if matches(imported, prefix)
    ]
    if name in STDLIB_ONLY:
        violations += [
            f"{name} imports {imported}, not stdlib"
            for imported in sorted(found)
            if imported.split(".")[0] not in sys.stdlib_module_names
        ]
    assert violations == []


def test_the_layer_table_sees_the_imports_that_exist() -> None:
    """Guard against a walker that finds nothing and so passes everything."""
    assert "herald_server.store" in imports(APP / "core" / "hub.py")
    assert "herald_server.store.sqlite" in imports(APP / "store" / "__init__.py")
    assert "starlette.routing" in imports(APP / "api" / "health.py")


def test_importing_core_loads_no_backend_or_web_library() -> None:
    """The Protocols are importable without their implementations (the factories import
    them lazily)."""
    code = (
        "import sys, pkgutil, importlib, herald_server.core\n"
        "for m in pkgutil.iter_modules(herald_server.core.__path__):\n"
        "    importlib.import_module('herald_server.core.' + m.name)\n"
        "banned = ('sqlalchemy', 'starlette', 'sse_starlette', 'redis', 'asyncpg', 'aiosqlite')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=APP.parent,
    )
    assert result.stdout.strip() == "[]"
