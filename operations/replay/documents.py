"""Rebuild a document (MongoDB) read model blue/green: a new database, one switch.

The rebuild writes into the MongoDB database `<mongo_database>_<projection>_v<N>` through the
unchanged `MongoDocumentStore` and `DocumentSink`, behind the same bounded sink as the
PostgreSQL path, so each partition stops at the planned end offset. The positions are seeded
with the plan's starts in the new database's `projection_positions` collection and stored
there after every batch: `--resume` just runs again. When every partition has reached its
end, one transaction in the live PostgreSQL schema points `read_model_versions.active_database`
at the new database (migration 0041); the API and the live projection read that column. The
old version stays until `--drop-old`. The advisory lock and `replay_runs` are the PostgreSQL
path's, so a document rebuild and a PostgreSQL rebuild of the same name exclude each other.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from fairstream.bootstrap import DOCUMENT_PROJECTIONS
from fairstream.settings import Settings
from operations.replay.exceptions import PlanError, ReplayError
from operations.replay.offsets import delete_group
from operations.replay.plan import Partition, PartitionRange, ReplayPlan
from operations.replay.rebuild import (
    ProgressCallback,
    RebuildReport,
    ReplayLock,
    connect,
    drive,
    replay_group,
)
from projections.documents import POSITIONS_COLLECTION, DocumentSink, MongoDocumentStore
from projections.migrate import checked_schema, migrate

_DATABASE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


def document_projection(settings: Settings, name: str) -> None:
    """Raise ReplayError unless `name` is a document projection on the MongoDB store."""
    if name not in DOCUMENT_PROJECTIONS:
        raise ReplayError(f"{name!r} is not a document projection")
    kind = settings.document_store.strip().lower()
    if kind != "mongo":
        raise ReplayError(
            f"{name!r}: document projections are rebuilt only with the MongoDB document store"
            f" (FAIRSTREAM_DOCUMENT_STORE=mongo); this deployment uses {kind!r}"
        )


def version_database(base: str, projection: str, version: int) -> str:
    """Return the MongoDB database of one version of a document projection's read model."""
    name = f"{base}_{projection.replace('-', '_')}_v{version}"
    if not _DATABASE.match(name):
        raise ReplayError(f"invalid MongoDB database name {name!r} (at most 63 of [A-Za-z0-9_-])")
    return name


async def active_database(
    conn: asyncpg.Connection, schema: str, settings: Settings, projection: str
) -> tuple[str, int]:
    """Return the database serving a document projection now and its version (live: v1)."""
    if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".read_model_versions') is None:
        return settings.mongo_database, 1
    try:
        row = await conn.fetchrow(
            f'SELECT active_database, version FROM "{schema}".read_model_versions'
            " WHERE projection = $1",
            projection,
        )
    except asyncpg.UndefinedColumnError:  # 0041 not applied: nothing was ever switched
        return settings.mongo_database, 1
    if row is None or row["active_database"] is None:
        return settings.mongo_database, 1
    return str(row["active_database"]), int(row["version"])


def _client(settings: Settings) -> Any:
    from motor.motor_asyncio import AsyncIOMotorClient

    return AsyncIOMotorClient(settings.mongo_url, tz_aware=True)


async def live_document_positions(settings: Settings, projection: str) -> dict[Partition, int]:
    """Return the positions stored with the version of the projection serving now."""
    document_projection(settings, projection)
    conn = await connect(settings)
    try:
        database, _ = await active_database(
            conn, checked_schema(settings.pg_schema), settings, projection
        )
    finally:
        await conn.close()
    client = _client(settings)
    try:
        return await MongoDocumentStore(client[database]).stored_positions(projection)
    finally:
        client.close()


