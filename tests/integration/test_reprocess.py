"""`fairstream reprocess bias`: re-score history with a second model, keep both versions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from stacktest import REPO_ROOT, settings_env

from api.routes.bias import active_model_version
from api.views import bias_for_content
from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from fairstream.bootstrap import (
    build_bias_service,
    build_projection_runner,
    build_scorer,
    connect_pool,
)
from fairstream.settings import Settings
from operations.replay.reprocess import execute_reprocess, plan_reprocess, reprocess_group
from processors.deadletter import RawMessage

pytestmark = pytest.mark.integration
CODEC = EventCodec()
TEXTS = [
    "Women are too emotional to lead engineering teams.",
    "The committee reviewed the budget and approved the new library hours.",
    "Old people cannot learn to use new technology.",
    "Thanks for joining the call, we will send the notes tomorrow.",
    "People from that country are all lazy and dishonest.",
    "The recipe needs two cups of flour and one egg.",
]
N = 18


@pytest.fixture
async def settings(
    isolated_settings: Settings, event_topics: list[str], pg_schema: str
) -> AsyncIterator[Settings]:
    """Yield the test's isolated settings with topics and a migrated schema."""
    yield isolated_settings


def publish_content(settings: Settings) -> list[str]:
    """Publish N ContentSubmitted; score them with the fast model as the live scorer would."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    live = build_bias_service(settings, build_scorer(settings, "fast"))
    raw = []
    ids = []
    for i in range(N):
        event = example_event("ContentSubmitted", content_id=f"c{i}", text=TEXTS[i % len(TEXTS)])
        encoded = CODEC.encode(event)
        topic = topic_name("ContentSubmitted", settings.topic_prefix)
        producer.produce(topic, key=encoded.key, value=encoded.value, headers=list(encoded.headers))
        raw.append(RawMessage(topic, 0, i, encoded.key, encoded.value, list(encoded.headers)))
        ids.append(f"c{i}")
    for out in live.handle_batch(raw).messages:
        producer.produce(out.topic, key=out.key, value=out.value, headers=list(out.headers))
    assert producer.flush(60) == 0
    return ids


async def project(settings: Settings, expect_rows: int) -> None:
    """Run the bias-results projection in-process until bias_results holds `expect_rows`."""
    pool = await connect_pool(settings)
    try:
        runner = build_projection_runner(settings, "bias-results", pool)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(240):
            await asyncio.sleep(0.25)
            if await pool.fetchval("SELECT count(*) FROM bias_results") >= expect_rows:
                break
            if task.done():
                break
        stop.set()
        await task
    finally:
        await pool.close()


async def test_reprocess_with_quality_keeps_both_versions(settings: Settings) -> None:
    ids = publish_content(settings)
    fast = build_scorer(settings, "fast").version
    quality = build_scorer(settings, "quality").version
    await project(settings, N)

    # Dry run through the command: the plan covers every ContentSubmitted, nothing is produced.
    out = subprocess.run(
        [sys.executable, "-m", "fairstream.cli", "reprocess", "bias", "--model", "quality"],
        env=settings_env(settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"total: {N} events in" in out and "dry run: nothing changed" in out

    plan = await asyncio.to_thread(plan_reprocess, settings, "earliest")
    assert plan.events == N
    report = await asyncio.to_thread(execute_reprocess, settings, "quality", plan)
    assert report.finished, report.render()
    assert (report.events_read, report.scored, report.dead_lettered) == (N, N, 0)
    assert report.model_version == quality
    assert report.group_id == reprocess_group(settings, quality)
    assert "-replay-" in report.group_id
    # A finished run deletes its group, so the lag dashboard does not show it replaying.
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result(10)
    assert report.group_id not in {g.group_id for g in listed.valid}

    await project(settings, 2 * N)
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'SET search_path TO "{settings.pg_schema}"')
        rows = await conn.fetch("SELECT content_id, model_version FROM bias_results")
        assert sorted((r["content_id"], r["model_version"]) for r in rows) == sorted(
            (c, v) for c in ids for v in (fast, quality)
        )
        # The API answers for the active version by default, and for another on request.
        active = active_model_version(settings)
        assert active == fast
        for content in ids:
            default = await bias_for_content(conn, content, None, active)
            assert default is not None and default["model_version"] == fast
            other = await bias_for_content(conn, content, quality, active)
            assert other is not None and other["model_version"] == quality
    finally:
        await conn.close()

    # Running again produces the same BiasScored ids: the read model keeps one row per version.
    again = await asyncio.to_thread(execute_reprocess, settings, "quality", plan)
    assert again.finished and again.scored == N
    await project(settings, 2 * N)
    pool = await connect_pool(settings)
    try:
        assert await pool.fetchval("SELECT count(*) FROM bias_results") == 2 * N
    finally:
        await pool.close()
