"""Turn RevenueProjectionRequested records into RevenueProjected records (no Faust, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from processors.deadletter import OutgoingMessage, RawMessage
from processors.mapping import derived_envelope, map_batch
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
        """Map every usable record; dead-letter the rest with the reason."""
        out, projected, dead = map_batch(
            batch,
            codec=self._codec,
            input_type="RevenueProjectionRequested",
            output_topic=self._out_topic,
            transform=self.projected_event,
            processor=self.name,
        )
        return Outcome(out, projected, dead)

    def projected_event(self, request: Event) -> Event:
        """Build the RevenueProjected event for one RevenueProjectionRequested event."""
        env = request.envelope
        payload = project_revenue(request.payload)
        envelope = derived_envelope(
            env,
            event_id=projected_event_id(env.event_id),
            source=self.name,
            subject=str(payload["projection_id"]),
        )
        return Event(type="RevenueProjected", envelope=envelope, payload=payload)
