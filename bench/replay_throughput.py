"""Benchmark: blue/green rebuild rate of bias-results vs a consume-only read of the same range.

In the same run and against the local stack:
- history: N BiasScored events (each for its own content) are published to a unique topic
  prefix, with no live projection, so the rebuild reads the whole topics up to their end;
- rebuild: `fairstream replay bias-results --from earliest --execute` in-process
  (`operations.replay.rebuild.plan_replay` + `execute_rebuild`: new schema, `-replay-` group,
  positions stored with the rows, switch at the end), timed from start to switch;
- consume-only: a confluent-kafka consumer reads the same partitions over the same planned
  ranges, once without decoding and once decoding every record with the codec.
Prints both rates and the ratio rebuild / consume-only; writes bench/results/replay_throughput.json.
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
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from events.codec import EventCodec
from events.model import Event
from events.topics import apply_topics, topic_specs
from fairstream.bootstrap import apply_migrations
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings, load_settings
from operations.replay.plan import ReplayPlan
from operations.replay.rebuild import execute_rebuild, plan_replay
from producers.generator import TrafficGenerator
from producers.publisher import KafkaEventPublisher

RESULTS = Path(__file__).resolve().parent / "results"


def make_events(count: int, tag: str) -> list[Event]:
    """Return `count` generated BiasScored events, each for its own content."""
    gen = TrafficGenerator(types=("BiasScored",), seed=5)
    events = []
    for i in range(count):
        event = gen.make("BiasScored")
        ident = f"{tag}-{i}"
        events.append(
            dataclasses.replace(
                event,
                payload={**event.payload, "content_id": ident},
                envelope=dataclasses.replace(event.envelope, subject=ident),
            )
        )
    return events


def publish(settings: Settings, events: list[Event]) -> None:
    """Publish the events and wait until the broker confirmed every one."""
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    try:
        publisher.publish_all(events).raise_for_failures()
    finally:
        publisher.close()


def consume_only(settings: Settings, plan: ReplayPlan, *, decode: bool) -> dict[str, Any]:
    """Read the plan's ranges with a plain consumer (optionally decoding); return the rate."""
    codec = EventCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            **librdkafka_security(settings),
            "group.id": f"{settings.topic_prefix}consume-only-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    ranges = [r for r in plan.ranges if r.events > 0]
    ends = {(r.topic, r.partition): r.end for r in ranges}
    pending = set(ends)
    read = 0
    started = time.perf_counter()
    try:
        consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges])
        while pending:
            for m in consumer.consume(500, timeout=1.0):
                if m.error() is not None:
                    continue
                key = (str(m.topic()), int(m.partition() or 0))
                offset = int(m.offset() or 0)
                if key not in pending or offset >= ends[key]:
                    continue
                read += 1
                if decode:
                    value = m.value()
                    assert value is not None
                    codec.decode(value, list(m.headers() or []))  # type: ignore[arg-type]
                if offset + 1 >= ends[key]:
                    pending.discard(key)
    finally:
        consumer.close()
    seconds = time.perf_counter() - started
    return {"events": read, "seconds": round(seconds, 3), "events_per_s": round(read / seconds)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Publish history under a unique prefix, rebuild, read it plainly; clean up."""
    tag = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "topic_prefix": f"bench-{tag}.",
            "pg_schema": f"bench_{tag}",
            "bias_projection_group": f"bench-{tag}-proj-bias-results",
            "projection_group_prefix": f"bench-{tag}-proj-",
            "projection_batch_max": args.batch,
        }
    )
    specs = topic_specs(settings.topic_prefix, brokers=1)
    apply_topics(settings.kafka_bootstrap, specs)
    try:
        await apply_migrations(settings)
        publish(settings, make_events(args.events, tag))
        plan = await plan_replay(settings, "bias-results", "earliest")
        # Consume-only first and last: the rebuild in between must not profit from a warm cache
        # the reference did not have, nor the reverse.
        read_before = await asyncio.to_thread(consume_only, settings, plan, decode=False)
        started = time.perf_counter()
        report = await execute_rebuild(settings, "bias-results", plan)
        seconds = time.perf_counter() - started
        assert report.switched, report.render()
        decoded = await asyncio.to_thread(consume_only, settings, plan, decode=True)
        read_after = await asyncio.to_thread(consume_only, settings, plan, decode=False)
    finally:
        conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
        try:
            for row in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
                settings.pg_schema,
                f"{settings.pg_schema}\\_%",
            ):
                await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        finally:
            await conn.close()
        admin = AdminClient(
            {"bootstrap.servers": settings.kafka_bootstrap, **librdkafka_security(settings)}
        )
        for future in admin.delete_topics([s.name for s in specs], operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    read_only = max(read_before["events_per_s"], read_after["events_per_s"])
    rebuild = {
        "events": report.events_read,
        "applied": report.applied,
        "seconds": round(seconds, 3),
        "events_per_s": round(report.events_read / seconds),
    }
    return {
        "history_events": plan.events,
        "partitions": len(plan.ranges),
        "batch_max": args.batch,
        "rebuild": rebuild,
        "consume_only": {"before": read_before, "after": read_after},
        "consume_decode": decoded,
        "ratio_rebuild_vs_consume_only": round(rebuild["events_per_s"] / read_only, 4),
        "ratio_rebuild_vs_consume_decode": round(
            rebuild["events_per_s"] / decoded["events_per_s"], 4
        ),
    }


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="size of history")
    parser.add_argument("--batch", type=int, default=500, help="projection_batch_max")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    best_read = max(r["events_per_s"] for r in results["consume_only"].values())
    print(f"history: {results['history_events']} events in {results['partitions']} partitions")
    print(
        f"rebuild bias-results (--execute): {results['rebuild']['events_per_s']} events/s"
        f" ({results['rebuild']['seconds']}s)"
    )
    print(f"consume-only read:                {best_read} events/s")
    print(f"consume + decode:                 {results['consume_decode']['events_per_s']} events/s")
    print(
        f"ratio rebuild / consume-only: {results['ratio_rebuild_vs_consume_only']:.3f};"
        f" rebuild / consume+decode: {results['ratio_rebuild_vs_consume_decode']:.3f}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "replay_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
