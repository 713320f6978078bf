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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

import asyncpg

from events.model import Event
from projections.rows import columns
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


UPSERT_DAYS = """
INSERT INTO model_usage_daily (day, model, provider, requests, successes, failures,
    cached, input_tokens, output_tokens, total_tokens, cost, latency_sum_ms,
    latency_min_ms, latency_max_ms, latency_p95_ms, latency_histogram)
SELECT u.day, u.model, u.provider, u.requests, u.successes, u.failures, u.cached,
    u.input_tokens, u.output_tokens, u.total_tokens, u.cost, u.latency_sum_ms,
    u.latency_min_ms, u.latency_max_ms, u.latency_p95_ms, u.latency_histogram::jsonb
FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::float8[],
            $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::text[])
    AS u(day, model, provider, requests, successes, failures, cached, input_tokens,
         output_tokens, total_tokens, cost, latency_sum_ms, latency_min_ms, latency_max_ms,
         latency_p95_ms, latency_histogram)
ON CONFLICT (day, model) DO UPDATE SET
    provider = EXCLUDED.provider,
    requests = model_usage_daily.requests + EXCLUDED.requests,
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
"""


@dataclass(slots=True)
class UsageDelta:
    """Sum the calls of one (day, model) row within a batch."""

    provider: str
    requests: int = 0
    successes: int = 0
    failures: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    latency_min: float = math.inf
    latency_max: float = -math.inf
    histogram: dict[str, int] = field(default_factory=dict)

    def add(self, payload: Mapping[str, Any]) -> None:
        """Add one call."""
        latency = float(payload["latency_ms"])
        success = bool(payload["success"])
        self.provider = payload["provider"]  # the latest call's provider
        self.requests += 1
        self.successes += int(success)
        self.failures += int(not success)
        self.cached += int(bool(payload["cached"]))
        self.input_tokens += int(payload["input_tokens"])
        self.output_tokens += int(payload["output_tokens"])
        self.total_tokens += int(payload["total_tokens"])
        self.cost += float(payload["cost"])
        self.latency_sum += latency
        self.latency_min = min(self.latency_min, latency)
        self.latency_max = max(self.latency_max, latency)
        bucket = str(latency_bucket(latency))
        self.histogram[bucket] = self.histogram.get(bucket, 0) + 1


class PostgresModelUsageProjection:
    """Keep requests, tokens, cost and latency (avg, p95) per model and day.

    The counters are not idempotent per event, so the runner keeps a ledger of applied
    event ids (`dedupe_event_ids`): an event re-published at another offset counts once.
    """

    name: str = "model-usage"
    event_types: tuple[str, ...] = ("ModelUsageRecorded",)
    dedupe_event_ids: bool = True

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Add the call to its (day, model) row and recompute the p95."""
        await self.apply_batch(conn, [(event, position)])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Sum the calls per (day, model), merge the stored histograms, upsert once."""
        deltas: dict[tuple[date, str], UsageDelta] = {}
        for event, _ in events:
            p = event.payload
            key = (event.envelope.occurred_at.astimezone(UTC).date(), p["model"])
            deltas.setdefault(key, UsageDelta(p["provider"])).add(p)
        stored = {
            (r["day"], r["model"]): r
            for r in await conn.fetch(
                "SELECT m.day, m.model, m.latency_histogram, m.latency_min_ms, m.latency_max_ms"
                " FROM model_usage_daily m JOIN unnest($1::date[], $2::text[]) AS k(day, model)"
                " USING (day, model) FOR UPDATE OF m",
                [k[0] for k in deltas],
                [k[1] for k in deltas],
            )
        }
        rows = []
        for (day, model), d in deltas.items():
            row = stored.get((day, model))
            histogram: dict[str, int] = json.loads(row["latency_histogram"]) if row else {}
            for bucket, n in d.histogram.items():
                histogram[bucket] = histogram.get(bucket, 0) + n
            low = min(d.latency_min, row["latency_min_ms"]) if row else d.latency_min
            high = max(d.latency_max, row["latency_max_ms"]) if row else d.latency_max
            rows.append(
                (
                    day,
                    model,
                    d.provider,
                    d.requests,
                    d.successes,
                    d.failures,
                    d.cached,
                    d.input_tokens,
                    d.output_tokens,
                    d.total_tokens,
                    d.cost,
                    d.latency_sum,
                    low,
                    high,
                    percentile_from_histogram(histogram, 0.95, low, high),
                    json.dumps(histogram),
                )
            )
        await conn.execute(UPSERT_DAYS, *columns(rows, 16))
