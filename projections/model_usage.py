"""Project ModelUsageRecorded into `model_usage_daily`: per model and UTC day.

p95 latency: each row keeps a sparse log-bucket histogram of its latencies (bucket `i`
holds latencies in (1.05^(i-1), 1.05^i] ms; bucket 0 holds <= 1 ms), so the row stays small
whatever the traffic and the p95 is recomputed on every call from the histogram: the
upper bound of the bucket holding the ceil(0.95 n)-th latency, clamped to [min, max]
(relative error <= 5 %). Storing every latency would make a day's row grow without bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC

import asyncpg

from events.model import Event
from projections.runner import Position

GROWTH = 1.05
MAX_BUCKET = 600  # 1.05^600 ms is far beyond any latency; larger ones share the last bucket


def latency_bucket(latency_ms: float) -> int:
    """Return the histogram bucket of a latency."""
    if latency_ms <= 1.0:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log(latency_ms) / math.log(GROWTH) - 1e-12))


def percentile_from_histogram(
    histogram: Mapping[str, int], q: float, low: float, high: float
) -> float:
    """Return the q-quantile upper bound from a bucket histogram, clamped to [low, high]."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram, key=int):
        seen += histogram[bucket]
        if seen >= rank:
            bound = GROWTH ** int(bucket) if int(bucket) > 0 else 1.0
            return min(max(bound, low), high)
    return high


class PostgresModelUsageProjection:
    """Keep requests, tokens, cost and latency (avg, p95) per model and day."""

    name: str = "model-usage"
    event_types: tuple[str, ...] = ("ModelUsageRecorded",)

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Add the call to its (day, model) row and recompute the p95."""
        p = event.payload
        day = event.envelope.occurred_at.astimezone(UTC).date()
        latency = float(p["latency_ms"])
        row = await conn.fetchrow(
            "SELECT latency_histogram, latency_min_ms, latency_max_ms FROM model_usage_daily"
            " WHERE day = $1 AND model = $2 FOR UPDATE",
            day,
            p["model"],
        )
        histogram: dict[str, int] = json.loads(row["latency_histogram"]) if row else {}
        bucket = str(latency_bucket(latency))
        histogram[bucket] = histogram.get(bucket, 0) + 1
        low = min(latency, row["latency_min_ms"]) if row else latency
        high = max(latency, row["latency_max_ms"]) if row else latency
        p95 = percentile_from_histogram(histogram, 0.95, low, high)
        success = bool(p["success"])
        await conn.execute(
            """
            INSERT INTO model_usage_daily (day, model, provider, requests, successes, failures,
                cached, input_tokens, output_tokens, total_tokens, cost, latency_sum_ms,
                latency_min_ms, latency_max_ms, latency_p95_ms, latency_histogram)
            VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)
            ON CONFLICT (day, model) DO UPDATE SET
                provider = EXCLUDED.provider,
                requests = model_usage_daily.requests + 1,
                successes = model_usage_daily.successes + EXCLUDED.successes,
                failures = model_usage_daily.failures + EXCLUDED.failures,
                cached = model_usage_daily.cached + EXCLUDED.cached,
                input_tokens = model_usage_daily.input_tokens + EXCLUDED.input_tokens,
                output_tokens = model_usage_daily.output_tokens + EXCLUDED.output_tokens,
                total_tokens = model_usage_daily.total_tokens + EXCLUDED.total_tokens,
                cost = model_usage_daily.cost + EXCLUDED.cost,
                latency_sum_ms = model_usage_daily.latency_sum_ms + EXCLUDED.latency_sum_ms,
                latency_min_ms = EXCLUDED.latency_min_ms,
                latency_max_ms = EXCLUDED.latency_max_ms,
                latency_p95_ms = EXCLUDED.latency_p95_ms,
                latency_histogram = EXCLUDED.latency_histogram,
                updated_at = now()
            """,
            day,
            p["model"],
            p["provider"],
            int(success),
            int(not success),
            int(bool(p["cached"])),
            int(p["input_tokens"]),
            int(p["output_tokens"]),
            int(p["total_tokens"]),
            float(p["cost"]),
            latency,
            low,
            high,
            p95,
            json.dumps(histogram),
        )
