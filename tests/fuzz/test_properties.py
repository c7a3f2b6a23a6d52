"""Properties of what clients parse: cursors in, SSE and WebSocket frames out.

Cursors: every cursor Herald issues (`str(seq)`) parses back to its sequence number, and every
other string is refused with `InvalidCursor` (400 `invalid-cursor`), never a crash nor another
number. Frames: the JSON payloads Herald builds hold any text (newlines, CR, U+2028, NUL,
emoji), and each SSE frame, read by an EventSource-conforming parser written here from the
WHATWG rules, yields exactly its id, event and data, as one event; a WebSocket frame decodes to
the same fields. Generation is derandomized and the examples bounded, so CI runs the same cases
in a few seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import HTTPConnection

from herald_server import codec
from herald_server.core.params import MAX_DIGITS as MAX_CURSOR_DIGITS
from herald_server.core.params import parse_cursor
from herald_server.core.render import EVENT_NAMES, Frame
from herald_server.errors import InvalidCursor
from herald_server.streams import sse, ws
from herald_server.streams._connect import resume_cursor

# Deterministic and bounded: the same cases on every run, the whole file in a few seconds.
PROPERTY = settings(max_examples=300, deadline=None, database=None, derandomize=True)
# Frames cost more to draw (nested JSON), so fewer of them.
FRAME_PROPERTY = settings(PROPERTY, max_examples=150)
CURSOR = re.compile(rf"[0-9]{{1,{MAX_CURSOR_DIGITS}}}")
LARGEST_CURSOR = 10**MAX_CURSOR_DIGITS - 1

# --- cursors ---------------------------------------------------------------------------------

issued_cursors = st.integers(min_value=0, max_value=LARGEST_CURSOR)
# What a client may get wrong near a real cursor: signs, spaces, non-ASCII digits (Arabic-Indic,
# fullwidth U+FF10, superscript, Devanagari), int() literal syntax, NUL and line ends.
NEAR_MISSES = [
    "+", "-", " ", "\t", "\n", "\r\n", "\x00", "\x0b", "\xa0", "\u2028", "\ufeff",
    "٣", "\uff10", "²", "¹", "५", "_", ".", "e", "0x", "0b", "a", "%", "/", "\\",
]  # fmt: skip


def _is_cursor(raw: str) -> bool:
    return CURSOR.fullmatch(raw) is not None


@st.composite
def near_miss_cursors(draw: st.DrawFn) -> str:
    digits = draw(st.from_regex(rf"[0-9]{{0,{MAX_CURSOR_DIGITS}}}", fullmatch=True))
    at = draw(st.integers(min_value=0, max_value=len(digits)))
    miss = draw(st.sampled_from(NEAR_MISSES))
    return digits[:at] + miss + digits[at:]


not_cursors = st.one_of(
    near_miss_cursors(),
    st.text(min_size=1),
    st.from_regex(rf"[0-9]{{{MAX_CURSOR_DIGITS + 1},40}}", fullmatch=True),
).filter(lambda raw: not _is_cursor(raw))


@PROPERTY
@given(issued_cursors)
def test_every_issued_cursor_parses_back_to_its_sequence_number(seq: int) -> None:
    assert parse_cursor(str(seq)) == seq


@PROPERTY
@given(st.from_regex(CURSOR, fullmatch=True))
def test_every_string_of_ascii_digits_up_to_the_limit_is_its_decimal_value(raw: str) -> None:
    parsed = parse_cursor(raw)
    assert parsed == int(raw)
    # Both stores keep cursors in a signed 64-bit column.
    assert 0 <= parsed < 2**63


@PROPERTY
@given(not_cursors)
def test_every_other_string_is_refused_as_an_invalid_cursor(raw: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        parse_cursor(raw)
    assert refused.value.status == 400
    assert refused.value.slug == "invalid-cursor"


def test_an_absent_or_empty_cursor_means_from_the_start() -> None:
    """Empty is no cursor, not a bad one: EventSource never sends an empty Last-Event-ID (an
    `id:` line with no value clears it), and an HTML form sends `?after=` for a blank field."""
    assert parse_cursor(None) is None
    assert parse_cursor("") is None


def _connection(header: bytes | None, query: str | None) -> HTTPConnection:
    """The connection a stream handler sees, from the raw bytes a server hands to ASGI."""
    headers = [] if header is None else [(b"last-event-id", header)]
    query_string = b"" if query is None else urlencode({"last_event_id": query}).encode()
    return HTTPConnection({"type": "http", "headers": headers, "query_string": query_string})


def _expected(raw: str | None) -> int | type[InvalidCursor] | None:
    """The rule, stated independently of `parse_cursor`."""
    if raw is None or raw == "":
        return None
    return int(raw) if _is_cursor(raw) else InvalidCursor


def _resumed_or_refused(conn: HTTPConnection) -> int | type[InvalidCursor] | None:
    try:
        return resume_cursor(conn)
    except InvalidCursor:
        return InvalidCursor


# Header values as the bytes a client sends: Starlette decodes them as Latin-1, where ² and ¹
# are digits to str.isdigit() but not to int().
header_values = st.one_of(
    issued_cursors.map(lambda seq: str(seq).encode()),
    near_miss_cursors().map(lambda raw: raw.encode()),
    near_miss_cursors().map(lambda raw: raw.encode("latin-1", "replace")),
    st.binary(min_size=1, max_size=30),
)
query_values = st.one_of(issued_cursors.map(str), near_miss_cursors(), st.text())


@PROPERTY
@given(header_values)
def test_last_event_id_header_resumes_at_its_cursor_or_is_refused(header: bytes) -> None:
    expected = _expected(header.decode("latin-1"))
    assert _resumed_or_refused(_connection(header, None)) == expected


@PROPERTY
@given(query_values)
def test_last_event_id_query_parameter_resumes_at_its_cursor_or_is_refused(query: str) -> None:
    expected = _expected(query)
    assert _resumed_or_refused(_connection(None, query)) == expected


@PROPERTY
@given(issued_cursors, query_values)
def test_the_last_event_id_header_wins_over_the_query_parameter(seq: int, query: str) -> None:
    assert resume_cursor(_connection(str(seq).encode(), query)) == seq


# --- frames ----------------------------------------------------------------------------------

# Text that breaks naive framing: every line end SSE knows and those it does not (U+2028,
# NEL, vertical tab), NUL, BOM, quotes, backslashes, astral characters, and SSE syntax itself.
TRICKY = [
    "\n", "\r", "\r\n", "\n\n", "\r\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x00",
    "\ufeff", '"', "\\", "😀", "\U0010ffff", "\u0301", "data: x", "\n\nevent: evil\nid: 9\n\n",
    ": comment", "retry: 1", "}", "{",
]  # fmt: skip
# Lone surrogates are left out on purpose: Herald cannot hold them (see the test below).
text = st.lists(
    st.one_of(st.text(st.characters(codec="utf-8"), max_size=8), st.sampled_from(TRICKY)),
    max_size=6,
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
# The names Herald sends, and any other name of the same shape.
event_names = st.sampled_from(
    sorted({*EVENT_NAMES.values(), "notification", "unread_count", "reset", "token_expiring"})
) | st.from_regex(r"[a-z][a-z_]{0,30}", fullmatch=True)
frames = st.builds(
    Frame,
    event=event_names,
    data=json_values.map(codec.dumps_str),
    id=st.none() | issued_cursors.map(str),
)


@dataclass(frozen=True)
class Dispatched:
    """An event as EventSource hands it to the page: `type`, `data`, `lastEventId`."""

    type: str
    data: str
    last_event_id: str


LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(stream: str) -> list[str]:
    """Complete lines only: SSE ends lines with CRLF, LF or CR, and no other character."""
    return LINE_END.split(stream)[:-1]


def parse_event_stream(stream: bytes) -> list[Dispatched]:
    """The WHATWG HTML "event stream interpretation", minus reconnection (`retry`)."""
    decoded = stream.decode("utf-8").removeprefix("\ufeff")
    events: list[Dispatched] = []
    data, event_type, last_event_id = "", "", ""
    for line in _lines(decoded):
        if line == "":
            if data:
                events.append(Dispatched(event_type or "message", data[:-1], last_event_id))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data += value + "\n"
        elif field == "event":
            event_type = value
        elif field == "id" and "\x00" not in value:
            last_event_id = value
    # Whatever follows the last blank line is never dispatched.
    return events


@FRAME_PROPERTY
@given(json_values)
def test_herald_json_is_one_line_which_is_what_the_sse_encoder_relies_on(value: Any) -> None:
    encoded = codec.dumps_str(value)
    assert "\n" not in encoded
    assert "\r" not in encoded
    assert codec.loads(encoded) == value


@FRAME_PROPERTY
@given(frames)
def test_an_sse_frame_reads_back_as_exactly_one_event_with_its_fields(frame: Frame) -> None:
    encoded = sse.encode(frame)
    lines = _lines(encoded.decode("utf-8"))
    # One blank line, the last: nothing in the frame can end it early and start another.
    assert lines[-1] == ""
    assert all(lines[:-1])
    assert parse_event_stream(encoded) == [Dispatched(frame.event, frame.data, frame.id or "")]


@settings(PROPERTY, max_examples=50)
@given(st.lists(frames, max_size=6))
def test_consecutive_sse_frames_read_back_in_order_one_event_each(sent: list[Frame]) -> None:
    stream = b": herald\nretry: 3000\n\n" + b"".join(sse.encode(frame) for frame in sent)
    expected, last_event_id = [], ""
    for frame in sent:
        # A frame without an id keeps the stream's resume point, as EventSource does.
        last_event_id = frame.id if frame.id is not None else last_event_id
        expected.append(Dispatched(frame.event, frame.data, last_event_id))
    assert parse_event_stream(stream) == expected


@FRAME_PROPERTY
@given(frames)
def test_a_websocket_frame_decodes_to_its_fields(frame: Frame) -> None:
    encoded = ws.encode(frame)
    encoded.encode("utf-8")  # a text frame must be valid UTF-8
    # An independent decoder: the standard library's, not msgspec.
    decoded = json.loads(encoded)
    assert decoded == {"event": frame.event, "id": frame.id, "data": json.loads(frame.data)}
    assert list(decoded) == ["event", "id", "data"]


@FRAME_PROPERTY
@given(st.integers(min_value=0xD800, max_value=0xDFFF), text)
def test_lone_surrogates_never_reach_a_frame(surrogate: int, around: str) -> None:
    """They are the one `str` UTF-8 cannot carry: Herald's decoder refuses them in request
    bodies (400 `malformed-body`) and its encoder refuses to build a payload holding one."""
    escaped = json.dumps(around + chr(surrogate) + around)
    with pytest.raises(msgspec.DecodeError):
        codec.loads(escaped)
    with pytest.raises(UnicodeEncodeError):
        codec.dumps_str({"title": around + chr(surrogate)})
