"""Project MetricWindowClosed into `metric_windows`: one row per window key.

A batch is one `unnest` upsert carrying, per window key, the latest emission and how many
of the batch's emissions would have replaced the row one by one (`emitted_count`). An
emission whose event id is the one stored (a re-published event) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from events.model import Event
from projections.rows import columns
from projections.runner import Position

UPSERT_WINDOWS = """
INSERT INTO metric_windows (window_key, family, window_kind, window_start,
    window_end, group_by, group_value, count, score_sum, score_avg, score_max,
    score_buckets, latency_avg_ms, latency_p95_ms, tokens, cost, error_count,
    alert_counts, late_count, event_id, closed_at, source, emitted_count)
SELECT w.window_key, w.family, w.window_kind, w.window_start, w.window_end, w.group_by,
    w.group_value, w.count, w.score_sum, w.score_avg, w.score_max,
    ARRAY(SELECT jsonb_array_elements_text(w.score_buckets::jsonb))::bigint[],
    w.latency_avg_ms, w.latency_p95_ms, w.tokens, w.cost, w.error_count,
    w.alert_counts::jsonb, w.late_count, w.event_id, w.closed_at, w.source, w.emitted
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
            $6::text[], $7::text[], $8::bigint[], $9::float8[], $10::float8[], $11::float8[],
            $12::text[], $13::float8[], $14::float8[], $15::bigint[], $16::float8[],
            $17::bigint[], $18::text[], $19::bigint[], $20::uuid[], $21::timestamptz[],
            $22::text[], $23::int[])
    AS w(window_key, family, window_kind, window_start, window_end, group_by, group_value,
         count, score_sum, score_avg, score_max, score_buckets, latency_avg_ms,
         latency_p95_ms, tokens, cost, error_count, alert_counts, late_count, event_id,
         closed_at, source, emitted)
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
    emitted_count = metric_windows.emitted_count + EXCLUDED.emitted_count, applied_at = now()
WHERE metric_windows.closed_at <= EXCLUDED.closed_at
"""


class PostgresAnalyticsMetricsProjection:
    """Keep the latest emission of every closed metric window."""

    name: str = "analytics-metrics"
    event_types: tuple[str, ...] = ("MetricWindowClosed",)

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Upsert the window; an older emission never replaces a newer one."""
        await self.apply_batch(conn, [(event, position)])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Upsert each window's latest emission, counting the emissions that replaced it."""
        keys = list(dict.fromkeys(e.payload["window_key"] for e, _ in events))
        stored = {
            r["window_key"]: (r["closed_at"], str(r["event_id"]))
            for r in await conn.fetch(
                "SELECT window_key, closed_at, event_id FROM metric_windows"
                " WHERE window_key = ANY($1::text[]) FOR UPDATE",
                keys,
            )
        }
        # Replay the guard one emission at a time, in offset order, without writing.
        latest: dict[str, tuple[Event, int]] = {}
        for event, _ in events:
            key = event.payload["window_key"]
            at, event_id = event.envelope.occurred_at, str(event.envelope.event_id)
            current = stored.get(key)
            if current is not None and (current[0] > at or current[1] == event_id):
                continue
            stored[key] = (at, event_id)
            emitted = latest[key][1] + 1 if key in latest else 1
            latest[key] = (event, emitted)
        if latest:
            rows = [_window_row(e, n) for e, n in latest.values()]
            await conn.execute(UPSERT_WINDOWS, *columns(rows, 23))


def _window_row(event: Event, emitted: int) -> tuple[Any, ...]:
    p = event.payload
    env = event.envelope
    return (
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
        json.dumps([int(b) for b in p["score_buckets"]]),
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
        emitted,
    )
