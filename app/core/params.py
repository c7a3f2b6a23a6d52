"""The one parser for numbers a client sends as text: ids, cursors and limits, alike for REST,
SSE and WebSocket.

A number is 1 to 18 ASCII digits: `str.isdigit` alone also passes "²" and other digits that
`int` refuses, and 18 digits always fit the stores' signed 64-bit columns.
"""

from __future__ import annotations

from herald_server.errors import InvalidCursor, InvalidParameter, NotFound

MAX_DIGITS = 18


def whole_number(raw: object) -> int | None:
    """`raw` as a number when it is 1 to 18 ASCII digits; None for anything else."""
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_DIGITS:
        return None
    if not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def parse_cursor(raw: str | None) -> int | None:
    """A cursor from a query, header or body; absent or empty means none."""
    if raw is None or raw == "":
        return None
    cursor = whole_number(raw)
    if cursor is None:
        raise InvalidCursor(f"{raw[:40]!r} is not a cursor")
    return cursor


def parse_id(raw: object, what: str = "notification") -> int:
    """An id a client names; a malformed one names nothing, so it is simply not found."""
    found = whole_number(raw)
    if found is None:
        raise NotFound(f"{what} {str(raw)[:40]!r} not found")
    return found


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """A page size from 1 to `maximum`; absent means `default`."""
    if raw is None:
        return default
    limit = whole_number(raw)
    if limit is None or not 1 <= limit <= maximum:
        raise InvalidParameter(f"limit must be a whole number from 1 to {maximum}")
    return limit
