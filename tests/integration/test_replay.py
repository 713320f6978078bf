"""`fairstream replay` against the local stack: plans on real topics, blue/green rebuilds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from stacktest import REPO_ROOT, settings_env

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from events.testing import example_event
from fairstream.bootstrap import build_projection_runner, connect_pool
from fairstream.settings import Settings
from operations.replay.exceptions import ReplayBusyError, ReplayError, RetentionError
from operations.replay.rebuild import (
    PROJECTION_TABLES,
    ReplayLock,
    drop_old,
    execute_rebuild,
    plan_replay,
    version_schema,
)

pytestmark = pytest.mark.integration
CODEC = EventCodec()
VOLATILE = {"applied_at", "updated_at"}  # set with now() when a row is written


@pytest.fixture
async def settings(
    isolated_settings: Settings, test_id: str, event_topics: list[str], pg_schema: str
) -> AsyncIterator[Settings]:
    """Yield isolated settings with small batches; drop the test's version schemas after."""
    yield isolated_settings.model_copy(
        update={"projection_group_prefix": f"t-{test_id}-proj-", "projection_batch_max": 4}
    )
    conn = await asyncpg.connect(isolated_settings.postgres_dsn.get_secret_value())
    try:
        for row in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{pg_schema}\\_%"
        ):
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()


def history(n: int = 24) -> list[Event]:
    """Return BiasScored (with re-scores) and BiasAlertRaised events over a few days."""
    events: list[Event] = []
    for i in range(n):
        day = f"2025-06-0{1 + i % 3}"
        score = round(0.05 + (i * 0.37) % 0.9, 3)
        level = "low" if score < 0.3 else "medium" if score < 0.6 else "high"
        envelope = {"occurred_at": f"{day}T1{i % 10}:00:00Z"}
        content = f"c{i % 15}"  # contents 0..8 are re-scored
        events.append(
            example_event(
                "BiasScored",
                content_id=content,
                overall_score=score,
                level=level,
                model_version="v1",
                latency_ms=float(i),
                envelope=envelope,
            )
        )
        if level == "high":
            events.append(
                example_event(
                    "BiasAlertRaised",
                    content_id=content,
                    overall_score=score,
                    level=level,
                    model_version="v1",
                    envelope=envelope,
                )
            )
    return events


def publish(settings: Settings, events: Sequence[Event]) -> None:
    """Publish events in order to their topics under the settings' prefix."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for event in events:
        encoded = CODEC.encode(event)
        headers: list[tuple[str, str | bytes | None]] = list(encoded.headers)
        producer.produce(
            topic_name(event.type, settings.topic_prefix),
            key=encoded.key,
            value=encoded.value,
            headers=headers,
        )
    assert producer.flush(60) == 0


def records_for(settings: Settings, name: str, events: Sequence[Event]) -> int:
    """Count the published events a projection consumes."""
    types = {"bias-results": {"BiasScored", "BiasAlertRaised"}, "bias-daily": {"BiasScored"}}
    return sum(1 for e in events if e.type in types[name])


async def run_live(settings: Settings, name: str, expect: int) -> None:
    """Run the live projection until it has applied `expect` records."""
    pool = await connect_pool(settings)
    try:
        runner = build_projection_runner(settings, name, pool)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(240):
            await asyncio.sleep(0.25)
            if runner.stats.applied >= expect or task.done():
                break
        stop.set()
        stats = await task
        assert stats.applied == expect
    finally:
        await pool.close()


async def table(settings: Settings, schema: str, name: str) -> list[dict[str, Any]]:
    """Return a table's rows (without volatile columns) in a stable order."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await conn.fetch(f'SELECT * FROM "{schema}"."{name}"')
    finally:
        await conn.close()
    # Sums over contents of several partitions depend on the order partitions are applied in,
    # so floats are compared to 9 decimals; everything else exactly.
    plain = [
        {k: round(v, 9) if isinstance(v, float) else v for k, v in r.items() if k not in VOLATILE}
        for r in rows
    ]
    return sorted(plain, key=repr)


async def one(settings: Settings, sql: str, *args: Any) -> Any:
    """Return one value of a query."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def assert_equal_to_live(settings: Settings, name: str, target: str) -> None:
    """Assert the rebuilt version equals the live one row for row."""
    for tbl in PROJECTION_TABLES[name]:
        live = await table(settings, settings.pg_schema, tbl)
        rebuilt = await table(settings, target, tbl)
        assert live, f"{tbl} is empty: the test proves nothing"
        assert rebuilt == live, tbl


async def test_dry_run_plans_real_topics_and_changes_nothing(settings: Settings) -> None:
    events = history()
    publish(settings, events)
    await run_live(settings, "bias-daily", records_for(settings, "bias-daily", events))
    base = settings.pg_schema

    plan = await plan_replay(settings, "bias-daily", "earliest")
    assert plan.events == records_for(settings, "bias-daily", events)
    live = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in await asyncpg_rows(settings, f'SELECT * FROM "{base}".projection_positions')
    }
    assert {(r.topic, r.partition): r.end for r in plan.ranges if r.end} == live

    out = subprocess.run(
        [sys.executable, "-m", "fairstream.cli", "replay", "bias-daily", "--from", "earliest"],
        env=settings_env(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"total: {plan.events} events in 6 partitions" in out
    assert "dry run: nothing changed" in out
    assert await one(settings, f'SELECT count(*) FROM "{base}".read_model_versions') == 0
    assert await one(settings, f'SELECT count(*) FROM "{base}".replay_runs') == 0
    assert await one(settings, f'SELECT count(*) FROM "{base}".replaying_groups') == 0
    assert (
        await one(settings, "SELECT to_regnamespace($1)", version_schema(base, "bias-daily", 2))
        is None
    )

    # Retention: delete the first records of one partition, then ask to start before them.
    topic = topic_name("BiasScored", settings.topic_prefix)
    busy = max(plan.ranges, key=lambda r: r.events)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    futures = admin.delete_records([TopicPartition(topic, busy.partition, 2)])
    for future in futures.values():
        future.result(30)
    with pytest.raises(RetentionError, match="earliest available offset is 2"):
        await plan_replay(settings, "bias-daily", f"{topic}:{busy.partition}:0")
    again = await plan_replay(settings, "bias-daily", "earliest")
    assert next(r for r in again.ranges if r.partition == busy.partition).start == 2


async def asyncpg_rows(settings: Settings, sql: str) -> list[asyncpg.Record]:
    """Return the rows of a query."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.mark.parametrize("name", ["bias-results", "bias-daily"])
