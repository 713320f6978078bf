"""Read and write events as NDJSON: one JSON form of an event per line.

A line holds the payload fields, optionally with an `"envelope"` object; missing
envelope fields are filled in by `events.jsonform.event_from_json`.

Bad input: `parse_ndjson` reads and validates every line before anything is sent; a line
that is not UTF-8, not JSON, not an object or not a valid event becomes a `LineError`
(`line N: field F: message`). `fairstream publish` then publishes nothing (or, with
`--skip-invalid`, only the valid lines) and reports delivery failures by line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from events.codec import EventCodec, ValidationError
from events.jsonform import event_from_json, event_to_json
from events.model import Event


@dataclass(frozen=True, slots=True)
class LineError:
    """Say why one input line is not a valid event."""

    line: int
    field: str | None
    message: str

    def describe(self) -> str:
        """Render the error as `line N: field F: message`."""
        where = f"line {self.line}"
        if self.field:
            where += f": field {self.field}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """Pair a valid event with the line it came from."""

    line: int
    event: Event


@dataclass(slots=True)
class NdjsonBatch:
    """Hold the outcome of reading NDJSON: valid events and per-line errors."""

    read: int = 0
    events: list[ParsedLine] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def valid(self) -> int:
        """Return how many lines held a valid event."""
        return len(self.events)

    @property
    def invalid(self) -> int:
        """Return how many lines were rejected."""
        return len(self.errors)


def parse_line(
    text: str,
    event_type: str,
    *,
    line: int,
    source: str,
    codec: EventCodec,
    correlation_id: str | None = None,
) -> Event | LineError:
    """Turn one NDJSON line into a validated event, or say which field is wrong."""
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return LineError(line, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(obj, dict):
        return LineError(line, None, f"expected a JSON object, got {type(obj).__name__}")
    envelope = obj.get("envelope")
    # An explicit null correlation id (as `generate` writes) still takes the default.
    if (
        correlation_id is not None
        and isinstance(envelope, dict)
        and envelope.get("correlation_id") is None
    ):
        obj["envelope"] = {k: v for k, v in envelope.items() if k != "correlation_id"}
    try:
        event = event_from_json(event_type, obj, source=source, correlation_id=correlation_id)
        codec.validate(event)
    except ValidationError as exc:
        return LineError(line, exc.field or None, exc.message)
    except (KeyError, TypeError, ValueError) as exc:
        return LineError(line, None, f"{type(exc).__name__}: {exc}")
    return event


def parse_ndjson(
    lines: Iterable[str | bytes],
    event_type: str,
    *,
    source: str,
    codec: EventCodec | None = None,
    correlation_id: str | None = None,
) -> NdjsonBatch:
    """Validate every non-blank line; blank lines are skipped but keep their line numbers.

    Lines given as bytes are decoded one by one, so a line that is not UTF-8 is reported
    with its number instead of stopping the whole read.
    """
    codec = codec or EventCodec()
    batch = NdjsonBatch()
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                batch.read += 1
                bad = raw[exc.start : exc.start + 1].hex()
                message = f"not UTF-8: byte 0x{bad} at column {exc.start + 1}"
                batch.errors.append(LineError(number, None, message))
                continue
        else:
            text = raw
        if not text.strip():
            continue
        batch.read += 1
        result = parse_line(
            text,
            event_type,
            line=number,
            source=source,
            codec=codec,
            correlation_id=correlation_id,
        )
        if isinstance(result, LineError):
            batch.errors.append(result)
        else:
            batch.events.append(ParsedLine(number, result))
    return batch


def event_line(event: Event) -> str:
    """Render one event as a compact NDJSON line (without the newline)."""
    return json.dumps(event_to_json(event), separators=(",", ":"), ensure_ascii=False)


def write_ndjson(events: Iterable[Event], out: TextIO) -> int:
    """Write events one per line and return how many were written."""
    count = 0
    for event in events:
        out.write(event_line(event) + "\n")
        count += 1
    return count


def iter_lines(stream: TextIO) -> Iterator[str | bytes]:
    """Yield lines without their line endings.

    A stream with an underlying binary buffer (a file, standard input) is read as bytes, so
    that `parse_ndjson` can report a line that is not UTF-8 by its number.
    """
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        for data in buffer:
            yield data.removesuffix(b"\n").removesuffix(b"\r")
        return
    for raw in stream:
        yield raw.rstrip("\r\n")
