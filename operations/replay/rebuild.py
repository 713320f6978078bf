"""Rebuild a PostgreSQL read model blue/green: a new schema, a `-replay-` group, one switch.

The rebuild writes into `<pg_schema>_<projection>_v<N>` (migrated like the live schema) with
the projection's own runner and a bounded sink, so each partition stops at the planned end
offset. Positions are stored with the rows in the new schema: `--resume` just runs again.
When every partition has reached its end, one transaction in the live schema points
`read_model_versions` at the new schema; the old version stays until `--drop-old`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from events.catalog import topic_name
from events.model import Event
from fairstream import aiokafka_rebootstrap
from fairstream.bootstrap import (
    DOCUMENT_PROJECTIONS,
    POSTGRES_PROJECTIONS,
    PROJECTIONS,
    build_codec,
    projection_group,
)
from fairstream.settings import Settings
from operations.replay.exceptions import PlanError, ReplayBusyError, ReplayError
from operations.replay.offsets import KafkaOffsets, delete_group
from operations.replay.plan import (
    AtOffsets,
    AtTime,
    Bound,
    Partition,
    PartitionRange,
    ReplayPlan,
    build_plan,
    parse_bound,
)
from projections.documents import DocumentProjection
from projections.migrate import checked_schema, migrate
from projections.runner import (
    BatchResult,
    PostgresProjection,
    PostgresSink,
    ProjectionRunner,
    ProjectionSink,
)

# Tables each PostgreSQL projection owns, emptied in the live schema by `--drop-old`.
PROJECTION_TABLES: dict[str, tuple[str, ...]] = {
    "bias-results": ("bias_results", "bias_alerts"),
    "bias-daily": ("bias_daily", "bias_daily_contributions"),
    "analytics-metrics": ("metric_windows",),
    "model-usage": ("model_usage_daily",),
    "revenue-projections": ("revenue_projection_months", "revenue_projections"),
}

ProgressCallback = Callable[[Partition, int], None]


@dataclass(slots=True)
class RebuildReport:
    """Say what a rebuild did."""

    projection: str
    target_schema: str
    group_id: str
    events_read: int = 0
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    switched: bool = False
    positions: dict[Partition, int] = field(default_factory=dict)
    kind: str = ""  # "" for a PostgreSQL schema, "MongoDB database " for a document rebuild

    def render(self) -> str:
        """Render the final report."""
        state = "switched: the API now reads" if self.switched else "interrupted, not switched:"
        return (
            f"{self.projection}: {state} {self.kind}{self.target_schema} (group {self.group_id})\n"
            f"  events read {self.events_read}, applied {self.applied},"
            f" skipped as already applied {self.skipped}, dead-lettered {self.dead_lettered},"
            f" duration {self.seconds:.1f}s"
        )


def postgres_projection(name: str) -> None:
    """Raise ReplayError unless `name` is a PostgreSQL projection this slice can rebuild."""
    if name not in POSTGRES_PROJECTIONS:
        raise ReplayError(
            f"{name!r}: only PostgreSQL projections can be rebuilt for now"
            f" ({', '.join(sorted(POSTGRES_PROJECTIONS))})"
        )


def version_schema(base: str, projection: str, version: int) -> str:
    """Return the schema of one version of a projection's read model."""
    return checked_schema(f"{base}_{projection.replace('-', '_')}_v{version}")


def replay_group(settings: Settings, projection: str, version: int) -> str:
    """Return the consumer group of a rebuild (the lag dashboard shows it as replaying)."""
    return f"{projection_group(settings, projection)}-replay-v{version}"


def projection_topics(settings: Settings, projection: str) -> list[str]:
    """Return the topics a projection consumes under the settings' prefix."""
    events = PROJECTIONS[projection](settings).event_types
    return sorted({topic_name(t, settings.topic_prefix) for t in events})


async def connect(settings: Settings) -> asyncpg.Connection:
    """Open a plain connection (every statement names its schema)."""
    conn: asyncpg.Connection = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    return conn