async def execute_document_rebuild(
    settings: Settings,
    projection: str,
    plan: ReplayPlan | None,
    *,
    resume: bool = False,
    stop: asyncio.Event | None = None,
    on_start: Callable[[list[PartitionRange], dict[Partition, int]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RebuildReport:
    """Rebuild into a new database (or `resume` the unfinished one) and switch when done."""
    document_projection(settings, projection)
    base = checked_schema(settings.pg_schema)
    stop = stop or asyncio.Event()
    conn = await connect(settings)
    client = _client(settings)
    try:
        await migrate(conn, base)
        async with ReplayLock(conn, base, projection):
            running = await conn.fetchrow(
                f'SELECT version, target_schema, target_database, group_id, plan FROM "{base}"'
                ".replay_runs WHERE projection = $1 AND status = 'running'",
                projection,
            )
            if resume:
                if running is None:
                    raise ReplayError(f"no interrupted rebuild of {projection!r} to resume")
                version, target, group = (
                    running["version"],
                    running["target_database"],
                    running["group_id"],
                )
                if target is None:
                    raise ReplayError(f"the interrupted rebuild of {projection!r} has no database")
                ranges = [PartitionRange(**r) for r in json.loads(running["plan"])]
            else:
                if running is not None:
                    where = running["target_database"] or running["target_schema"]
                    raise ReplayError(
                        f"a rebuild of {projection!r} into {where} was interrupted:"
                        " continue it with --resume"
                    )
                if plan is None:
                    raise PlanError("--execute needs a plan")
                version, target, group = await _start_version(conn, client, settings, base, plan)
                ranges = list(plan.ranges)
            await conn.execute(
                f'INSERT INTO "{base}".replaying_groups (group_id, reason) VALUES ($1, $2)'
                " ON CONFLICT (group_id) DO UPDATE SET started_at = now(), expires_at = NULL",
                group,
                f"fairstream replay {projection} -> MongoDB database {target}",
            )
            try:
                report = RebuildReport(projection, target, group, kind="MongoDB database ")
                started = time.monotonic()
                model = DOCUMENT_PROJECTIONS[projection](settings)
                sink = DocumentSink(model, MongoDocumentStore(client[target]))
                await drive(settings, model, sink, report, ranges, stop, on_start, on_progress)
                report.seconds = time.monotonic() - started
                if report.switched:
                    await _switch(conn, settings, base, projection, target, version)
                    # Its offsets are stored with the documents; a stale group would look replaying.
                    await asyncio.to_thread(delete_group, settings.kafka_bootstrap, group)
            finally:
                await conn.execute(
                    f'DELETE FROM "{base}".replaying_groups WHERE group_id = $1', group
                )
            return report
    finally:
        client.close()
        await conn.close()


async def _start_version(
    conn: asyncpg.Connection, client: Any, settings: Settings, base: str, plan: ReplayPlan
) -> tuple[int, str, str]:
    name = plan.projection
    _, active_version = await active_database(conn, base, settings, name)
    latest = await conn.fetchval(
        f'SELECT max(version) FROM "{base}".replay_runs WHERE projection = $1', name
    )
    version = max(active_version, latest or 0) + 1
    target = version_database(settings.mongo_database, name, version)
    group = replay_group(settings, name, version)
    await client.drop_database(target)  # leftover of a run that never recorded itself
    store = MongoDocumentStore(client[target])
    for collection, fields in DOCUMENT_PROJECTIONS[name](settings).indexes.items():
        await store.ensure_collection(collection, fields)
    for r in plan.ranges:
        await store.save_position(name, r.topic, r.partition, r.start)
    await conn.execute(
        f'INSERT INTO "{base}".replay_runs (projection, version, target_schema, target_database,'
        " group_id, status, plan) VALUES ($1, $2, $3, $4, $5, 'running', $6::jsonb)",
        name,
        version,
        base,
        target,
        group,
        json.dumps(plan.to_json()),
    )
    return version, target, group


async def _switch(
    conn: asyncpg.Connection,
    settings: Settings,
    base: str,
    projection: str,
    target: str,
    version: int,
) -> None:
    """Point the projection at the new database and close the run, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            f'INSERT INTO "{base}".read_model_versions AS v (projection, active_schema, version,'
            " previous_schema, active_database, previous_database)"
            " VALUES ($1, $2, $3, NULL, $4, $5)"
            " ON CONFLICT (projection) DO UPDATE SET active_database = EXCLUDED.active_database,"
            " version = EXCLUDED.version, previous_database = v.active_database,"
            " switched_at = now()",
            projection,
            base,
            version,
            target,
            settings.mongo_database,
        )
        await conn.execute(
            f"UPDATE \"{base}\".replay_runs SET status = 'switched', finished_at = now()"
            " WHERE projection = $1 AND version = $2",
            projection,
            version,
        )


async def drop_old_database(settings: Settings, projection: str) -> str:
    """Drop the previous database of a document projection; return what was dropped."""
    document_projection(settings, projection)
    base = checked_schema(settings.pg_schema)
    conn = await connect(settings)
    client = _client(settings)
    try:
        await migrate(conn, base)
        async with ReplayLock(conn, base, projection), conn.transaction():
            row = await conn.fetchrow(
                f'SELECT active_database, previous_database FROM "{base}".read_model_versions'
                " WHERE projection = $1 FOR UPDATE",
                projection,
            )
            if row is None or row["previous_database"] is None:
                raise ReplayError(f"{projection!r} has no previous version to drop")
            old = str(row["previous_database"])
            if old == row["active_database"]:
                raise ReplayError(f"{old} is the active version of {projection!r}")
            if old == settings.mongo_database:
                # The live database holds the other document read models: drop only this
                # projection's collections and positions.
                db = client[old]
                collections = sorted(DOCUMENT_PROJECTIONS[projection](settings).indexes)
                for collection in collections:
                    await db.drop_collection(collection)
                await db[POSITIONS_COLLECTION].delete_many({"projection": projection})
                dropped = f"collections {', '.join(collections)} of MongoDB database {old}"
            else:
                await client.drop_database(old)
                dropped = f"MongoDB database {old}"
            await conn.execute(
                f'UPDATE "{base}".read_model_versions SET previous_database = NULL'
                " WHERE projection = $1",
                projection,
            )
        return dropped
    finally:
        client.close()
        await conn.close()
