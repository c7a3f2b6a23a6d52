"""Forward-only, numbered SQL migrations, one folder per dialect (`migrations/<dialect>/`).

The folder ships inside the package (`herald_server.migrations`) and is read with
importlib.resources, so an installed wheel migrates without a checkout beside it.

The caller holds a transaction and the dialect's migration lock, so a migration applies whole
or not at all, and two migrators never race (the second finds nothing left to do).
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS_DIR = files("herald_server.migrations")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def pending_files(dialect: str, applied: set[int]) -> list[tuple[int, Traversable]]:
    folder = MIGRATIONS_DIR / dialect
    found = []
    for path in sorted(folder.iterdir(), key=lambda entry: entry.name):
        match = _NAME.match(path.name)
        if match and int(match.group(1)) not in applied:
            found.append((int(match.group(1)), path))
    return found


def statements(sql: str) -> list[str]:
    """Split a migration file on `;` at line ends; `--` comments are dropped first (our
    migrations hold no `--` inside string literals)."""
    lines = [re.sub(r"--.*$", "", line) for line in sql.splitlines()]
    return [
        part.strip() for part in re.split(r";\s*$", "\n".join(lines), flags=re.M) if part.strip()
    ]


async def apply_migrations(conn: AsyncConnection, dialect: str) -> list[str]:
    await conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    )
    applied = set((await conn.execute(text("SELECT version FROM schema_migrations"))).scalars())
    names = []
    for version, path in pending_files(dialect, applied):
        for statement in statements(path.read_text()):
            await conn.exec_driver_sql(statement)
        await conn.execute(
            text(
                "INSERT INTO schema_migrations (version, name, applied_at)"
                " VALUES (:version, :name, CURRENT_TIMESTAMP)"
            ),
            {"version": version, "name": path.name},
        )
        names.append(path.name)
    return names
