"""Route a message that cannot be processed to its topic's dead-letter topic.

The dead-letter record keeps the original headers, except that its `traceparent` is a
child span of the original's (same trace id, new span id), or a new trace if the original
had none, so the failure can be found from the trace the input belonged to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from events.catalog import dlq_topic
from events.tracecontext import TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext, from_headers


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Hold one consumed Kafka record as bytes, with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Hold one record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def dead_letter(
    message: RawMessage, *, reason: str, error_type: str, processor: str
) -> OutgoingMessage:
    """Build the dead-letter record: the original bytes, the reason in the headers."""
    received = from_headers(message.headers)
    trace = received.child() if received is not None else TraceContext.new()
    headers = [
        (k, v)
        for k, v in message.headers
        if not k.startswith("dlq_") and k not in (TRACEPARENT_HEADER, TRACESTATE_HEADER)
    ]
    headers += trace.headers()
    headers += [
        ("dlq_reason", reason.encode("utf-8")[:4096]),
        ("dlq_error_type", error_type.encode("utf-8")),
        ("dlq_processor", processor.encode("utf-8")),
        ("dlq_source_topic", message.topic.encode("utf-8")),
        ("dlq_source_partition", str(message.partition).encode("ascii")),
        ("dlq_source_offset", str(message.offset).encode("ascii")),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode("ascii")),
    ]
    return OutgoingMessage(
        topic=dlq_topic(message.topic),
        key=message.key,
        value=message.value,
        headers=headers,
    )
