"""Benchmark: projection throughput (events/s applied) vs a raw bulk write of the same rows.

For each projection, in the same run and against the local stack:
- projection: N events are published to a unique topic prefix, then the projection's runner
  (`fairstream.bootstrap.build_projection_runner`) runs in this process until it has applied
  all N; the rate is taken from the end of the first applied batch to the end of the last, so
  consumer start-up and the group join are not counted;
- raw: the rows (or documents) the projection wrote are read back and written again with the
  same driver into an identical scratch table (collection): asyncpg `copy_records_to_table`
  and `executemany` (one transaction per `projection_batch_max` rows) for PostgreSQL, motor
  upserts for MongoDB: `bulk_write` (same batch size) one batch at a time and as many at
  once as the projection writes documents (`mongo_write_concurrency`), and one `update_one`
  per document that many at once (the projection's own shape); the fastest is the reference.
The ratio projection / raw is the figure; absolute rates depend on the machine. The time spent
inside the sink's `apply_batch` (the database side, decoding and Kafka excluded) is reported
too, as `sink_events_per_s` and `ratio_sink_vs_*`.
Prints both sides and the ratio; writes bench/results/projection_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka.admin import AdminClient

from events.model import Event
from events.topics import apply_topics, topic_specs
from fairstream.bootstrap import (
    apply_migrations,
    build_projection_runner,
    connect_pool,
    prepare_document_store,
)
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings, load_settings
from producers.generator import TrafficGenerator
from producers.publisher import KafkaEventPublisher
from projections.runner import BatchResult, ProjectionSink

RESULTS = Path(__file__).resolve().parent / "results"
# Tables each PostgreSQL projection writes (rows re-written by the raw side).
PG_TABLES = {
    "bias-results": ("bias_results",),
    "bias-daily": ("bias_daily_contributions", "bias_daily"),
}
DOC_COLLECTIONS = {"agent-tasks": "agent_tasks"}


def make_events(event_type: str, count: int, tag: str) -> list[Event]:
    """Return `count` generated events, each for its own entity (no upsert collapses rows)."""
    gen = TrafficGenerator(types=(event_type,), seed=11)
    field = {"BiasScored": "content_id", "AgentTaskCompleted": "task_id"}[event_type]
    events = []
    for i in range(count):
        event = gen.make(event_type)
        ident = f"{tag}-{i}"
        events.append(
            dataclasses.replace(
                event,
                payload={**event.payload, field: ident},
                envelope=dataclasses.replace(event.envelope, subject=ident),
            )
        )
    return events


def publish(settings: Settings, events: Sequence[Event]) -> None:
    """Publish the events and wait until the broker confirmed every one."""
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    try:
        publisher.publish_all(events).raise_for_failures()
    finally:
        publisher.close()


class TimedSink:
    """Wrap a projection sink and note when each batch finished and how much it applied."""

    def __init__(self, inner: ProjectionSink, target: int, done: asyncio.Event) -> None:
        self._inner = inner
        self._target = target
        self._done = done
        self.marks: list[tuple[float, int]] = []  # (time after the batch, applied so far)
        self.applied = 0
        self.in_sink = 0.0  # seconds spent inside the inner sink (the database side)

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Delegate."""
        return await self._inner.stored_positions()

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[tuple[int, Event | None]]
    ) -> BatchResult:
        """Delegate, then note the time and the running count."""
        started = time.perf_counter()
        result = await self._inner.apply_batch(topic, partition, records)
        ended = time.perf_counter()
        self.in_sink += ended - started
        self.applied += result.applied
        self.marks.append((ended, self.applied))
        if self.applied >= self._target:
            self._done.set()
        return result


async def run_projection(
    settings: Settings,
    name: str,
    pool: asyncpg.Pool,
    count: int,
    timeout: float,
    store: Any = None,
) -> dict[str, Any]:
    """Run the projection until it applied `count` events; return its steady rate."""
    runner = build_projection_runner(settings, name, pool, store)
    done = asyncio.Event()
    timed = TimedSink(runner.sink, count, done)
    runner.sink = timed
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        raise SystemExit(
            f"{name}: only {timed.applied}/{count} applied in {timeout:.0f} s"
        ) from None
    finally:
        stop.set()
        await task
    (t0, first), (t1, last) = timed.marks[0], timed.marks[-1]
    return {
        "events": count,
        "events_per_s": (last - first) / max(1e-9, t1 - t0),
        "batches": len(timed.marks),
        "wall_including_startup_s": t1 - started,
        "sink_events_per_s": timed.applied / max(1e-9, timed.in_sink),
    }


