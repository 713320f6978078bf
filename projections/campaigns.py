"""Project campaigns into documents: the plan, the bias score of each item, the verdict."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from events.model import Event
from projections.documents import (
    DocumentChange,
    DocumentStore,
    apply_changes,
    escape_key,
    iso_time,
    order_key,
    plain,
)
from projections.runner import Position

COLLECTION = "campaigns"


class CampaignsProjection:
    """Keep one document per campaign with nested channels, items, scores and screening."""

    name: str = "campaigns"
    event_types: tuple[str, ...] = ("CampaignPlanned", "BiasScored", "CampaignScreened")
    indexes: ClassVar[Mapping[str, Sequence[str]]] = {
        COLLECTION: ("status", "opportunity_id", "verdict", "start_date", "updated_at")
    }

    def __init__(self, *, store_raw_text: bool = False) -> None:
        self._store_raw_text = store_raw_text

    async def apply(self, store: DocumentStore, event: Event, position: Position) -> None:
        """Apply the plan, an item's score (events with a campaign_id only) or the verdict."""
        await apply_changes(store, self.changes(event, position))

    def changes(self, event: Event, position: Position) -> list[DocumentChange]:
        """Return the change of the plan, an item's score or the verdict (if any)."""
        p = event.payload
        at = iso_time(event.envelope.occurred_at)
        event_id = str(event.envelope.event_id)
        fields: dict[str, Any]
        newest: dict[str, Any] = {}
        if event.type == "CampaignPlanned":
            fields = self._plan(event)
        elif event.type == "BiasScored":
            if not p.get("campaign_id"):
                return []
            # Two paths score each item: the newest score wins, whatever the arrival order.
            fields = {}
            newest[f"item_scores.{escape_key(p['content_id'])}"] = [
                order_key(event.envelope.occurred_at, event_id),
                {
                    "content_id": p["content_id"],
                    "overall_score": float(p["overall_score"]),
                    "confidence": float(p["confidence"]),
                    "level": p["level"],
                    "model_version": p["model_version"],
                    "dimensions": [
                        {"dimension": d["dimension"], "score": float(d["score"])}
                        for d in p["dimensions"]
                    ],
                    "scored_at": at,
                },
            ]
        elif event.type == "CampaignScreened":
            screening = {
                "verdict": p["verdict"],
                "flagged_items": plain(list(p["flagged_items"])),
                "items_total": int(p["items_total"]),
                "items_scored": int(p["items_scored"]),
                "items_flagged": int(p["items_flagged"]),
                "model_version": p.get("model_version"),
                "screened_at": at,
            }
            fields = {"screening": screening, "verdict": p["verdict"], "screened_at": at}
        else:
            return []
        campaign_id = p["campaign_id"]
        fields.update(campaign_id=campaign_id, updated_at=at)
        update: dict[str, Any] = {"$set": fields, "$inc": {"events_applied": 1}}
        if newest:
            update["$setIfNewer"] = newest
        return [DocumentChange(COLLECTION, campaign_id, position, update, event_id)]

    def _plan(self, event: Event) -> dict[str, Any]:
        p = event.payload
        channels = []
        items_total = 0
        for channel in p["channels"]:
            items = []
            for item in channel["items"]:
                text = item["text"]
                kept: dict[str, Any] = {
                    "content_id": item["content_id"],
                    "item_type": item["item_type"],
                    "publish_date": plain(item["publish_date"]),
                    "status": item["status"],
                    "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    "text_length": len(text),
                }
                if self._store_raw_text:
                    kept["text"] = text
                items.append(kept)
            items_total += len(items)
            channels.append(
                {
                    "channel": channel["channel"],
                    "budget_share": float(channel["budget_share"]),
                    "items": items,
                }
            )
        return {
            "opportunity_id": p["opportunity_id"],
            "name": p["name"],
            "status": p["status"],
            "start_date": plain(p["start_date"]),
            "end_date": plain(p["end_date"]),
            "channels": channels,
            "items_total": items_total,
            "budget": plain(p["budget"]),
            "target_metrics": plain(p["target_metrics"]),
            "planned_at": iso_time(event.envelope.occurred_at),
        }
