"""Typed events as code inside fairstream sees them; Avro never leaks past the codec."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events.tracecontext import TraceContext


@dataclass(frozen=True, slots=True)
class Envelope:
    """Carry the fields every event shares; `subject` is the aggregate id and the Kafka key.

    `trace` is not part of the Avro record: it travels in the `traceparent` / `tracestate`
    headers (events/tracecontext.py), and takes no part in equality, so an event decoded
    with its trace equals the one that was encoded.
    """

    event_id: uuid.UUID
    occurred_at: datetime
    source: str
    subject: str
    correlation_id: str | None = None
    causation_id: str | None = None
    trace: TraceContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def new(
        cls,
        *,
        source: str,
        subject: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        trace: TraceContext | None = None,
    ) -> Envelope:
        """Create an envelope with a fresh event id and the current time unless given.

        The current time is cut to milliseconds, the precision the Avro envelope
        carries, so a decoded event equals the one that was encoded.
        """
        if occurred_at is None:
            now = datetime.now(UTC)
            occurred_at = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        return cls(
            event_id=event_id or uuid.uuid4(),
            occurred_at=occurred_at,
            source=source,
            subject=subject,
            correlation_id=correlation_id,
            causation_id=causation_id,
            trace=trace,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """Hold one event: its type name (the Avro record name), envelope and payload.

    The payload holds the record's fields other than `envelope`, as Python values
    the way fastavro reads them (timestamp-millis as aware datetimes, enums as str).
    """

    type: str
    envelope: Envelope
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """Return the Kafka key: the envelope's subject."""
        return self.envelope.subject.encode("utf-8")
