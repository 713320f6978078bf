"""Project MetricWindowClosed into `metric_windows`: one row per window key."""

from __future__ import annotations

import json

import asyncpg

from events.model import Event
from projections.runner import Position


class PostgresAnalyticsMetricsProjection:
    """Keep the latest emission of every closed metric window."""

    name: str = "analytics-metrics"
    event_types: tuple[str, ...] = ("MetricWindowClosed",)

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Upsert the window; an older emission never replaces a newer one."""
        p = event.payload
        env = event.envelope
        await conn.execute(
            """
            INSERT INTO metric_windows (window_key, family, window_kind, window_start,
                window_end, group_by, group_value, count, score_sum, score_avg, score_max,
                score_buckets, latency_avg_ms, latency_p95_ms, tokens, cost, error_count,
                alert_counts, late_count, event_id, closed_at, source)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18::jsonb, $19, $20, $21, $22)
            ON CONFLICT (window_key) DO UPDATE SET
                family = EXCLUDED.family, window_kind = EXCLUDED.window_kind,
                window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
                group_by = EXCLUDED.group_by, group_value = EXCLUDED.group_value,
                count = EXCLUDED.count, score_sum = EXCLUDED.score_sum,
                score_avg = EXCLUDED.score_avg, score_max = EXCLUDED.score_max,
                score_buckets = EXCLUDED.score_buckets,
                latency_avg_ms = EXCLUDED.latency_avg_ms,
                latency_p95_ms = EXCLUDED.latency_p95_ms, tokens = EXCLUDED.tokens,
                cost = EXCLUDED.cost, error_count = EXCLUDED.error_count,
                alert_counts = EXCLUDED.alert_counts, late_count = EXCLUDED.late_count,
                event_id = EXCLUDED.event_id, closed_at = EXCLUDED.closed_at,
                source = EXCLUDED.source,
                emitted_count = metric_windows.emitted_count + 1, applied_at = now()
            WHERE metric_windows.closed_at <= EXCLUDED.closed_at
            """,
            p["window_key"],
            p["family"],
            p["window"],
            p["window_start"],
            p["window_end"],
            p["group_by"],
            p["group_value"],
            int(p["count"]),
            float(p["score_sum"]),
            p.get("score_avg"),
            p.get("score_max"),
            [int(b) for b in p["score_buckets"]],
            p.get("latency_avg_ms"),
            p.get("latency_p95_ms"),
            int(p["tokens"]),
            float(p["cost"]),
            int(p["error_count"]),
            json.dumps({str(k): int(v) for k, v in p["alert_counts"].items()}),
            int(p["late_count"]),
            env.event_id,
            env.occurred_at,
            env.source,
        )
