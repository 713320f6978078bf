"""Project BiasScored into a daily roll-up per model version, counting each content once.

The roll-up is derived incrementally from `bias_daily_contributions`, which keeps the current
score of each (content, model version): a re-score subtracts the previous contribution (from
its own day) before adding the new one, so re-scoring never double-counts. Min and max are
recomputed from the contributions only when the removed score was the extreme.
"""

from __future__ import annotations

from datetime import UTC

import asyncpg

from events.model import Event
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


class PostgresBiasDailyProjection:
    """Keep `bias_daily` (day, model version) from the per-content contributions."""

    name: str = "bias-daily"
    event_types: tuple[str, ...] = ("BiasScored",)

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
        if old is not None and old["scored_at"] > scored_at:
            return  # an older score arriving late never replaces a newer one
        if old is not None and (old["scored_at"], old["overall_score"], old["level"]) == (
            scored_at,
            score,
            p["level"],
        ):
            return  # the same score again (e.g. replayed from a rewound position)
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