async def test_rebuild_equals_live_and_switches(settings: Settings, name: str) -> None:
    events = history()
    publish(settings, events)
    await run_live(settings, name, records_for(settings, name, events))
    base = settings.pg_schema

    plan = await plan_replay(settings, name, "earliest")
    report = await execute_rebuild(settings, name, plan)
    target = version_schema(base, name, 2)
    assert report.switched and report.target_schema == target
    assert report.group_id.endswith("-replay-v2")
    assert (report.events_read, report.applied, report.skipped) == (plan.events,) * 2 + (0,)
    await assert_equal_to_live(settings, name, target)
    assert (
        await one(
            settings,
            f'SELECT active_schema FROM "{base}".read_model_versions WHERE projection = $1',
            name,
        )
        == target
    )
    assert await one(settings, f'SELECT count(*) FROM "{base}".replaying_groups') == 0

    # The old version stays until --drop-old, which empties only this projection's tables.
    assert await one(settings, f'SELECT count(*) FROM "{base}".{PROJECTION_TABLES[name][0]}') > 0
    dropped = await drop_old(settings, name)
    assert base in dropped
    assert await one(settings, f'SELECT count(*) FROM "{base}".{PROJECTION_TABLES[name][0]}') == 0
    assert await one(settings, f'SELECT count(*) FROM "{target}".{PROJECTION_TABLES[name][0]}') > 0
    with pytest.raises(ReplayError, match="no previous version"):
        await drop_old(settings, name)


async def test_interrupted_rebuild_resumes_and_ends_equal(settings: Settings) -> None:
    name = "bias-daily"
    events = history(40)
    publish(settings, events)
    await run_live(settings, name, records_for(settings, name, events))
    plan = await plan_replay(settings, name, "earliest")

    stop = asyncio.Event()
    first = await execute_rebuild(
        settings, name, plan, stop=stop, on_progress=lambda _key, _n: stop.set()
    )
    assert not first.switched and 0 < first.events_read < plan.events
    base = settings.pg_schema
    assert await one(settings, f'SELECT count(*) FROM "{base}".read_model_versions') == 0
    with pytest.raises(ReplayError, match="--resume"):
        await execute_rebuild(settings, name, plan)

    second = await execute_rebuild(settings, name, None, resume=True)
    assert second.switched and second.target_schema == first.target_schema
    assert first.events_read + second.events_read == plan.events
    await assert_equal_to_live(settings, name, second.target_schema)


async def test_second_replay_is_refused_while_one_runs(settings: Settings) -> None:
    plan = await plan_replay(settings, "bias-daily", "earliest")
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        async with ReplayLock(conn, settings.pg_schema, "bias-daily"):
            with pytest.raises(ReplayBusyError, match="already running"):
                await execute_rebuild(settings, "bias-daily", plan)
    finally:
        await conn.close()
    assert (await execute_rebuild(settings, "bias-daily", plan)).switched


async def test_api_reads_the_active_version_across_the_switch(settings: Settings) -> None:
    import httpx
    import redis.asyncio as aioredis

    from api.app import create_app, redis_prefix_for
    from api.keys import SCOPES, PostgresApiKeyStore

    name = "bias-results"
    events = history()
    publish(settings, events)
    await run_live(settings, name, records_for(settings, name, events))
    pool = await connect_pool(settings)
    try:
        key = await PostgresApiKeyStore(pool).create("test", SCOPES)
    finally:
        await pool.close()
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(settings.model_copy(update={"lag_collector_enabled": False}))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

                async def page() -> list[dict[str, Any]]:
                    r = await client.get("/v1/bias/results?limit=500", headers=headers)
                    assert r.status_code == 200, r.text
                    items: list[dict[str, Any]] = r.json()["items"]
                    return items

                before = await page()
                assert len(before) == 15
                answers: list[list[dict[str, Any]]] = []
                done = asyncio.Event()

                async def query_during_switch() -> None:
                    while not done.is_set():
                        answers.append(await page())

                querying = asyncio.create_task(query_during_switch())
                plan = await plan_replay(settings, name, "earliest")
                assert (await execute_rebuild(settings, name, plan)).switched
                done.set()
                await querying
                assert answers and all(a == before for a in answers)
                await drop_old(settings, name)  # the live schema's tables are now empty
                assert await page() == before
                r = await client.get("/v1/content/c3/bias", headers=headers)
                assert r.status_code == 200 and r.json()["content_id"] == "c3"
    finally:
        client_redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            async for k in client_redis.scan_iter(match=redis_prefix_for(settings) + "*"):
                await client_redis.delete(k)
        finally:
            await client_redis.aclose()