async def active_schema(conn: asyncpg.Connection, base: str, projection: str) -> tuple[str, int]:
    """Return the schema serving a projection now and its version (the live schema is v1)."""
    if await conn.fetchval("SELECT to_regclass($1)", f'"{base}".read_model_versions') is None:
        return base, 1  # not migrated yet: a dry run changes nothing, so it does not migrate
    row = await conn.fetchrow(
        f'SELECT active_schema, version FROM "{base}".read_model_versions WHERE projection = $1',
        projection,
    )
    return (row["active_schema"], row["version"]) if row else (base, 1)


async def stored_positions(
    conn: asyncpg.Connection, schema: str, projection: str
) -> dict[Partition, int]:
    """Return the next offset per partition stored with a schema's read model."""
    if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".projection_positions') is None:
        return {}
    rows = await conn.fetch(
        f'SELECT topic, partition, next_offset FROM "{schema}".projection_positions'
        " WHERE projection = $1",
        projection,
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def plan_replay(
    settings: Settings,
    projection: str,
    start_text: str,
    end_text: str | None = None,
    *,
    rate_per_second: float = 2000.0,
) -> ReplayPlan:
    """Plan a rebuild: ranges from `--from` to `--to` (default: the live version's positions)."""
    if projection in DOCUMENT_PROJECTIONS:
        from operations.replay.documents import document_projection

        document_projection(settings, projection)
    else:
        postgres_projection(projection)
    start = parse_bound(start_text)
    end: Bound | None = parse_bound(end_text, allow_earliest=False) if end_text else None
    topics = projection_topics(settings, projection)
    offsets = KafkaOffsets(settings.kafka_bootstrap)
    try:
        bounds = await asyncio.to_thread(offsets.bounds, topics)
        parts = [(b.topic, b.partition) for b in bounds]
        start_by_time = (
            await asyncio.to_thread(offsets.offsets_for_time, parts, start.epoch_ms)
            if isinstance(start, AtTime)
            else None
        )
        end_by_time = (
            await asyncio.to_thread(offsets.offsets_for_time, parts, end.epoch_ms)
            if isinstance(end, AtTime)
            else None
        )
    finally:
        await asyncio.to_thread(offsets.close)
    if isinstance(end, AtOffsets):
        end_offsets: dict[Partition, int] = dict(end.offsets)
    elif projection in DOCUMENT_PROJECTIONS:
        from operations.replay.documents import live_document_positions

        end_offsets = await live_document_positions(settings, projection)
    else:
        conn = await connect(settings)
        try:
            live, _ = await active_schema(conn, checked_schema(settings.pg_schema), projection)
            end_offsets = await stored_positions(conn, live, projection)
        finally:
            await conn.close()
    return build_plan(
        projection,
        bounds,
        start=start,
        start_by_time=start_by_time,
        end_offsets=end_offsets,
        end_by_time=end_by_time,
        rate_per_second=rate_per_second,
    )


class BoundedSink:
    """Apply only records before each partition's end offset; report progress."""

    def __init__(
        self,
        inner: ProjectionSink,
        ends: dict[Partition, int],
        positions: dict[Partition, int],
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._inner = inner
        self.ends = ends
        self.positions = dict(positions)
        self.read = self.applied = self.skipped = 0
        self._on_progress = on_progress
        self.on_done: Callable[[], None] = lambda: None

    def done(self) -> bool:
        """Tell whether every partition has reached its end."""
        return all(self.positions.get(k, 0) >= end for k, end in self.ends.items())

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Return the positions stored in the new version's schema."""
        return await self._inner.stored_positions()

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[tuple[int, Event | None]]
    ) -> BatchResult:
        """Apply the part of the batch before the end offset, with its position."""
        key = (topic, partition)
        end = self.ends.get(key, 0)
        in_range = [r for r in records if r[0] < end]
        if not in_range:
            return BatchResult(self.positions.get(key, end), 0, 0)
        result = await self._inner.apply_batch(topic, partition, in_range)
        before = self.positions.get(key, in_range[0][0])
        # A record at or past the end proves the range complete even when its last offsets
        # hold no record (transaction markers, compaction).
        reached = end if len(in_range) < len(records) else result.next_offset
        self.positions[key] = max(result.next_offset, reached)
        self.read += len(in_range)
        self.applied += result.applied
        self.skipped += result.skipped
        if self._on_progress is not None:
            self._on_progress(key, max(0, result.next_offset - before))
        if self.done():
            self.on_done()
        return result


class ReplayLock:
    """Hold a session advisory lock per live schema and projection; refuse when taken."""

    def __init__(self, conn: asyncpg.Connection, base: str, projection: str) -> None:
        self._conn = conn
        self._key = f"replay:{base}:{projection}"

    async def __aenter__(self) -> ReplayLock:
        if not await self._conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._key):
            raise ReplayBusyError(f"a replay of {self._key.split(':', 2)[2]!r} is already running")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._key)