async def raw_postgres(pool: asyncpg.Pool, tables: Sequence[str], batch: int) -> dict[str, Any]:
    """Re-write the projection's rows into identical scratch tables: COPY, then executemany."""
    rates: dict[str, float] = {}
    async with pool.acquire() as conn:
        data = {}
        for table in tables:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = $1 AND is_generated = 'NEVER'"
                " ORDER BY ordinal_position",
                table,
            )
            names = ", ".join(c["column_name"] for c in columns)  # generated ones are derived
            data[table] = await conn.fetch(f"SELECT {names} FROM {table}")
        total = sum(len(rows) for rows in data.values())
        for method in ("copy", "executemany"):
            for table in tables:
                await conn.execute(f"DROP TABLE IF EXISTS raw_{table}")
                await conn.execute(f"CREATE TABLE raw_{table} (LIKE {table} INCLUDING ALL)")
            started = time.perf_counter()
            for table, rows in data.items():
                columns = list(rows[0].keys()) if rows else []
                records = [tuple(r.values()) for r in rows]
                for i in range(0, len(records), batch):
                    chunk = records[i : i + batch]
                    async with conn.transaction():
                        if method == "copy":
                            await conn.copy_records_to_table(
                                f"raw_{table}", records=chunk, columns=columns
                            )
                        else:
                            marks = ", ".join(f"${n + 1}" for n in range(len(columns)))
                            await conn.executemany(
                                f"INSERT INTO raw_{table} ({', '.join(columns)}) VALUES ({marks})",
                                chunk,
                            )
            rates[method] = total / (time.perf_counter() - started)
    return {
        "rows": total,
        "copy_rows_per_s": rates["copy"],
        "executemany_rows_per_s": rates["executemany"],
    }


async def raw_mongo(
    store: Any, collection: str, indexes: Sequence[str], batch: int, concurrency: int
) -> dict[str, Any]:
    """Re-write the projection's documents as plain upserts into a scratch collection.

    Three ways, each into a fresh collection: `bulk_write` a batch at a time; `bulk_write`
    in `concurrency` lanes at once (FerretDB applies a bulk's upserts one by one, so lanes
    are what a writer can add); and one `update_one` per document, `concurrency` at once
    (the projection's own shape, without its position guard). The fastest is the reference.
    """
    from pymongo import ASCENDING, UpdateOne

    db = store._db  # the motor database the store writes to (bench only)
    docs = await db[collection].find({}).to_list(None)
    upserts = [
        ({"_id": d["_id"]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}) for d in docs
    ]
    ops = [UpdateOne(query, update, upsert=True) for query, update in upserts]
    scratch = db[f"raw_{collection}"]

    async def write_lane(lane: Sequence[Any]) -> None:
        for i in range(0, len(lane), batch):
            await scratch.bulk_write(list(lane[i : i + batch]), ordered=False)

    async def update_lane(lane: Sequence[Any]) -> None:
        for query, update in lane:
            await scratch.update_one(query, update, upsert=True)

    lanes = max(1, concurrency)
    ways = {
        "sequential": (write_lane, 1, "bulk_write, one batch at a time"),
        "concurrent": (write_lane, lanes, f"bulk_write, {lanes} at once"),
        "update_one": (update_lane, lanes, f"update_one, {lanes} at once"),
    }
    rates = {}
    for name, (write, n, _) in ways.items():
        items = upserts if name == "update_one" else ops
        await scratch.drop()
        for field in indexes:
            await scratch.create_index([(field, ASCENDING)])
        started = time.perf_counter()
        await asyncio.gather(*(write(items[k::n]) for k in range(n)))
        rates[name] = len(docs) / (time.perf_counter() - started)
    await scratch.drop()
    best = max(rates, key=lambda k: rates[k])
    return {
        "rows": len(docs),
        "concurrency": lanes,
        "bulk_write_sequential_rows_per_s": rates["sequential"],
        "bulk_write_concurrent_rows_per_s": rates["concurrent"],
        "update_one_concurrent_rows_per_s": rates["update_one"],
        "bulk_write_rows_per_s": rates[best],
        "reference": ways[best][2],
    }


