"""Project BiasScored into a daily roll-up per model version, counting each content once.

The roll-up is derived incrementally from `bias_daily_contributions`, which keeps the current
score of each (content, model version): a re-score subtracts the previous contribution (from
its own day) before adding the new one, so re-scoring never double-counts. Min and max are
recomputed from the contributions only when the removed score was the extreme.

A batch is applied set-based: the latest score per (content, model version) is compared with
the stored contribution, the contributions are upserted in one statement, and the changes are
summed per (day, model version) into one delta row each, added in one statement; the result
equals applying the events one by one (intermediate re-scores within a batch cancel out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg

from events.model import Event
from projections.rows import columns, latest_per_key
from projections.runner import Position

LEVELS = ("low", "medium", "high", "critical")
BUCKETS = ("bucket_lt_02", "bucket_lt_04", "bucket_lt_06", "bucket_lt_08", "bucket_ge_08")


def bucket_for(score: float) -> str:
    """Return the histogram column of a score: <0.2, <0.4, <0.6, <0.8, >=0.8."""
    for limit, column in zip((0.2, 0.4, 0.6, 0.8), BUCKETS, strict=False):
        if score < limit:
            return column
    return BUCKETS[-1]


def level_column(level: str) -> str:
    """Return the count column of a level."""
    if level not in LEVELS:
        raise ValueError(f"unknown bias level {level!r}")
    return f"level_{level}"


@dataclass(slots=True)
class DailyDelta:
    """Sum the changes of one (day, model version) row within a batch."""

    count: int = 0
    score_sum: float = 0.0
    latency_sum: float = 0.0
    score_min: float | None = None  # of the added scores
    score_max: float | None = None
    counts: dict[str, int] = field(default_factory=dict)  # level_* and bucket_* columns
    removed: list[float] = field(default_factory=list)  # scores subtracted

    def add(self, score: float, level: str, latency: float, sign: int) -> None:
        """Add (sign 1) or subtract (sign -1) one contribution."""
        self.count += sign
        self.score_sum += sign * score
        self.latency_sum += sign * latency
        for column in (level_column(level), bucket_for(score)):
            self.counts[column] = self.counts.get(column, 0) + sign
        if sign > 0:
            self.score_min = score if self.score_min is None else min(self.score_min, score)
            self.score_max = score if self.score_max is None else max(self.score_max, score)
        else:
            self.removed.append(score)


def replaces(stored: asyncpg.Record | None, scored_at: datetime, score: float, level: str) -> bool:
    """Say whether a score replaces the stored contribution of its (content, model version)."""
    if stored is None:
        return True
    if stored["scored_at"] > scored_at:
        return False  # an older score arriving late never replaces a newer one
    # The same score again (e.g. replayed from a rewound position) changes nothing.
    return (stored["scored_at"], stored["overall_score"], stored["level"]) != (
        scored_at,
        score,
        level,
    )


COUNT_COLUMNS = tuple(f"level_{lvl}" for lvl in LEVELS) + BUCKETS

UPSERT_CONTRIBUTIONS = """
INSERT INTO bias_daily_contributions
    (content_id, model_version, day, overall_score, level, latency_ms, scored_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::float8[], $5::text[],
                     $6::float8[], $7::timestamptz[])
ON CONFLICT (content_id, model_version) DO UPDATE SET day = EXCLUDED.day,
    overall_score = EXCLUDED.overall_score, level = EXCLUDED.level,
    latency_ms = EXCLUDED.latency_ms, scored_at = EXCLUDED.scored_at
"""

_COUNT_PARAMS = ", ".join(f"${i}::bigint[]" for i in range(8, 8 + len(COUNT_COLUMNS)))
ADD_DELTAS = f"""
INSERT INTO bias_daily (day, model_version, scored_count, score_sum, score_min, score_max,
    latency_sum_ms, {", ".join(COUNT_COLUMNS)})