async def execute_rebuild(
    settings: Settings,
    projection: str,
    plan: ReplayPlan | None,
    *,
    resume: bool = False,
    stop: asyncio.Event | None = None,
    on_start: Callable[[list[PartitionRange], dict[Partition, int]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RebuildReport:
    """Rebuild into a new version (or `resume` the unfinished one) and switch when done."""
    if projection in DOCUMENT_PROJECTIONS:
        from operations.replay.documents import execute_document_rebuild

        return await execute_document_rebuild(
            settings,
            projection,
            plan,
            resume=resume,
            stop=stop,
            on_start=on_start,
            on_progress=on_progress,
        )
    postgres_projection(projection)
    base = checked_schema(settings.pg_schema)
    stop = stop or asyncio.Event()
    conn = await connect(settings)
    try:
        await migrate(conn, base)
        async with ReplayLock(conn, base, projection):
            running = await conn.fetchrow(
                f'SELECT version, target_schema, group_id, plan FROM "{base}".replay_runs'
                " WHERE projection = $1 AND status = 'running'",
                projection,
            )
            if resume:
                if running is None:
                    raise ReplayError(f"no interrupted rebuild of {projection!r} to resume")
                version, target, group = (
                    running["version"],
                    running["target_schema"],
                    running["group_id"],
                )
                ranges = [PartitionRange(**r) for r in json.loads(running["plan"])]
            else:
                if running is not None:
                    raise ReplayError(
                        f"a rebuild of {projection!r} into {running['target_schema']} was"
                        " interrupted: continue it with --resume"
                    )
                if plan is None:
                    raise PlanError("--execute needs a plan")
                version, target, group = await _start_version(conn, settings, base, plan)
                ranges = list(plan.ranges)
            await conn.execute(
                f'INSERT INTO "{base}".replaying_groups (group_id, reason) VALUES ($1, $2)'
                " ON CONFLICT (group_id) DO UPDATE SET started_at = now(), expires_at = NULL",
                group,
                f"fairstream replay {projection} -> {target}",
            )
            try:
                report = await _run(
                    settings, projection, target, group, ranges, stop, on_start, on_progress
                )
                if report.switched:
                    await _switch(conn, base, projection, target, version)
                    # Its offsets are stored with the rows; a stale group would look replaying.
                    await asyncio.to_thread(delete_group, settings.kafka_bootstrap, group)
            finally:
                await conn.execute(
                    f'DELETE FROM "{base}".replaying_groups WHERE group_id = $1', group
                )
            return report
    finally:
        await conn.close()


async def _start_version(
    conn: asyncpg.Connection, settings: Settings, base: str, plan: ReplayPlan
) -> tuple[int, str, str]:
    name = plan.projection
    _, active_version = await active_schema(conn, base, name)
    latest = await conn.fetchval(
        f'SELECT max(version) FROM "{base}".replay_runs WHERE projection = $1', name
    )
    version = max(active_version, latest or 0) + 1
    target = version_schema(base, name, version)
    group = replay_group(settings, name, version)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{target}" CASCADE')  # leftover of an abandoned run
    await migrate(conn, target)
    async with conn.transaction():
        await conn.executemany(
            f'INSERT INTO "{target}".projection_positions'
            " (projection, topic, partition, next_offset) VALUES ($1, $2, $3, $4)",
            [(name, r.topic, r.partition, r.start) for r in plan.ranges],
        )
        await conn.execute(
            f'INSERT INTO "{base}".replay_runs (projection, version, target_schema, group_id,'
            " status, plan) VALUES ($1, $2, $3, $4, 'running', $5::jsonb)",
            name,
            version,
            target,
            group,
            json.dumps(plan.to_json()),
        )
    return version, target, group


async def _run(
    settings: Settings,
    projection: str,
    target: str,
    group: str,
    ranges: list[PartitionRange],
    stop: asyncio.Event,
    on_start: Callable[[list[PartitionRange], dict[Partition, int]], None] | None,
    on_progress: ProgressCallback | None,
) -> RebuildReport:
    report = RebuildReport(projection, target, group)
    started = time.monotonic()
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=1,
        max_size=2,
        server_settings={"search_path": target, "application_name": "fairstream-replay"},
    )
    assert pool is not None
    try:
        model: PostgresProjection = POSTGRES_PROJECTIONS[projection](settings)
        await drive(
            settings, model, PostgresSink(model, pool), report, ranges, stop, on_start, on_progress
        )
    finally:
        await pool.close()
    report.seconds = time.monotonic() - started
    return report


async def drive(
    settings: Settings,
    model: PostgresProjection | DocumentProjection,
    inner: ProjectionSink,
    report: RebuildReport,
    ranges: list[PartitionRange],
    stop: asyncio.Event,
    on_start: Callable[[list[PartitionRange], dict[Partition, int]], None] | None,
    on_progress: ProgressCallback | None,
) -> None:
    """Run the projection into `inner` under the report's group until every range ends."""
    positions = await inner.stored_positions()
    if on_start is not None:
        on_start(ranges, positions)
    sink = BoundedSink(
        inner, {(r.topic, r.partition): r.end for r in ranges}, positions, on_progress
    )
    if not sink.done():
        aiokafka_rebootstrap.install()
        runner = ProjectionRunner(
            model,
            sink=sink,
            codec=build_codec(settings),
            bootstrap=settings.kafka_bootstrap,
            group_id=report.group_id,
            topics=sorted({r.topic for r in ranges}),
            batch_max=settings.projection_batch_max,
        )
        finished = asyncio.Event()
        sink.on_done = finished.set
        relay = asyncio.create_task(_relay(stop, finished))
        try:
            await runner.run(finished)
        finally:
            relay.cancel()
        report.dead_lettered = runner.stats.dead_lettered
    report.events_read, report.applied, report.skipped = sink.read, sink.applied, sink.skipped
    report.positions = dict(sink.positions)
    report.switched = sink.done()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _switch(
    conn: asyncpg.Connection, base: str, projection: str, target: str, version: int
) -> None:
    """Point the projection at the new version and close the run, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            f'INSERT INTO "{base}".read_model_versions AS v'
            " (projection, active_schema, version, previous_schema)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (projection) DO UPDATE SET active_schema = EXCLUDED.active_schema,"
            " version = EXCLUDED.version, previous_schema = v.active_schema, switched_at = now()",
            projection,
            target,
            version,
            base,
        )
        await conn.execute(
            f"UPDATE \"{base}\".replay_runs SET status = 'switched', finished_at = now()"
            " WHERE projection = $1 AND version = $2",
            projection,
            version,
        )


async def drop_old(settings: Settings, projection: str) -> str:
    """Drop the previous version of a projection's read model; return what was dropped."""
    if projection in DOCUMENT_PROJECTIONS:
        from operations.replay.documents import drop_old_database

        return await drop_old_database(settings, projection)
    postgres_projection(projection)
    base = checked_schema(settings.pg_schema)
    conn = await connect(settings)
    try:
        async with ReplayLock(conn, base, projection), conn.transaction():
            row = await conn.fetchrow(
                f'SELECT active_schema, previous_schema FROM "{base}".read_model_versions'
                " WHERE projection = $1 FOR UPDATE",
                projection,
            )
            if row is None or row["previous_schema"] is None:
                raise ReplayError(f"{projection!r} has no previous version to drop")
            old = checked_schema(row["previous_schema"])
            if old == base:
                # The live schema holds other read models too: empty only this one's tables.
                tables = ", ".join(f'"{base}"."{t}"' for t in PROJECTION_TABLES[projection])
                await conn.execute(f"TRUNCATE {tables}")
                await conn.execute(
                    f'DELETE FROM "{base}".projection_positions WHERE projection = $1', projection
                )
                dropped = f"tables {tables}"
            else:
                await conn.execute(f'DROP SCHEMA "{old}" CASCADE')
                dropped = f"schema {old}"
            await conn.execute(
                f'UPDATE "{base}".read_model_versions SET previous_schema = NULL'
                " WHERE projection = $1",
                projection,
            )
        return dropped
    finally:
        await conn.close()
