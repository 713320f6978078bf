"""Turn RevenueProjectionRequested records into RevenueProjected records (no Faust, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from events.catalog import topic_name
from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Envelope, Event
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter
from processors.revenue.domain import project_revenue

# uuid5(namespace, input event id): a re-delivered request yields the same RevenueProjected id.
REVENUE_NAMESPACE = uuid.UUID("2b7e9c14-6d3a-5f80-8e1b-4c9a0d7f3e62")


def projected_event_id(input_event_id: uuid.UUID) -> uuid.UUID:
    """Derive RevenueProjected's event id from the request's event id."""
    return uuid.uuid5(REVENUE_NAMESPACE, str(input_event_id))


@dataclass(frozen=True, slots=True)
class Outcome:
    """Hold what a batch produced: records to send and counts per outcome."""

    messages: list[OutgoingMessage]
    projected: int
    dead_lettered: int


class RevenueProjectionService:
    """Project revenue for each request with the domain's month-by-month model."""

    name = "revenue-projector"

    def __init__(self, codec: EventCodec, *, topic_prefix: str = "") -> None:
        self._codec = codec
        self.source_topic = topic_name("RevenueProjectionRequested", topic_prefix)
        self._out_topic = topic_name("RevenueProjected", topic_prefix)

    def handle_batch(self, batch: Sequence[RawMessage]) -> Outcome:
        """Project every decodable, valid request; dead-letter the rest with the reason."""
        out: list[OutgoingMessage] = []
        projected = dead = 0
        for message in batch:
            try:
                event = self._decode(message)
                encoded = self._codec.encode(self.projected_event(event))
            except (DecodeError, ValidationError, KeyError, ValueError, TypeError) as exc:
                out.append(
                    dead_letter(
                        message, reason=str(exc), error_type=type(exc).__name__, processor=self.name
                    )
                )
                dead += 1
                continue
            out.append(
                OutgoingMessage(self._out_topic, encoded.key, encoded.value, encoded.headers)
            )
            projected += 1
        return Outcome(out, projected, dead)

    def projected_event(self, request: Event) -> Event:
        """Build the RevenueProjected event for one RevenueProjectionRequested event."""
        env = request.envelope
        payload = project_revenue(request.payload)
        envelope = Envelope(
            event_id=projected_event_id(env.event_id),
            occurred_at=env.occurred_at,
            source=self.name,
            subject=str(payload["projection_id"]),
            correlation_id=env.correlation_id or str(env.event_id),
            causation_id=str(env.event_id),
        )
        return Event(type="RevenueProjected", envelope=envelope, payload=payload)

    def _decode(self, message: RawMessage) -> Event:
        if message.value is None:
            raise DecodeError("message has no value (tombstone)")
        event = self._codec.decode(message.value, message.headers)
        if event.type != "RevenueProjectionRequested":
            raise DecodeError(f"expected RevenueProjectionRequested, got {event.type}")
        return event
