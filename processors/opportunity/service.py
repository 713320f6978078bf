"""Turn NicheResearched records into OpportunityScored records (no Faust, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from events.catalog import topic_name
from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Envelope, Event
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter
from processors.opportunity.domain import score_niche

# uuid5(namespace, input event id): a re-delivered NicheResearched yields the same ids.
OPPORTUNITY_NAMESPACE = uuid.UUID("8f0b6a52-3c1d-5e7a-9b4f-2d6e1a0c7b31")


def scored_event_id(input_event_id: uuid.UUID) -> uuid.UUID:
    """Derive OpportunityScored's event id from the NicheResearched event id."""
    return uuid.uuid5(OPPORTUNITY_NAMESPACE, str(input_event_id))


def opportunity_id_for(input_event_id: uuid.UUID) -> str:
    """Derive the opportunity assessment id from the NicheResearched event id."""
    return "opp-" + uuid.uuid5(OPPORTUNITY_NAMESPACE, f"{input_event_id}/opportunity").hex[:12]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Hold what a batch produced: records to send and counts per outcome."""

    messages: list[OutgoingMessage]
    scored: int
    dead_lettered: int


class OpportunityScoringService:
    """Score researched niches with the domain's weighted formula."""

    name = "opportunity-scorer"

    def __init__(self, codec: EventCodec, *, topic_prefix: str = "") -> None:
        self._codec = codec
        self.source_topic = topic_name("NicheResearched", topic_prefix)
        self._out_topic = topic_name("OpportunityScored", topic_prefix)

    def handle_batch(self, batch: Sequence[RawMessage]) -> Outcome:
        """Score every decodable record; dead-letter the rest."""
        out: list[OutgoingMessage] = []
        scored = dead = 0
        for message in batch:
            try:
                event = self._decode(message)
                result = self.scored_event(event)
                encoded = self._codec.encode(result)
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
            scored += 1
        return Outcome(out, scored, dead)

    def scored_event(self, niche: Event) -> Event:
        """Build the OpportunityScored event for one NicheResearched event."""
        env = niche.envelope
        payload = score_niche(niche.payload, opportunity_id_for(env.event_id))
        envelope = Envelope(
            event_id=scored_event_id(env.event_id),
            occurred_at=env.occurred_at,
            source=self.name,
            subject=str(payload["niche_id"]),
            correlation_id=env.correlation_id or str(env.event_id),
            causation_id=str(env.event_id),
        )
        return Event(type="OpportunityScored", envelope=envelope, payload=payload)

    def _decode(self, message: RawMessage) -> Event:
        if message.value is None:
            raise DecodeError("message has no value (tombstone)")
        event = self._codec.decode(message.value, message.headers)
        if event.type != "NicheResearched":
            raise DecodeError(f"expected NicheResearched, got {event.type}")
        return event
