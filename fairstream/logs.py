"""Structured logs for every fairstream service: one formatter, event context, redaction.

`configure_logging` installs one handler on the root logger. With `json` (the default for
services) each record is one JSON object on one line:

    {"timestamp": "2026-01-01T12:00:00.123Z", "level": "INFO", "logger": "projections.runner",
     "message": "...", "service": "projection-bias-results", "event_id": "...",
     "correlation_id": "...", "trace_id": "...", "span_id": "..."}

The event fields appear while a processor or projection handles an event or a batch
(`handling_event`, `handling_batch`). For a batch they are those of the batch's *last*
event (the one whose position the batch commits), plus `first_event_id` and `batch_size`,
so a line can be found from either end of the batch; per-event lines are logged at DEBUG.

Every handler gets a `RedactingFilter`: passwords in URLs/DSNs, `password=`/`api_key=`/
`token=`-style pairs, bearer tokens, fairstream API keys (`fs_<id>_<secret>`) and the
configured secret values themselves are replaced by `***` before anything is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from events.model import Event

__all__ = [
    "EVENT_FIELDS",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "event_fields",
    "handling_batch",
    "handling_event",
    "log_batch",
    "redact",
    "url_password",
]

FORMATS: Final = ("json", "text")
REDACTED: Final = "***"
EVENT_FIELDS: Final = (
    "event_id",
    "correlation_id",
    "trace_id",
    "span_id",
    "first_event_id",
    "batch_size",
)

_context: contextvars.ContextVar[Mapping[str, str | int] | None] = contextvars.ContextVar(
    "fairstream_log_context", default=None
)

_SECRET_KEYS = (
    r"password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|token"
    r"|sasl[._]password|sasl[._]jaas[._]config|authorization|credentials?"
)
_PATTERNS: Final = (
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)"), rf"\1{REDACTED}\3"),
    # Authorization: Bearer <token> / Basic <b64>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # key=value, key: value, "key": "value", key="value" (JAAS config, libpq keywords);
    # a number of up to 3 digits is left alone (`api_key=3` in Kafka's protocol debug lines)
    (
        re.compile(
            rf"(?i)([\"']?\b[\w.-]*(?:{_SECRET_KEYS})[\"']?\s*[=:]\s*)([\"']?)"
            r"(?![0-9]{1,3}\b)([^\s\"',;&}]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
    # fairstream API keys: fs_<16 hex>_<urlsafe secret>
    (re.compile(r"\bfs_[0-9a-f]{16}_[A-Za-z0-9_-]{16,}"), f"fs_{REDACTED}"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with known secret values and secret-looking values replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def url_password(url: str | None) -> str | None:
    """Return the password in a URL or DSN's user-info, or None."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class RedactingFilter(logging.Filter):
    """Rewrite each record's message and traceback so no secret reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's formatted message and exception text with redacted ones."""
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, service, event ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        data: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        context = _context.get()
        if context:
            data.update(context)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Format a record as a human line, the event ids appended in brackets."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the classic line plus ` [event_id=... trace_id=...]` when handling an event."""
        line = super().format(record)
        context = _context.get()
        if not context:
            return line
        pairs = " ".join(f"{k}={v}" for k, v in context.items())
        head, sep, tail = line.partition("\n")
        return f"{head} [{pairs}]{sep}{tail}"


def configure_logging(
    *,
    service: str,
    fmt: str = "json",
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to one stream handler with the chosen format; return it.

    Replaces the root logger's handlers, so call it once, in the composition root.
    """
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def event_fields(event: Event) -> dict[str, str | int]:
    """Return the log fields of one event: its id, correlation, trace and span ids.

    An event without a correlation id starts its own correlation (as derived events do),
    so `correlation_id` falls back to the event id. `span_id` is the span of the record as
    it arrived (its traceparent's parent id).
    """
    envelope = event.envelope
    fields: dict[str, str | int] = {
        "event_id": str(envelope.event_id),
        "correlation_id": envelope.correlation_id or str(envelope.event_id),
    }
    if envelope.trace is not None:
        fields["trace_id"] = envelope.trace.trace_id
        fields["span_id"] = envelope.trace.span_id
    return fields


@contextlib.contextmanager
def handling_event(event: Event) -> Iterator[None]:
    """Tag every record logged inside the block with `event`'s ids."""
    token = _context.set(event_fields(event))
    try:
        yield
    finally:
        _context.reset(token)


@contextlib.contextmanager
def handling_batch(events: Sequence[Event]) -> Iterator[None]:
    """Tag records logged inside the block with the batch's last event, its first, its size."""
    if not events:
        yield
        return
    fields = event_fields(events[-1])
    fields["first_event_id"] = str(events[0].envelope.event_id)
    fields["batch_size"] = len(events)
    token = _context.set(fields)
    try:
        yield
    finally:
        _context.reset(token)


def log_batch(logger: logging.Logger, events: Sequence[Event], msg: str, *args: object) -> None:
    """Log `msg` at INFO in the batch's context and, at DEBUG, one line per event."""
    if logger.isEnabledFor(logging.DEBUG):
        for event in events:
            with handling_event(event):
                logger.debug("handled %s %s", event.type, event.envelope.event_id)
    with handling_batch(events):
        logger.info(msg, *args)