async def bench_postgres(settings: Settings, names: Sequence[str], count: int) -> dict[str, Any]:
    """Publish `count` BiasScored once; run each PostgreSQL projection over them, then raw."""
    publish(settings, make_events("BiasScored", count, "bench"))
    pool = await connect_pool(settings)
    out: dict[str, Any] = {}
    try:
        for name in names:
            proj = await run_projection(settings, name, pool, count, timeout=600)
            raw = await raw_postgres(pool, PG_TABLES[name], settings.projection_batch_max)
            out[name] = {
                "projection": proj,
                "raw": raw,
                "ratio_vs_copy": proj["events_per_s"] / raw["copy_rows_per_s"],
                "ratio_vs_executemany": proj["events_per_s"] / raw["executemany_rows_per_s"],
                "ratio_sink_vs_copy": proj["sink_events_per_s"] / raw["copy_rows_per_s"],
            }
            print(
                f"{name:>13}: projection {proj['events_per_s']:8.0f} ev/s | raw asyncpg copy"
                f" {raw['copy_rows_per_s']:8.0f} rows/s (ratio {out[name]['ratio_vs_copy']:.3f})"
                f" | executemany {raw['executemany_rows_per_s']:8.0f} rows/s"
                f" (ratio {out[name]['ratio_vs_executemany']:.3f}) | {raw['rows']} rows"
                f" | sink alone {proj['sink_events_per_s']:8.0f} ev/s"
                f" (ratio {out[name]['ratio_sink_vs_copy']:.3f} vs copy)",
                flush=True,
            )
    finally:
        await pool.close()
    return out


async def bench_mongo(settings: Settings, name: str, count: int) -> dict[str, Any]:
    """Publish `count` events of the document projection; run it on MongoDB, then raw."""
    from fairstream.bootstrap import DOCUMENT_PROJECTIONS

    projection = DOCUMENT_PROJECTIONS[name](settings)
    publish(settings, make_events(projection.event_types[0], count, "bench"))
    pool = await connect_pool(settings)
    store = await prepare_document_store(settings, pool)
    try:
        proj = await run_projection(settings, name, pool, count, timeout=900, store=store)
        collection = DOC_COLLECTIONS[name]
        raw = await raw_mongo(
            store,
            collection,
            projection.indexes[collection],
            settings.projection_batch_max,
            settings.mongo_write_concurrency,
        )
    finally:
        with contextlib.suppress(Exception):
            await store._client.drop_database(settings.mongo_database)
        await store.close()
        await pool.close()
    ratio = proj["events_per_s"] / raw["bulk_write_rows_per_s"]
    sink_ratio = proj["sink_events_per_s"] / raw["bulk_write_rows_per_s"]
    print(
        f"{name:>13}: projection {proj['events_per_s']:8.0f} ev/s | raw motor"
        f" {raw['bulk_write_rows_per_s']:8.0f} docs/s (ratio {ratio:.3f}; one batch at a time"
        f" {raw['bulk_write_sequential_rows_per_s']:.0f}, {raw['concurrency']} at once"
        f" {raw['bulk_write_concurrent_rows_per_s']:.0f}, update_one {raw['concurrency']} at once"
        f" {raw['update_one_concurrent_rows_per_s']:.0f}) | {raw['rows']} docs"
        f" (MongoDB wire: FerretDB) | sink alone {proj['sink_events_per_s']:8.0f} ev/s"
        f" (ratio {sink_ratio:.3f})",
        flush=True,
    )
    return {
        name: {
            "projection": proj,
            "raw": raw,
            "ratio_vs_bulk_write": ratio,
            "ratio_sink_vs_bulk_write": sink_ratio,
        }
    }


async def drop_schema(settings: Settings) -> None:
    """Drop the benchmark's PostgreSQL schema."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up unique topics, schema and database; run the chosen benchmarks; clean up."""
    tag = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "topic_prefix": f"bench-{tag}.",
            "pg_schema": f"bench_{tag}",
            "bias_projection_group": f"bench-{tag}-proj-bias-results",
            "projection_group_prefix": f"bench-{tag}-proj-",
            "mongo_database": f"bench_{tag}",
            "document_store": "mongo",
            "projection_batch_max": args.batch,
        }
    )
    specs = topic_specs(settings.topic_prefix, brokers=1)
    apply_topics(settings.kafka_bootstrap, specs)
    results: dict[str, Any] = {"batch_max": args.batch, "projections": {}}
    try:
        await apply_migrations(settings)
        pg = [n for n in args.postgres.split(",") if n]
        if pg and args.pg_events > 0:
            results["pg_events"] = args.pg_events
            results["projections"] |= await bench_postgres(settings, pg, args.pg_events)
        if args.mongo and args.mongo_events > 0:
            results["mongo_events"] = args.mongo_events
            results["projections"] |= await bench_mongo(settings, args.mongo, args.mongo_events)
    finally:
        await drop_schema(settings)
        admin = AdminClient(
            {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
        )
        for future in admin.delete_topics([s.name for s in specs], operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    return results


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default="bias-results,bias-daily")
    parser.add_argument("--pg-events", type=int, default=20000)
    parser.add_argument("--mongo", default="agent-tasks", choices=[*sorted(DOC_COLLECTIONS), ""])
    parser.add_argument("--mongo-events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="projection_batch_max")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "projection_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
