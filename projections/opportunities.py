"""Project niches and their opportunity scores into one document per niche."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from events.model import Event
from projections.documents import (
    DocumentChange,
    DocumentStore,
    apply_changes,
    iso_time,
    plain,
)
from projections.runner import Position

COLLECTION = "opportunities"


class OpportunitiesProjection:
    """Keep the researched niche and its latest opportunity score together."""

    name: str = "opportunities"
    event_types: tuple[str, ...] = ("NicheResearched", "OpportunityScored")
    indexes: ClassVar[Mapping[str, Sequence[str]]] = {
        COLLECTION: ("band", "overall_score", "opportunity_id", "market_segment", "updated_at")
    }

    async def apply(self, store: DocumentStore, event: Event, position: Position) -> None:
        """Set the research or the score fields of the niche's document."""
        await apply_changes(store, self.changes(event, position))

    def changes(self, event: Event, position: Position) -> list[DocumentChange]:
        """Return the change setting the research or the score fields of the niche."""
        p = event.payload
        at = iso_time(event.envelope.occurred_at)
        fields: dict[str, Any]
        if event.type == "NicheResearched":
            fields = {
                "name": p["name"],
                "market_segment": p.get("market_segment"),
                "description": p["description"],
                "market_size": p["market_size"],
                "growth_rate": p["growth_rate"],
                "competition": p["competition"],
                "problems": plain(list(p["problems"])),
                "solution_feasibility": float(p["solution_feasibility"]),
                "monetization_potential": float(p["monetization_potential"]),
                "keywords": list(p["keywords"]),
                "researched_at": at,
            }
        elif event.type == "OpportunityScored":
            fields = {
                "opportunity_id": p["opportunity_id"],
                "factors": plain(p["factors"]),
                "weights": plain(p["weights"]),
                "overall_score": float(p["overall_score"]),
                "band": p["band"],
                "scored_at": at,
            }
        else:
            return []
        fields.update(niche_id=p["niche_id"], updated_at=at)
        update = {"$set": fields, "$inc": {"events_applied": 1}}
        event_id = str(event.envelope.event_id)
        return [DocumentChange(COLLECTION, p["niche_id"], position, update, event_id)]
