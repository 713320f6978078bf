"""Project RevenueProjected into `revenue_projections` and `revenue_projection_months`."""

from __future__ import annotations

import json

import asyncpg

from events.model import Event
from projections.runner import Position


class PostgresRevenueProjection:
    """Keep the latest projection per projection_id with one row per month."""

    name: str = "revenue-projections"
    event_types: tuple[str, ...] = ("RevenueProjected",)

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Replace the projection and its months unless a newer one is stored."""
        p = event.payload
        env = event.envelope
        months = list(p["months"])
        stored = await conn.fetchrow(
            "INSERT INTO revenue_projections (projection_id, business_model, total_revenue,"
            " final_users, final_paid_users, arpu, ltv, currency, months_count, event_id,"
            " projected_at, source, correlation_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (projection_id) DO UPDATE SET"
            " business_model = EXCLUDED.business_model, total_revenue = EXCLUDED.total_revenue,"
            " final_users = EXCLUDED.final_users, final_paid_users = EXCLUDED.final_paid_users,"
            " arpu = EXCLUDED.arpu, ltv = EXCLUDED.ltv, currency = EXCLUDED.currency,"
            " months_count = EXCLUDED.months_count, event_id = EXCLUDED.event_id,"
            " projected_at = EXCLUDED.projected_at, source = EXCLUDED.source,"
            " correlation_id = EXCLUDED.correlation_id, applied_at = now()"
            " WHERE revenue_projections.projected_at <= EXCLUDED.projected_at"
            " RETURNING projection_id",
            p["projection_id"],
            p["business_model"],
            float(p["total_revenue"]),
            int(p["final_users"]),
            int(p["final_paid_users"]),
            float(p["arpu"]),
            None if p.get("ltv") is None else float(p["ltv"]),
            p["currency"],
            len(months),
            env.event_id,
            env.occurred_at,
            env.source,
            env.correlation_id,
        )
        if stored is None:
            return  # a newer projection is already stored
        await conn.execute(
            "DELETE FROM revenue_projection_months WHERE projection_id = $1", p["projection_id"]
        )
        await conn.executemany(
            "INSERT INTO revenue_projection_months (projection_id, month, users, free_users,"
            " paid_users, revenue, revenue_by_tier) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            [
                (
                    p["projection_id"],
                    int(m["month"]),
                    int(m["users"]),
                    int(m["free_users"]),
                    int(m["paid_users"]),
                    float(m["revenue"]),
                    json.dumps({str(k): float(v) for k, v in m["revenue_by_tier"].items()}),
                )
                for m in months
            ],
        )
