"""Project RevenueProjected into `revenue_projections` and `revenue_projection_months`.

A batch keeps the latest RevenueProjected per projection_id, upserts them in one statement
and replaces the months of those that were stored (one DELETE, one INSERT).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from events.model import Event
from projections.rows import columns, latest_per_key
from projections.runner import Position

UPSERT_PROJECTIONS = """
INSERT INTO revenue_projections (projection_id, business_model, total_revenue,
    final_users, final_paid_users, arpu, ltv, currency, months_count, event_id,
    projected_at, source, correlation_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[], $5::bigint[],
    $6::float8[], $7::float8[], $8::text[], $9::int[], $10::uuid[], $11::timestamptz[],
    $12::text[], $13::text[])
ON CONFLICT (projection_id) DO UPDATE SET
    business_model = EXCLUDED.business_model, total_revenue = EXCLUDED.total_revenue,
    final_users = EXCLUDED.final_users, final_paid_users = EXCLUDED.final_paid_users,
    arpu = EXCLUDED.arpu, ltv = EXCLUDED.ltv, currency = EXCLUDED.currency,
    months_count = EXCLUDED.months_count, event_id = EXCLUDED.event_id,
    projected_at = EXCLUDED.projected_at, source = EXCLUDED.source,
    correlation_id = EXCLUDED.correlation_id, applied_at = now()
WHERE revenue_projections.projected_at <= EXCLUDED.projected_at
RETURNING projection_id
"""

INSERT_MONTHS = """
INSERT INTO revenue_projection_months (projection_id, month, users, free_users,
    paid_users, revenue, revenue_by_tier)
SELECT m.projection_id, m.month, m.users, m.free_users, m.paid_users, m.revenue,
    m.revenue_by_tier::jsonb
FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::float8[],
            $7::text[])
    AS m(projection_id, month, users, free_users, paid_users, revenue, revenue_by_tier)
"""


class PostgresRevenueProjection:
    """Keep the latest projection per projection_id with one row per month."""

    name: str = "revenue-projections"
    event_types: tuple[str, ...] = ("RevenueProjected",)

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Replace the projection and its months unless a newer one is stored."""
        await self.apply_batch(conn, [(event, position)])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Upsert the latest projection per id; replace the months of those stored."""
        latest = [e for e, _ in latest_per_key(events, "projection_id")]
        rows = [
            (
                p["projection_id"],
                p["business_model"],
                float(p["total_revenue"]),
                int(p["final_users"]),
                int(p["final_paid_users"]),
                float(p["arpu"]),
                None if p.get("ltv") is None else float(p["ltv"]),
                p["currency"],
                len(p["months"]),
                e.envelope.event_id,
                e.envelope.occurred_at,
                e.envelope.source,
                e.envelope.correlation_id,
            )
            for e in latest
            for p in (e.payload,)
        ]
        stored = {
            r["projection_id"] for r in await conn.fetch(UPSERT_PROJECTIONS, *columns(rows, 13))
        }
        if not stored:
            return  # newer projections are already stored
        await conn.execute(
            "DELETE FROM revenue_projection_months WHERE projection_id = ANY($1::text[])",
            list(stored),
        )
        months: list[tuple[Any, ...]] = [
            (
                e.payload["projection_id"],
                int(m["month"]),
                int(m["users"]),
                int(m["free_users"]),
                int(m["paid_users"]),
                float(m["revenue"]),
                json.dumps({str(k): float(v) for k, v in m["revenue_by_tier"].items()}),
            )
            for e in latest
            if e.payload["projection_id"] in stored
            for m in e.payload["months"]
        ]
        if months:
            await conn.execute(INSERT_MONTHS, *columns(months, 7))