SELECT * FROM unnest($1::date[], $2::text[], $3::bigint[], $4::float8[], $5::float8[],
    $6::float8[], $7::float8[], {_COUNT_PARAMS})
ON CONFLICT (day, model_version) DO UPDATE SET
    scored_count = bias_daily.scored_count + EXCLUDED.scored_count,
    score_sum = CASE WHEN bias_daily.scored_count + EXCLUDED.scored_count = 0 THEN 0
                     ELSE bias_daily.score_sum + EXCLUDED.score_sum END,
    score_min = LEAST(bias_daily.score_min, EXCLUDED.score_min),
    score_max = GREATEST(bias_daily.score_max, EXCLUDED.score_max),
    latency_sum_ms = CASE WHEN bias_daily.scored_count + EXCLUDED.scored_count = 0 THEN 0
                          ELSE bias_daily.latency_sum_ms + EXCLUDED.latency_sum_ms END,
    {", ".join(f"{c} = bias_daily.{c} + EXCLUDED.{c}" for c in COUNT_COLUMNS)},
    updated_at = now()
RETURNING day, model_version, score_min, score_max
"""

RECOMPUTE_EXTREMES = """
UPDATE bias_daily d SET score_min = c.mn, score_max = c.mx
FROM unnest($1::date[], $2::text[]) AS g(day, model_version)
CROSS JOIN LATERAL (
    SELECT min(overall_score) AS mn, max(overall_score) AS mx FROM bias_daily_contributions
    WHERE day = g.day AND model_version = g.model_version) c
