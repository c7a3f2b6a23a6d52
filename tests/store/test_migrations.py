"""Migrations (app/store/migrations.py): what they create, and that running them is safe twice
and from several processes at once. Each test gets a database of its own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from herald_server.config import Settings
from herald_server.store import Store, open_store
from herald_server.store.migrations import statements
from herald_server.store.tables import metadata
from tests.conftest import PG_URL, SECRET

pytestmark = pytest.mark.anyio

ALL_MIGRATIONS = [
    "0001_initial.sql",
    "0002_inbox_by_notification.sql",
    "0003_delivery.sql",
    "0004_retention.sql",
    "0005_audit_and_revocation.sql",
    "0006_topic_access.sql",
    "0007_delivery_shares.sql",
]


def _with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


async def _create_database(request: pytest.FixtureRequest) -> str:
    name = f"herald_mig_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        if request.config.getoption("--require-backends"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_URL, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    name = await _create_database(request)
    try:
        yield _with_database(PG_URL, name)
    finally:
        await _drop_database(name)


def _store(url: str) -> Store:
    return open_store(Settings(database_url=url, jwt_secret=SECRET))


# PostgreSQL's partitioned tables: a primary key there must include the partition key, which
# tables.py (shared with SQLite) leaves out of the logical key.
PARTITION_KEYS = {"notifications": "created_at"}


def _partitions(conn: Connection) -> set[str]:
    """PostgreSQL's partitions (notifications_2026_01, notifications_default, ...): storage
    of a partitioned table, not tables of their own."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.exec_driver_sql("SELECT relname FROM pg_class WHERE relispartition").scalars())


def _schema(conn: Connection) -> dict[str, dict[str, Any]]:
    inspector = inspect(conn)
    schema: dict[str, dict[str, Any]] = {}
    partitions = _partitions(conn)
    for table in inspector.get_table_names():
        if table in partitions:
            continue
        primary_key = list(inspector.get_pk_constraint(table)["constrained_columns"])
        if conn.dialect.name == "postgresql" and table in PARTITION_KEYS:
            primary_key.remove(PARTITION_KEYS[table])
        columns = {}
        for column in inspector.get_columns(table):
            type_name = _type_name(conn, column["type"])
            nullable = column["nullable"] and not _is_rowid(conn, primary_key, column, type_name)
            columns[column["name"]] = (type_name, nullable)
        schema[table] = {"columns": columns, "primary_key": primary_key}
    return schema


def _is_rowid(conn: Connection, primary_key: list[str], column: Any, type_name: str) -> bool:
    """SQLite's INTEGER PRIMARY KEY aliases the rowid, which cannot be NULL, though SQLite
    reports the column nullable. (Any other SQLite primary key column does accept NULL unless
    it is declared NOT NULL.)"""
    sqlite = conn.dialect.name == "sqlite"
    return sqlite and primary_key == [column["name"]] and type_name == "INTEGER"


def _type_name(conn: Connection, column_type: Any) -> str:
    name = str(column_type.compile(dialect=conn.dialect))
    # SQLite has one integer storage class; BIGINT in tables.py is INTEGER on disk.
    return "INTEGER" if conn.dialect.name == "sqlite" and name == "BIGINT" else name


def _declared(conn: Connection) -> dict[str, dict[str, Any]]:
    return {
        table.name: {
            "columns": {
                column.name: (_type_name(conn, column.type), column.nullable)
                for column in table.columns
            },
            "primary_key": [column.name for column in table.primary_key.columns],
        }
        for table in metadata.sorted_tables
    }


def _engine_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    driver = "sqlite+aiosqlite" if scheme.startswith("sqlite") else "postgresql+asyncpg"
    return f"{driver}://{rest}"


async def test_migrations_create_exactly_the_tables_and_columns_of_tables_py(
    fresh_url: str,
) -> None:
    store = _store(fresh_url)
    try:
        assert await store.migrate() == ALL_MIGRATIONS
    finally:
        await store.aclose()

    engine = create_async_engine(_engine_url(fresh_url))
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(_schema)
            declared = await conn.run_sync(_declared)
    finally:
        await engine.dispose()

    assert set(found) - {"schema_migrations"} == set(declared)
    assert _differences(found, declared) == []


