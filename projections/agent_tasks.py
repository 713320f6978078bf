"""Project AgentTaskCompleted into one document per agent task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from events.model import Event
from projections.documents import (
    DocumentChange,
    DocumentStore,
    apply_changes,
    iso_time,
    plain,
)
from projections.runner import Position

COLLECTION = "agent_tasks"


class AgentTasksProjection:
    """Keep the latest outcome of every agent task with its steps."""

    name: str = "agent-tasks"
    event_types: tuple[str, ...] = ("AgentTaskCompleted",)
    indexes: ClassVar[Mapping[str, Sequence[str]]] = {
        COLLECTION: ("team_id", "status", "agent_role", "workflow_step", "completed_at")
    }

    async def apply(self, store: DocumentStore, event: Event, position: Position) -> None:
        """Set the task's fields from the event."""
        await apply_changes(store, self.changes(event, position))

    def changes(self, event: Event, position: Position) -> list[DocumentChange]:
        """Return the change setting the task's fields from the event."""
        p = event.payload
        env = event.envelope
        started = p["started_at"]
        fields = {
            "task_id": p["task_id"],
            "team_id": p["team_id"],
            "agent_role": p["agent_role"],
            "workflow_step": p["workflow_step"],
            "status": p["status"],
            "started_at": iso_time(started),
            "completed_at": iso_time(env.occurred_at),
            "duration_ms": int((env.occurred_at - started).total_seconds() * 1000),
            "steps": plain(list(p["steps"])),
            "output_ref": p.get("output_ref"),
            "error": p.get("error"),
            "source": env.source,
            "updated_at": iso_time(env.occurred_at),
        }
        update = {"$set": fields, "$inc": {"events_applied": 1}}
        event_id = str(event.envelope.event_id)
        return [DocumentChange(COLLECTION, p["task_id"], position, update, event_id)]
