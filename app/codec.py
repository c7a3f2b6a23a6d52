"""JSON in and out, through msgspec: one encoder, reused, so hot paths never rebuild it."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def dumps(obj: Any) -> bytes:
    return _encoder.encode(obj)


def dumps_str(obj: Any) -> str:
    return _encoder.encode(obj).decode()


def loads(raw: bytes | str) -> Any:
    return msgspec.json.decode(raw)
