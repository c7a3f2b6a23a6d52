"""Logging: one JSON object per line in production (text in development), each with the id of
the request it belongs to.

What is logged is chosen, not dumped: the access log names the method, the path without its
query string (stream tokens travel there), the status and the duration; nothing logs a token,
a header or a body. uvicorn's own access log, which prints query strings, is turned off; its
WebSocket lines (`"WebSocket /api/ws?token=…" 101`, and at debug level the handshake's headers)
cannot be, so `TokenRedactor` rewrites every `token=` and `Bearer` value on uvicorn's and
Herald's loggers, where records are made, and on the handler, for any other logger's record.
"""

from __future__ import annotations

import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from herald_server import codec

# The id of the request being served, for every log line written while serving it.
REQUEST_ID: ContextVar[str | None] = ContextVar("herald_request_id", default=None)
# Structured fields a log call may pass in `extra`, copied into the JSON object by name.
FIELDS = ("http", "audit", "delivery")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for name in FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return codec.dumps_str(entry)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


# `token=<value>` in a query string (as a URL, a repr of bytes or a quoted line shows it), and
# `Bearer <value>` in a header line (websockets logs a handshake's headers at debug level).
_TOKEN_VALUE = re.compile(r"(token=|bearer\s+)[^&\s'\"]+", re.IGNORECASE)
REDACTED = "[redacted]"
# The loggers that write request URLs: uvicorn's (WebSocket handshakes, ASGI traces) and ours.
URL_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "herald", "app")


class TokenRedactor(logging.Filter):
    """Replaces every `token=` and `Bearer` value in a record's message, so a token in a URL
    or a header never reaches a log line, whichever handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: the handler reports it as it would have
        lowered = message.lower()
        if "token=" in lowered or "bearer" in lowered:
            record.msg = _TOKEN_VALUE.sub(r"\1" + REDACTED, message)
            record.args = None
        return True


_REDACTOR = TokenRedactor()


def redact_tokens() -> None:
    """Install the redactor on the loggers that write URLs (once), whatever their handlers:
    uvicorn's dictConfig keeps a logger's filters."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for Herald and uvicorn alike: `fmt` is "json" or "text"."""
    text = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "redact_tokens": {"()": TokenRedactor},
        },
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"format": text},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": fmt,
                "filters": ["request_id", "redact_tokens"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure(level: str, fmt: str) -> None:
    redact_tokens()
    logging.config.dictConfig(logging_config(level, fmt))
