"""Shape a batch of events into the column arrays of set-based PostgreSQL statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events.model import Event
from projections.runner import Position


def latest_per_key(
    events: Sequence[tuple[Event, Position]], *fields: str
) -> list[tuple[Event, Position]]:
    """Keep, per value of the payload `fields`, the event with the latest `occurred_at`.

    Ties go to the later offset, as if the events were applied one by one with an
    "older never replaces newer" guard; one row per key also lets a single
    `INSERT ... ON CONFLICT DO UPDATE` take the whole batch.
    """
    latest: dict[tuple[Any, ...], tuple[Event, Position]] = {}
    for event, position in events:
        key = tuple(event.payload[f] for f in fields)
        kept = latest.get(key)
        if kept is None or kept[0].envelope.occurred_at <= event.envelope.occurred_at:
            latest[key] = (event, position)
    return list(latest.values())


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column (the arrays `unnest` takes)."""
    return [[row[i] for row in rows] for i in range(width)] if rows else [[]] * width
