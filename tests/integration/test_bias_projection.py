"""The bias-results projection against real Kafka and PostgreSQL: exactly-once effect."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
from confluent_kafka import Producer

from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from fairstream.bootstrap import build_projection_runner, connect_pool
from fairstream.settings import Settings
from projections.runner import RunStats

pytestmark = pytest.mark.integration
CODEC = EventCodec()


def _publish_scored(settings: Settings, count: int, poison: int = 0) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    topic = topic_name("BiasScored", settings.topic_prefix)
    for i in range(count):
        event = example_event("BiasScored", content_id=f"c-{i}", overall_score=(i % 10) / 10)
        encoded = CODEC.encode(event)
        producer.produce(topic, key=encoded.key, value=encoded.value, headers=encoded.headers)
    for _ in range(poison):
        producer.produce(topic, key=b"poison", value=os.urandom(32))
    assert producer.flush(30) == 0


async def _run_until_idle(settings: Settings, expect_seen: int) -> RunStats:
    pool = await connect_pool(settings)
    try:
        runner = build_projection_runner(settings, "bias-results", pool)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(240):
            await asyncio.sleep(0.25)
            s = runner.stats
            if s.applied + s.skipped + s.dead_lettered >= expect_seen:
                break
        await asyncio.sleep(1.0)  # let anything extra arrive, so duplicates would show
        stop.set()
        return await task
    finally:
        await pool.close()


async def _rows(settings: Settings) -> dict[str, float]:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await conn.fetch(
            f'SELECT content_id, overall_score FROM "{settings.pg_schema}".bias_results'
        )
        return {r["content_id"]: r["overall_score"] for r in rows}
    finally:
        await conn.close()


async def test_applies_each_event_once_and_resumes_from_stored_positions(
    isolated_settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    _publish_scored(isolated_settings, 50, poison=2)
    first = await _run_until_idle(isolated_settings, 52)
    assert (first.applied, first.skipped, first.dead_lettered) == (50, 0, 2)
    rows = await _rows(isolated_settings)
    assert len(rows) == 50 and rows["c-7"] == pytest.approx(0.7)

    # A new consumer group has no committed offsets in Kafka: the runner must resume from
    # the positions stored with the rows, so nothing is applied or dead-lettered twice.
    fresh_group = isolated_settings.model_copy(
        update={"bias_projection_group": isolated_settings.bias_projection_group + "-2"}
    )
    _publish_scored(fresh_group, 5)
    second = await _run_until_idle(fresh_group, 5)
    assert (second.applied, second.dead_lettered) == (5, 0)
    assert len(await _rows(isolated_settings)) == 50  # c-0..c-4 again: upserted, not doubled


async def test_rewound_positions_skip_nothing_twice(
    isolated_settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    _publish_scored(isolated_settings, 20)
    await _run_until_idle(isolated_settings, 20)
    # Simulate a crash after Kafka heard of a commit the database never saw: rewind
    # one partition's stored position; re-delivered events must leave the rows as they are.
    conn = await asyncpg.connect(isolated_settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(
            f'UPDATE "{isolated_settings.pg_schema}".projection_positions SET next_offset = 0'
        )
    finally:
        await conn.close()
    before = await _rows(isolated_settings)
    again = await _run_until_idle(isolated_settings, 20)
    assert (again.applied, again.dead_lettered) == (20, 0)
    assert await _rows(isolated_settings) == before
