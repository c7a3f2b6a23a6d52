"""JSON in and out, through msgspec: one encoder, reused, so hot paths never rebuild it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
# The deepest nesting Herald ever takes in or serves: msgspec recurses once per level against
# Python's recursion limit (1000), shared with whatever stack lies below the call, so a
# document near that limit decodes in one place and fails in another, deeper one.
MAX_DEPTH = 256
_CONTAINERS = (dict, list, tuple, msgspec.Struct)


def dumps(obj: Any) -> bytes:
    return _encoder.encode(obj)


def dumps_str(obj: Any) -> str:
    return _encoder.encode(obj).decode()


def loads(raw: bytes | str) -> Any:
    return msgspec.json.decode(raw)


def nests_deeper_than(raw: bytes | str, value: Any, limit: int) -> bool:
    """Whether `value`, decoded from `raw`, nests containers more than `limit` deep (`{}` is
    1 deep, a Struct counts as an object). Text with no more brackets than `limit` cannot,
    which spares the walk for nearly every document."""
    text = raw if isinstance(raw, bytes) else raw.encode()
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    level = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(limit):
        level = [
            child
            for parent in level
            for child in _members(parent)
            if isinstance(child, _CONTAINERS)
        ]
        if not level:
            return False
    return True


def _members(parent: Any) -> Iterable[Any]:
    if isinstance(parent, dict):
        return parent.values()
    if isinstance(parent, msgspec.Struct):
        return msgspec.structs.astuple(parent)
    assert isinstance(parent, list | tuple)
    return parent
