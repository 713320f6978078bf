"""Turn NicheResearched records into OpportunityScored records (no Faust, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from processors.deadletter import OutgoingMessage, RawMessage
from processors.mapping import derived_envelope, map_batch
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
        """Map every usable record; dead-letter the rest with the reason."""
        out, scored, dead = map_batch(
            batch,
            codec=self._codec,
            input_type="NicheResearched",
            output_topic=self._out_topic,
            transform=self.scored_event,
            processor=self.name,
        )
        return Outcome(out, scored, dead)

    def scored_event(self, niche: Event) -> Event:
        """Build the OpportunityScored event for one NicheResearched event."""
        env = niche.envelope
        payload = score_niche(niche.payload, opportunity_id_for(env.event_id))
        envelope = derived_envelope(
            env,
            event_id=scored_event_id(env.event_id),
            source=self.name,
            subject=str(payload["niche_id"]),
        )
        return Event(type="OpportunityScored", envelope=envelope, payload=payload)
