"""Keep each group's lag history in PostgreSQL, pruned by age; read the replaying groups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from operations.lag.model import LagSnapshot

DEFAULT_RETENTION_SECONDS = 26 * 3600.0  # at least 24 h, whatever the clock skew of a restart


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a group's lag history (the worst values inside its time bucket)."""

    at: float
    max_lag: int
    max_lag_seconds: float
    status: str


class PostgresLagHistory:
    """Store snapshots as per-group rows in `lag_history`; `prune` bounds the table by age."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, snapshot: LagSnapshot) -> None:
        """Write one row per group of the snapshot."""
        at = datetime.fromtimestamp(snapshot.collected_at, UTC)
        rows = [
            (g.group, at, g.status.name, g.max_lag, g.max_lag_seconds, g.total_lag)
            for g in snapshot.groups
        ]
        if not rows:
            return
        async with self._pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO lag_history (group_id, observed_at, status, max_lag,"
                " max_lag_seconds, total_lag) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT DO NOTHING",
                rows,
            )

    async def prune(self, retention_seconds: float = DEFAULT_RETENTION_SECONDS) -> int:
        """Delete rows older than the retention; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=retention_seconds)
        async with self._pool.acquire() as conn:
            result: str = await conn.execute(
                "DELETE FROM lag_history WHERE observed_at < $1", cutoff
            )
        return int(result.rsplit(" ", 1)[-1])

    async def series(
        self,
        *,
        since_seconds: float,
        points: int = 120,
        group: str | None = None,
        min_bucket_seconds: float = 10.0,
    ) -> dict[str, list[HistoryPoint]]:
        """Return each group's history over the last `since_seconds` in at most `points` buckets."""
        bucket = max(since_seconds / max(points, 1), min_bucket_seconds)
        since = datetime.now(UTC) - timedelta(seconds=since_seconds)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT group_id,"
                " date_bin($1::interval, observed_at, timestamptz 'epoch') AS bucket,"
                " max(max_lag) AS max_lag, max(max_lag_seconds) AS max_lag_seconds,"
                " (array_agg(status ORDER BY observed_at DESC))[1] AS status"
                " FROM lag_history WHERE observed_at >= $2 AND ($3::text IS NULL OR group_id = $3)"
                " GROUP BY group_id, bucket ORDER BY group_id, bucket",
                timedelta(seconds=bucket),
                since,
                group,
            )
        out: dict[str, list[HistoryPoint]] = {}
        for row in rows:
            out.setdefault(row["group_id"], []).append(
                HistoryPoint(
                    at=row["bucket"].timestamp(),
                    max_lag=int(row["max_lag"]),
                    max_lag_seconds=float(row["max_lag_seconds"]),
                    status=row["status"],
                )
            )
        return out

    async def replaying_groups(self) -> set[str]:
        """Return the groups a replay has marked as rebuilding (and not expired)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT group_id FROM replaying_groups"
                " WHERE expires_at IS NULL OR expires_at > now()"
            )
        return {r["group_id"] for r in rows}
