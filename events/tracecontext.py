"""W3C Trace Context (https://www.w3.org/TR/trace-context/) for Kafka record headers.

A record carries `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`)
and, if the caller had one, `tracestate` (vendor data, passed through untouched). The
parent id in a record's header is the span that produced the record: the publisher's
span, or the processing span of the processor that derived it. A processor handling a
record starts a child span (same trace id, new span id, the record's span as parent) and
writes the child's id into every record it derives from that input.

Parsing follows the spec's rules for version 00: lowercase hex only, no all-zero trace
or parent id, version `ff` is invalid. A later version (01..fe) is accepted if it starts
with a valid version-00 prefix followed by nothing or `-<more>`. An invalid header is
treated as absent (the spec says to start a new trace), never as a reason to reject the
record.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "TraceContext",
    "from_headers",
    "parse_traceparent",
    "parse_tracestate",
]

TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
SAMPLED: Final = 0x01
TRACESTATE_MAX_LENGTH: Final = 512
TRACESTATE_MAX_MEMBERS: Final = 32

_VERSION_00 = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Hold one record's trace position: trace id, its span id, flags, and tracestate.

    `parent_id` is the span this one continues (None for a trace root); it is not on the
    wire, where `span_id` becomes the next hop's parent id, but logs show it.
    """

    trace_id: str
    span_id: str
    flags: int = SAMPLED
    tracestate: str | None = None
    parent_id: str | None = None

    @classmethod
    def new(cls) -> TraceContext:
        """Start a new trace: a random trace id and root span id, sampled."""
        return cls(trace_id=_random_hex(128), span_id=_random_hex(64))

    def child(self) -> TraceContext:
        """Return a new span in this trace whose parent is this span; flags and state kept."""
        return TraceContext(
            trace_id=self.trace_id,
            span_id=_random_hex(64),
            flags=self.flags,
            tracestate=self.tracestate,
            parent_id=self.span_id,
        )

    @property
    def traceparent(self) -> str:
        """Return the version-00 `traceparent` header value for this span."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    @property
    def sampled(self) -> bool:
        """Tell whether the caller asked for this trace to be recorded."""
        return bool(self.flags & SAMPLED)

    def headers(self) -> list[tuple[str, bytes]]:
        """Return the Kafka headers that carry this span: traceparent, tracestate if any."""
        out = [(TRACEPARENT_HEADER, self.traceparent.encode("ascii"))]
        if self.tracestate:
            out.append((TRACESTATE_HEADER, self.tracestate.encode("ascii")))
        return out


def parse_traceparent(value: str | bytes, tracestate: str | bytes | None = None) -> TraceContext:
    """Parse a `traceparent` value (and optional `tracestate`); raise ValueError if invalid.

    Surrounding whitespace is ignored; hex digits must be lowercase, as the spec says.
    """
    text = _text(value).strip()
    match = _VERSION_00.match(text)
    if match is None:
        raise ValueError(f"not a W3C traceparent: {text!r}")
    version, trace_id, span_id, flags = match.groups()
    rest = text[match.end() :]
    if version == "ff":
        raise ValueError(f"traceparent version ff is invalid: {text!r}")
    if version == "00" and rest:
        raise ValueError(f"version-00 traceparent has trailing data: {text!r}")
    if rest and not rest.startswith("-"):
        raise ValueError(f"traceparent of version {version} is malformed: {text!r}")
    if trace_id == _ZERO_TRACE:
        raise ValueError(f"traceparent has an all-zero trace id: {text!r}")
    if span_id == _ZERO_SPAN:
        raise ValueError(f"traceparent has an all-zero parent id: {text!r}")
    return TraceContext(
        trace_id=trace_id,
        span_id=span_id,
        flags=int(flags, 16),
        tracestate=parse_tracestate(tracestate),
    )


def parse_tracestate(value: str | bytes | None) -> str | None:
    """Return a `tracestate` value fit to pass on, or None if absent or unusable.

    Only the shape is checked (printable ASCII, at most 512 characters and 32 members);
    the members belong to other vendors and are passed through as they are.
    """
    if value is None:
        return None
    try:
        text = _text(value).strip()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > TRACESTATE_MAX_LENGTH or not text.isprintable():
        return None
    members = [m for m in text.split(",") if m.strip()]
    if not members or len(members) > TRACESTATE_MAX_MEMBERS or any("=" not in m for m in members):
        return None
    return text


def from_headers(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
) -> TraceContext | None:
    """Return the trace context in Kafka headers, or None if absent or invalid."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    parent: bytes | str | None = None
    state: bytes | str | None = None
    for name, raw in items:
        if name == TRACEPARENT_HEADER and parent is None:
            parent = raw
        elif name == TRACESTATE_HEADER and state is None:
            state = raw
    if parent is None:
        return None
    try:
        return parse_traceparent(parent, state)
    except (ValueError, UnicodeDecodeError):
        return None


def _text(value: str | bytes) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _random_hex(bits: int) -> str:
    # Ids need to be unique, not secret: the random module (as OpenTelemetry's SDK uses)
    # costs half of a urandom call, on a path taken for every derived record.
    while True:
        value = random.getrandbits(bits)
        if value:
            return f"{value:0{bits // 4}x}"