def _differences(
    found: dict[str, dict[str, Any]], declared: dict[str, dict[str, Any]]
) -> list[tuple[str, str, Any, Any]]:
    """(table, column or "primary key", found, declared) for every mismatch, to name them all."""
    differences = []
    for table, expected in declared.items():
        actual = found[table]
        if actual["primary_key"] != expected["primary_key"]:
            differences.append(
                (table, "primary key", actual["primary_key"], expected["primary_key"])
            )
        for column in sorted(set(actual["columns"]) | set(expected["columns"])):
            have, want = actual["columns"].get(column), expected["columns"].get(column)
            if have != want:
                differences.append((table, column, have, want))
    return differences


async def test_migrate_twice_applies_nothing_the_second_time(fresh_url: str) -> None:
    store = _store(fresh_url)
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        assert await store.migrate() == []
    finally:
        await store.aclose()
    reopened = _store(fresh_url)
    try:
        assert await reopened.migrate() == []
    finally:
        await reopened.aclose()


async def _migrate_concurrently(url: str, migrators: int) -> list[list[str]]:
    """Run `migrators` separate stores (as separate processes would) against `url` at once."""
    stores = [_store(url) for _ in range(migrators)]
    results: list[list[str]] = []

    async def migrate(store: Store) -> None:
        # Kept as a result, so one failure does not cancel the other migrators mid-flight.
        try:
            results.append(await store.migrate())
        except Exception as exc:
            results.append([f"{type(exc).__name__}: {exc}"])

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                for store in stores:
                    tasks.start_soon(migrate, store)
    finally:
        for store in stores:
            await store.aclose()
    return sorted(results)


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
async def test_concurrent_migrators_apply_each_migration_once_without_errors(
    fresh_url: str,
) -> None:
    assert await _migrate_concurrently(fresh_url, 4) == [[], [], [], ALL_MIGRATIONS]


async def test_concurrent_migrators_on_a_fresh_sqlite_file_never_fail(tmp_path: Path) -> None:
    """`herald migrate` next to a starting `herald serve` is the case sqlite.py's busy timeout
    is there for. The race is narrow, so it is run many times, each on a new file."""
    for attempt in range(80):
        url = f"sqlite:///{tmp_path}/fresh-{attempt}.db"
        results = await _migrate_concurrently(url, 4)
        assert results == [[], [], [], ALL_MIGRATIONS], f"attempt {attempt}: {results}"


def test_statements_split_on_semicolons_at_line_ends() -> None:
    sql = "CREATE TABLE a (x INTEGER);\nCREATE TABLE b (\n    y TEXT\n);\n\nSELECT 1;\n"

    assert statements(sql) == [
        "CREATE TABLE a (x INTEGER)",
        "CREATE TABLE b (\n    y TEXT\n)",
        "SELECT 1",
    ]


def test_statements_ignore_comment_lines_even_with_semicolons_in_them() -> None:
    sql = (
        "-- The first table;\n"
        "CREATE TABLE a (x INTEGER);\n"
        "    -- an indented comment; also ignored\n"
        "-- a comment ending the file;\n"
        "CREATE INDEX a_x ON a (x);\n"
        "-- trailing comment only\n"
    )

    assert statements(sql) == ["CREATE TABLE a (x INTEGER)", "CREATE INDEX a_x ON a (x)"]


def test_statements_of_a_comment_only_file_are_empty() -> None:
    assert statements("-- nothing to do;\n\n   -- still nothing\n") == []


def test_statements_split_even_when_a_comment_follows_the_semicolon() -> None:
    sql = "CREATE TABLE a (x INTEGER); -- issue 12\nCREATE TABLE b (y INTEGER);\n"

    split = statements(sql)

    assert len(split) == 2
    assert split[0].startswith("CREATE TABLE a (x INTEGER)")
    assert split[1] == "CREATE TABLE b (y INTEGER)"
