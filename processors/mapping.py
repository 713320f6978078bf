"""Map each record of one event type to one record of another, dead-lettering what fails."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Envelope, Event
from events.tracecontext import TraceContext
from fairstream.logs import handling_event
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter

# Failures that make a single input unusable: bad bytes, a bad record, or values the domain
# formula refuses. They go to the dead-letter topic; the batch carries on.
UNUSABLE = (DecodeError, ValidationError, KeyError, ValueError, TypeError)


def decode_expected(codec: EventCodec, message: RawMessage, event_type: str) -> Event:
    """Decode a record that must hold `event_type`; raise DecodeError otherwise."""
    if message.value is None:
        raise DecodeError("message has no value (tombstone)")
    event = codec.decode(message.value, message.headers)
    if event.type != event_type:
        raise DecodeError(f"expected {event_type}, got {event.type}")
    return event


def derived_envelope(
    cause: Envelope, *, event_id: uuid.UUID, source: str, subject: str
) -> Envelope:
    """Return the envelope of an event caused by `cause`: same time, correlation and trace.

    The trace continues `cause`'s with a new span whose parent is `cause`'s span; a cause
    that arrived without a (valid) traceparent starts a new trace here.
    """
    return Envelope(
        event_id=event_id,
        occurred_at=cause.occurred_at,
        source=source,
        subject=subject,
        correlation_id=cause.correlation_id or str(cause.event_id),
        causation_id=str(cause.event_id),
        trace=derived_trace(cause),
    )


def derived_trace(cause: Envelope) -> TraceContext:
    """Return the span of work caused by `cause`: its child, or a new trace if it has none."""
    return cause.trace.child() if cause.trace is not None else TraceContext.new()


def map_batch(
    batch: Sequence[RawMessage],
    *,
    codec: EventCodec,
    input_type: str,
    output_topic: str,
    transform: Callable[[Event], Event],
    processor: str,
) -> tuple[list[OutgoingMessage], int, int]:
    """Transform every usable record; return the records to send, how many mapped, how many
    were dead-lettered."""
    out: list[OutgoingMessage] = []
    mapped = dead = 0
    for message in batch:
        try:
            event = decode_expected(codec, message, input_type)
            with handling_event(event):
                encoded = codec.encode(transform(event))
        except UNUSABLE as exc:
            reason, kind = str(exc), type(exc).__name__
            out.append(dead_letter(message, reason=reason, error_type=kind, processor=processor))
            dead += 1
            continue
        out.append(OutgoingMessage(output_topic, encoded.key, encoded.value, encoded.headers))
        mapped += 1
    return out, mapped, dead