WHERE d.day = g.day AND d.model_version = g.model_version
"""


class PostgresBiasDailyProjection:
    """Keep `bias_daily` (day, model version) from the per-content contributions."""

    name: str = "bias-daily"
    event_types: tuple[str, ...] = ("BiasScored",)

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Replace each content's contribution and add the summed changes per day."""
        latest = [e for e, _ in latest_per_key(events, "content_id", "model_version")]
        old = {
            (r["content_id"], r["model_version"]): r
            for r in await conn.fetch(
                "SELECT c.content_id, c.model_version, c.day, c.overall_score, c.level,"
                " c.latency_ms, c.scored_at FROM bias_daily_contributions c"
                " JOIN unnest($1::text[], $2::text[]) AS k(content_id, model_version)"
                " USING (content_id, model_version) FOR UPDATE OF c",
                [e.payload["content_id"] for e in latest],
                [e.payload["model_version"] for e in latest],
            )
        }
        contributions = []
        deltas: dict[tuple[date, str], DailyDelta] = {}
        for event in latest:
            p = event.payload
            scored_at = event.envelope.occurred_at
            score, latency = float(p["overall_score"]), float(p["latency_ms"])
            mv = p["model_version"]
            prev = old.get((p["content_id"], mv))
            if not replaces(prev, scored_at, score, p["level"]):
                continue
            day = scored_at.astimezone(UTC).date()
            contributions.append((p["content_id"], mv, day, score, p["level"], latency, scored_at))
            if prev is not None:
                deltas.setdefault((prev["day"], mv), DailyDelta()).add(
                    prev["overall_score"], prev["level"], prev["latency_ms"], -1
                )
            deltas.setdefault((day, mv), DailyDelta()).add(score, p["level"], latency, 1)
        if not contributions:
            return
        await conn.execute(UPSERT_CONTRIBUTIONS, *columns(contributions, 7))
        rows = [
            (
                day,
                mv,
                d.count,
                d.score_sum,
                d.score_min,
                d.score_max,
                d.latency_sum,
                *(d.counts.get(c, 0) for c in COUNT_COLUMNS),
            )
            for (day, mv), d in deltas.items()
        ]
        stored = await conn.fetch(ADD_DELTAS, *columns(rows, 7 + len(COUNT_COLUMNS)))
        # A removed score that was an extreme leaves min/max stale: recompute those rows from
        # the contributions (new ones included).
        stale = [
            (r["day"], r["model_version"])
            for r in stored
            if any(
                s in (r["score_min"], r["score_max"])
                or r["score_min"] is None
                or s < r["score_min"]
                or s > r["score_max"]
                for s in deltas[(r["day"], r["model_version"])].removed
            )
        ]
        if stale:
            await conn.execute(RECOMPUTE_EXTREMES, *columns(stale, 2))

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Replace the content's contribution: subtract the old one, add the new one."""
        p = event.payload
        scored_at = event.envelope.occurred_at
        day = scored_at.astimezone(UTC).date()
        score = float(p["overall_score"])
        latency = float(p["latency_ms"])
        old = await conn.fetchrow(
            "SELECT day, overall_score, level, latency_ms, scored_at FROM bias_daily_contributions"
            " WHERE content_id = $1 AND model_version = $2 FOR UPDATE",
            p["content_id"],
            p["model_version"],
        )
        if not replaces(old, scored_at, score, p["level"]):
            return
        await conn.execute(
            "INSERT INTO bias_daily_contributions"
            " (content_id, model_version, day, overall_score, level, latency_ms, scored_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (content_id, model_version) DO UPDATE SET day = EXCLUDED.day,"
            " overall_score = EXCLUDED.overall_score, level = EXCLUDED.level,"
            " latency_ms = EXCLUDED.latency_ms, scored_at = EXCLUDED.scored_at",
            p["content_id"],
            p["model_version"],
            day,
            score,
            p["level"],
            latency,
            scored_at,
        )
        if old is not None:
            await self._subtract(conn, old, p["model_version"])
        lvl, bucket = level_column(p["level"]), bucket_for(score)
        await conn.execute(
            f"""
            INSERT INTO bias_daily (day, model_version, scored_count, score_sum, score_min,
                score_max, {lvl}, {bucket}, latency_sum_ms)
            VALUES ($1, $2, 1, $3, $3, $3, 1, 1, $4)
            ON CONFLICT (day, model_version) DO UPDATE SET
                scored_count = bias_daily.scored_count + 1,
                score_sum = bias_daily.score_sum + EXCLUDED.score_sum,
                score_min = LEAST(bias_daily.score_min, EXCLUDED.score_min),
                score_max = GREATEST(bias_daily.score_max, EXCLUDED.score_max),
                {lvl} = bias_daily.{lvl} + 1,
                {bucket} = bias_daily.{bucket} + 1,
                latency_sum_ms = bias_daily.latency_sum_ms + EXCLUDED.latency_sum_ms,
                updated_at = now()
            """,
            day,
            p["model_version"],
            score,
            latency,
        )

    async def _subtract(
        self, conn: asyncpg.Connection, old: asyncpg.Record, model_version: str
    ) -> None:
        lvl, bucket = level_column(old["level"]), bucket_for(old["overall_score"])
        row = await conn.fetchrow(
            f"""
            UPDATE bias_daily SET
                scored_count = scored_count - 1,
                score_sum = CASE WHEN scored_count = 1 THEN 0 ELSE score_sum - $3 END,
                {lvl} = {lvl} - 1,
                {bucket} = {bucket} - 1,
                latency_sum_ms = CASE WHEN scored_count = 1 THEN 0 ELSE latency_sum_ms - $4 END,
                updated_at = now()
            WHERE day = $1 AND model_version = $2
            RETURNING score_min, score_max
            """,
            old["day"],
            model_version,
            old["overall_score"],
            old["latency_ms"],
        )
        if row is None or old["overall_score"] not in (row["score_min"], row["score_max"]):
            return
        # The removed score was an extreme: recompute both from the current contributions
        # (the new contribution is already there if it falls on the same day).
        await conn.execute(
            """
            UPDATE bias_daily d SET score_min = c.mn, score_max = c.mx
            FROM (SELECT min(overall_score) AS mn, max(overall_score) AS mx
                  FROM bias_daily_contributions WHERE day = $1 AND model_version = $2) c
            WHERE d.day = $1 AND d.model_version = $2
            """,
            old["day"],
            model_version,
        )
