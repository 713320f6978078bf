"""Every projection against its real store: events through Kafka, rows and documents checked."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from confluent_kafka import Producer
from stacktest import schema_pool

from events.catalog import topic_name
from events.codec import EventCodec
from events.model import Event
from events.testing import example_event
from fairstream.bootstrap import (
    DOCUMENT_PROJECTIONS,
    apply_migrations,
    build_projection_runner,
    connect_pool,
    prepare_document_store,
)
from fairstream.settings import Settings
from projections.bias_daily import PostgresBiasDailyProjection
from projections.documents import DocumentStore
from projections.model_usage import PostgresModelUsageProjection
from projections.runner import Position, PostgresSink, RunStats

pytestmark = pytest.mark.integration
CODEC = EventCodec()


def at(day: str, time: str = "12:00:00") -> dict[str, str]:
    """Return an envelope override for an event that occurred at `day` `time` UTC."""
    return {"occurred_at": f"{day}T{time}Z"}


def publish(settings: Settings, events: Sequence[Event]) -> None:
    """Publish events in order to their topics under the settings' prefix."""
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "linger.ms": 5}
    )
    for event in events:
        encoded = CODEC.encode(event)
        headers: list[tuple[str, str | bytes | None]] = list(encoded.headers)
        producer.produce(
            topic_name(event.type, settings.topic_prefix),
            key=encoded.key,
            value=encoded.value,
            headers=headers,
        )
        producer.poll(0)
    assert producer.flush(60) == 0


async def run_until_idle(
    settings: Settings, name: str, expect_seen: int, timeout: float = 60.0
) -> RunStats:
    """Run one projection until it has seen `expect_seen` records, then a little longer."""
    pool = await connect_pool(settings)
    store: DocumentStore | None = None
    try:
        if name in DOCUMENT_PROJECTIONS:
            store = await prepare_document_store(settings, pool)
        runner = build_projection_runner(settings, name, pool, store)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(int(timeout / 0.25)):
            await asyncio.sleep(0.25)
            s = runner.stats
            if s.applied + s.skipped + s.dead_lettered >= expect_seen or task.done():
                break
        await asyncio.sleep(1.0)  # let anything extra arrive, so duplicates would show
        stop.set()
        return await task
    finally:
        if store is not None:
            await store.close()
        await pool.close()


async def fetch(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run a query in the test's schema and return plain dicts."""
    conn = await asyncpg.connect(
        settings.postgres_dsn.get_secret_value(),
        server_settings={"search_path": settings.pg_schema},
    )
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def rewind_positions(settings: Settings) -> None:
    """Forget every stored position, as if the crash happened before any was written."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'DELETE FROM "{settings.pg_schema}".projection_positions')
    finally:
        await conn.close()
    if settings.document_store == "mongo":
        from motor.motor_asyncio import AsyncIOMotorClient

        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(settings.mongo_url)
        await client[settings.mongo_database]["projection_positions"].delete_many({})
        client.close()


@pytest.fixture
def settings(isolated_settings: Settings, test_id: str) -> Settings:
    """Return the isolated settings with this test's projection groups and Mongo database."""
    return isolated_settings.model_copy(
        update={
            "projection_group_prefix": f"t-{test_id}-proj-",
            "mongo_database": f"t_{test_id}",
        }
    )


@pytest.fixture(params=["mongo", "postgres"])
async def doc_settings(
    request: pytest.FixtureRequest, settings: Settings, event_topics: list[str], pg_schema: str
) -> AsyncIterator[Settings]:
    """Yield settings for each document backend; drop the test's Mongo database after."""
    yield settings.model_copy(update={"document_store": request.param})
    from motor.motor_asyncio import AsyncIOMotorClient

    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(settings.mongo_url)
    await client.drop_database(settings.mongo_database)
    client.close()


async def documents(settings: Settings, collection: str) -> dict[str, dict[str, Any]]:
    """Return every document of a collection by id, via the configured store."""
    pool = await connect_pool(settings)
    try:
        store = await prepare_document_store(settings, pool)
        try:
            return {d["_id"]: d for d in await store.find(collection)}
        finally:
            await store.close()
    finally:
        await pool.close()


# -- PostgreSQL projections -------------------------------------------------------------


def scored(content_id: str, score: float, level: str, day: str, mv: str = "v1", **kw: Any) -> Event:
    """Return a BiasScored event."""
    return example_event(
        "BiasScored",
        content_id=content_id,
        overall_score=score,
        level=level,
        model_version=mv,
        latency_ms=10.0,
        envelope=at(day, kw.pop("time", "12:00:00")),
        **kw,
    )


async def test_bias_daily_counts_each_content_once(
    settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    events = [
        scored("a", 0.1, "low", "2025-06-01"),
        scored("b", 0.5, "medium", "2025-06-01"),
        scored("c", 0.9, "critical", "2025-06-01"),
        scored("d", 0.65, "high", "2025-06-02"),
        scored("e", 0.3, "medium", "2025-06-01", mv="v2"),
        # b re-scored a day later with the same model version: moves to 2025-06-02.
        scored("b", 0.85, "critical", "2025-06-02"),
        # c re-scored with an OLDER time: ignored.
        scored("c", 0.2, "low", "2025-06-01", time="08:00:00"),
        # a (the day's minimum) re-scored the same day: min recomputed.
        scored("a", 0.15, "low", "2025-06-01", time="13:00:00"),
    ]
    publish(settings, events)
    stats = await run_until_idle(settings, "bias-daily", len(events))
    assert (stats.applied, stats.dead_lettered) == (len(events), 0)

    async def rows() -> dict[tuple[date, str], dict[str, Any]]:
        found = await fetch(settings, "SELECT * FROM bias_daily")
        return {(r["day"], r["model_version"]): r for r in found}

    got = await rows()
    assert set(got) == {
        (date(2025, 6, 1), "v1"),
        (date(2025, 6, 2), "v1"),
        (date(2025, 6, 1), "v2"),
    }
    d1 = got[(date(2025, 6, 1), "v1")]
    assert (d1["scored_count"], d1["score_min"], d1["score_max"]) == (2, 0.15, 0.9)
    assert d1["score_sum"] == pytest.approx(1.05)
    assert d1["score_avg"] == pytest.approx(0.525)
    assert (d1["level_low"], d1["level_medium"], d1["level_high"], d1["level_critical"]) == (
        1,
        0,
        0,
        1,
    )
    assert [
        d1[b]
        for b in ("bucket_lt_02", "bucket_lt_04", "bucket_lt_06", "bucket_lt_08", "bucket_ge_08")
    ] == [1, 0, 0, 0, 1]
    d2 = got[(date(2025, 6, 2), "v1")]
    assert (d2["scored_count"], d2["score_min"], d2["score_max"]) == (2, 0.65, 0.85)
    assert (d2["level_high"], d2["level_critical"], d2["bucket_lt_08"], d2["bucket_ge_08"]) == (
        1,
        1,
        1,
        1,
    )
    v2 = got[(date(2025, 6, 1), "v2")]
    assert (v2["scored_count"], v2["level_medium"], v2["bucket_lt_04"]) == (1, 1, 1)
    assert sum(r["scored_count"] for r in got.values()) == 5  # a, b, c, d (v1) and e (v2)

    # Replaying everything (positions lost) must leave the roll-up exactly as it is.
    await rewind_positions(settings)
    again = await run_until_idle(settings, "bias-daily", len(events))
    assert again.applied == len(events)
    assert await rows() == got


async def test_analytics_metrics_one_row_per_window(
    settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    k1, k2 = "bias/minute/x/1", "model_usage/hour/m/1"
    events = [
        example_event("MetricWindowClosed", window_key=k1, count=10, envelope=at("2025-06-01")),
        example_event(
            "MetricWindowClosed",
            window_key=k2,
            family="model_usage",
            window="hour",
            count=3,
            tokens=900,
            cost=0.5,
            envelope=at("2025-06-01"),
        ),
        # k1 emitted again with late events counted: replaces the row.
        example_event(
            "MetricWindowClosed",
            window_key=k1,
            count=12,
            late_count=2,
            envelope=at("2025-06-01", "12:05:00"),
        ),
        # an older emission of k1 arriving late: ignored.
        example_event("MetricWindowClosed", window_key=k1, count=1, envelope=at("2025-05-31")),
    ]
    publish(settings, events)
    stats = await run_until_idle(settings, "analytics-metrics", len(events))
    assert stats.applied == len(events)
    rows = {r["window_key"]: r for r in await fetch(settings, "SELECT * FROM metric_windows")}
    assert set(rows) == {k1, k2}
    assert (rows[k1]["count"], rows[k1]["late_count"], rows[k1]["emitted_count"]) == (12, 2, 2)
    assert rows[k1]["score_buckets"] == [25, 9, 4, 2, 2]
    assert rows[k1]["alert_counts"] == '{"high": 2, "critical": 1}'
    assert (rows[k2]["family"], rows[k2]["window_kind"], rows[k2]["tokens"]) == (
        "model_usage",
        "hour",
        900,
    )


async def test_model_usage_per_model_and_day(
    settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    events = []
    for i in range(1, 101):  # latencies 1..100 ms on one day, every 10th call failed
        events.append(
            example_event(
                "ModelUsageRecorded",
                request_id=f"r-{i}",
                model="m1",
                latency_ms=float(i),
                input_tokens=i,
                output_tokens=2 * i,
                total_tokens=3 * i,
                cost=0.01,
                success=i % 10 != 0,
                cached=i % 4 == 0,
                envelope=at("2025-06-01"),
            )
        )
    events.append(
        example_event("ModelUsageRecorded", model="m1", latency_ms=500.0, envelope=at("2025-06-02"))
    )
    events.append(
        example_event("ModelUsageRecorded", model="m2", latency_ms=7.0, envelope=at("2025-06-01"))
    )
    publish(settings, events)
    stats = await run_until_idle(settings, "model-usage", len(events))
    assert stats.applied == len(events)
    rows = {
        (r["day"], r["model"]): r for r in await fetch(settings, "SELECT * FROM model_usage_daily")
    }
    assert set(rows) == {
        (date(2025, 6, 1), "m1"),
        (date(2025, 6, 2), "m1"),
        (date(2025, 6, 1), "m2"),
    }
    m1 = rows[(date(2025, 6, 1), "m1")]
    assert (m1["requests"], m1["successes"], m1["failures"], m1["cached"]) == (100, 90, 10, 25)
    assert (m1["input_tokens"], m1["output_tokens"], m1["total_tokens"]) == (5050, 10100, 15150)
    assert m1["cost"] == pytest.approx(1.0)
    assert (m1["latency_min_ms"], m1["latency_max_ms"]) == (1.0, 100.0)
    assert m1["latency_avg_ms"] == pytest.approx(50.5)
    assert 95.0 <= m1["latency_p95_ms"] <= 95.0 * 1.05  # exact p95 is 95 ms; bucket bound
    single = rows[(date(2025, 6, 2), "m1")]
    assert (single["requests"], single["latency_p95_ms"]) == (1, 500.0)
    assert rows[(date(2025, 6, 1), "m2")]["latency_p95_ms"] == 7.0


async def test_revenue_projection_rows_and_months(
    settings: Settings, event_topics: list[str], pg_schema: str
) -> None:
    first = example_event("RevenueProjected", projection_id="p1", envelope=at("2025-06-01"))
    other = example_event("RevenueProjected", projection_id="p2", envelope=at("2025-06-01"))
    months = [
        {
            "month": 1,
            "users": 10,
            "free_users": 8,
            "paid_users": 2,
            "revenue": 20.0,
            "revenue_by_tier": {"basic": 20.0},
        },
        {
            "month": 2,
            "users": 20,
            "free_users": 15,
            "paid_users": 5,
            "revenue": 50.0,
            "revenue_by_tier": {"basic": 30.0, "pro": 20.0},
        },
    ]
    newer = example_event(
        "RevenueProjected",
        projection_id="p1",
        months=months,
        total_revenue=70.0,
        final_users=20,
        final_paid_users=5,
        ltv=None,
        envelope=at("2025-06-02"),
    )
    stale = example_event(
        "RevenueProjected", projection_id="p1", total_revenue=1.0, envelope=at("2025-05-01")
    )
    publish(settings, [first, other, newer, stale])
    stats = await run_until_idle(settings, "revenue-projections", 4)
    assert stats.applied == 4
    heads = {
        r["projection_id"]: r for r in await fetch(settings, "SELECT * FROM revenue_projections")
    }
    assert set(heads) == {"p1", "p2"}
    assert (heads["p1"]["total_revenue"], heads["p1"]["months_count"], heads["p1"]["ltv"]) == (
        70.0,
        2,
        None,
    )
    assert heads["p2"]["months_count"] == 3 and heads["p2"]["business_model"] == "freemium"
    rows = await fetch(
        settings,
        "SELECT projection_id, month, paid_users, revenue, revenue_by_tier"
        " FROM revenue_projection_months ORDER BY projection_id, month",
    )
    assert [(r["projection_id"], r["month"]) for r in rows] == [
        ("p1", 1),
        ("p1", 2),
        ("p2", 1),
        ("p2", 2),
        ("p2", 3),
    ]
    assert (
        rows[1]["revenue"] == 50.0 and rows[1]["revenue_by_tier"] == '{"pro": 20.0, "basic": 30.0}'
    )


# -- document projections (both backends) ------------------------------------------------


async def test_campaigns_document(doc_settings: Settings) -> None:
    planned = example_event("CampaignPlanned", envelope=at("2025-06-01"))
    item_score = example_event(
        "BiasScored",
        content_id="mk-2031-ad-03",
        campaign_id="mk-2031",
        overall_score=0.72,
        level="high",
        envelope=at("2025-06-01", "12:01:00"),
    )
    unrelated = example_event("BiasScored", content_id="solo", campaign_id=None)
    screened = example_event("CampaignScreened", envelope=at("2025-06-01", "12:02:00"))
    other_plan = example_event("CampaignPlanned", campaign_id="mk-9", status="active")
    events = [planned, item_score, unrelated, screened, other_plan]
    publish(doc_settings, events)
    stats = await run_until_idle(doc_settings, "campaigns", len(events))
    assert stats.applied == len(events)
    docs = await documents(doc_settings, "campaigns")
    assert set(docs) == {"mk-2031", "mk-9"}
    c = docs["mk-2031"]
    assert (c["status"], c["start_date"], c["items_total"], c["events_applied"]) == (
        "draft",
        "2025-07-01",
        3,
        3,
    )
    assert [ch["channel"] for ch in c["channels"]] == ["social_media", "email"]
    item = c["channels"][0]["items"][1]
    assert item["content_id"] == "mk-2031-ad-03" and "text" not in item
    assert item["text_length"] == len(
        "Spreadsheets are for people too old to learn new tools. Switch to StockSmith today."
    )
    score = c["item_scores"]["mk-2031-ad-03"]
    assert (score["overall_score"], score["level"], score["scored_at"]) == (
        0.72,
        "high",
        "2025-06-01T12:01:00.000Z",
    )
    assert c["verdict"] == "needs_review"
    assert c["screening"]["flagged_items"][0]["reasons"][0].startswith("score 0.72")
    assert "_positions" not in c

    await rewind_positions(doc_settings)
    again = await run_until_idle(doc_settings, "campaigns", len(events))
    assert again.applied == len(events)
    assert await documents(doc_settings, "campaigns") == docs  # re-delivery changed nothing


async def test_opportunities_document(doc_settings: Settings) -> None:
    events = [
        example_event("NicheResearched", envelope=at("2025-06-01")),
        example_event("OpportunityScored", envelope=at("2025-06-01", "12:00:01")),
        example_event("NicheResearched", niche_id="n-2", name="Second"),
    ]
    publish(doc_settings, events)
    await run_until_idle(doc_settings, "opportunities", len(events))
    docs = await documents(doc_settings, "opportunities")
    assert set(docs) == {"niche-ai-inventory-etsy", "n-2"}
    o = docs["niche-ai-inventory-etsy"]
    assert (o["band"], o["overall_score"], o["opportunity_id"], o["events_applied"]) == (
        "very_good",
        0.775,
        "opp-5b1e",
        2,
    )
    assert o["problems"][0]["severity"] == "high" and o["factors"]["growth_rate"] == 0.9
    assert docs["n-2"]["name"] == "Second" and "band" not in docs["n-2"]


async def test_agent_tasks_document(doc_settings: Settings) -> None:
    events = [
        example_event(
            "AgentTaskCompleted",
            task_id=f"task-{i}",
            status="completed",
            envelope=at("2025-06-01", f"09:0{i}:00"),
        )
        for i in range(3)
    ]
    events.append(
        example_event(
            "AgentTaskCompleted",
            task_id="task-1",
            status="failed",
            error="boom",
            envelope=at("2025-06-01", "09:09:00"),
        )
    )
    publish(doc_settings, events)
    await run_until_idle(doc_settings, "agent-tasks", len(events))
    docs = await documents(doc_settings, "agent_tasks")
    assert set(docs) == {"task-0", "task-1", "task-2"}
    t1 = docs["task-1"]
    assert (t1["status"], t1["error"], t1["events_applied"]) == ("failed", "boom", 2)
    assert t1["completed_at"] == "2025-06-01T09:09:00.000Z"
    assert t1["duration_ms"] == 9 * 60 * 1000  # started 09:00:00 in the example
    assert t1["steps"][0]["ended_at"] == "2025-06-01T09:02:13.500Z"


async def apply_with_reemissions(
    settings: Settings, name: str, collection: str, events: Sequence[Event]
) -> dict[str, dict[str, Any]]:
    """Publish events with re-emissions (same ids, new offsets) in one batch, then in later ones.

    Return the documents, checked unchanged by the later re-emissions.
    """
    publish(settings, [*events, *events])  # each event again at a later offset, same batch
    await run_until_idle(settings, name, 2 * len(events))
    first = await documents(settings, collection)
    publish(settings, list(reversed(events)))  # again, in later batches, in another order
    await run_until_idle(settings, name, len(events))
    assert await documents(settings, collection) == first
    return first


def item_score(content_id: str, score: float, time: str) -> Event:
    """Return a BiasScored of a campaign item scored at 2025-06-01 `time`."""
    return example_event(
        "BiasScored",
        content_id=content_id,
        campaign_id="mk-2031",
        overall_score=score,
        level="high",
        envelope=at("2025-06-01", time),
    )


async def test_reemitted_events_count_once_in_campaigns(doc_settings: Settings) -> None:
    events = [
        example_event("CampaignPlanned", envelope=at("2025-06-01")),
        item_score("mk-2031-ad-03", 0.9, "12:05:00"),  # the newest score arrives first
        item_score("mk-2031-ad-03", 0.1, "12:01:00"),
        example_event("CampaignScreened", envelope=at("2025-06-01", "12:06:00")),
    ]
    c = (await apply_with_reemissions(doc_settings, "campaigns", "campaigns", events))["mk-2031"]
    assert c["events_applied"] == 4
    score = c["item_scores"]["mk-2031-ad-03"]
    assert (score["overall_score"], score["scored_at"]) == (0.9, "2025-06-01T12:05:00.000Z")
    assert not {"_positions", "_events", "_newest"} & set(c)

    # An older score in a later batch counts as applied but keeps the newest.
    publish(doc_settings, [item_score("mk-2031-ad-03", 0.2, "12:00:00")])
    await run_until_idle(doc_settings, "campaigns", 1)
    c = (await documents(doc_settings, "campaigns"))["mk-2031"]
    assert c["events_applied"] == 5 and c["item_scores"]["mk-2031-ad-03"]["overall_score"] == 0.9


async def test_campaign_item_score_is_the_newest_whatever_the_arrival_order(
    doc_settings: Settings,
) -> None:
    planned = example_event("CampaignPlanned", envelope=at("2025-06-01"))
    old = item_score("mk-2031-ad-03", 0.1, "12:01:00")
    new = item_score("mk-2031-ad-03", 0.9, "12:05:00")
    tie = [item_score("mk-2031-social-01", s, "12:03:00") for s in (0.3, 0.4)]
    winner = max(tie, key=lambda e: str(e.envelope.event_id))
    publish(doc_settings, [planned, old, *tie])
    await run_until_idle(doc_settings, "campaigns", 4)
    publish(doc_settings, [new, *reversed(tie)])
    await run_until_idle(doc_settings, "campaigns", 3)
    c = (await documents(doc_settings, "campaigns"))["mk-2031"]
    scores = c["item_scores"]
    assert scores["mk-2031-ad-03"]["overall_score"] == 0.9
    assert scores["mk-2031-social-01"]["overall_score"] == winner.payload["overall_score"]
    assert c["events_applied"] == 5


async def test_reemitted_events_count_once_in_opportunities(doc_settings: Settings) -> None:
    events = [
        example_event("NicheResearched", envelope=at("2025-06-01")),
        example_event("OpportunityScored", envelope=at("2025-06-01", "12:00:01")),
    ]
    docs = await apply_with_reemissions(doc_settings, "opportunities", "opportunities", events)
    o = docs["niche-ai-inventory-etsy"]
    assert (o["events_applied"], o["band"], o["name"]) == (
        2,
        "very_good",
        events[0].payload["name"],
    )


async def test_reemitted_events_count_once_in_agent_tasks(doc_settings: Settings) -> None:
    events = [
        example_event(
            "AgentTaskCompleted", task_id="task-1", status=s, envelope=at("2025-06-01", t)
        )
        for s, t in (("in_progress", "09:01:00"), ("completed", "09:09:00"))
    ]
    docs = await apply_with_reemissions(doc_settings, "agent-tasks", "agent_tasks", events)
    assert docs["task-1"]["events_applied"] == 2


async def test_bias_daily_batches_equal_applying_one_by_one(
    isolated_settings: Settings, pg_schema: str
) -> None:
    """Apply the same re-scores event by event and in batches: the roll-ups are identical."""
    rng = random.Random(7)
    levels = ("low", "medium", "high", "critical")
    events = []
    for _ in range(400):
        score = rng.choice([0.05, 0.3, 0.5, 0.7, 0.9, rng.random()])
        events.append(
            scored(
                f"c-{rng.randrange(60)}",
                score,
                levels[min(3, int(score * 4))],
                f"2025-06-0{rng.randrange(1, 4)}",
                mv=f"v{rng.randrange(2)}",
                time=f"1{rng.randrange(10)}:00:00",  # same times: ties and late, older scores
            )
        )
    batched = isolated_settings.model_copy(update={"pg_schema": pg_schema + "_b"})
    await apply_migrations(batched)
    projection = PostgresBiasDailyProjection()
    columns = (
        "day, model_version, scored_count, score_sum, score_min, score_max, level_low,"
        " level_medium, level_high, level_critical, bucket_lt_02, bucket_lt_04, bucket_lt_06,"
        " bucket_lt_08, bucket_ge_08, latency_sum_ms"
    )
    conn = await asyncpg.connect(isolated_settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'SET search_path TO "{pg_schema}"')
        for i, e in enumerate(events):
            async with conn.transaction():
                await projection.apply(conn, e, Position("t", 0, i))
        one_by_one = await conn.fetch(f"SELECT {columns} FROM bias_daily ORDER BY 1, 2")
        await conn.execute(f'SET search_path TO "{batched.pg_schema}"')
        i = 0
        while i < len(events):
            size = rng.randrange(1, 80)
            chunk = [(e, Position("t", 0, i + n)) for n, e in enumerate(events[i : i + size])]
            async with conn.transaction():
                await projection.apply_batch(conn, chunk)
            i += size
        in_batches = await conn.fetch(f"SELECT {columns} FROM bias_daily ORDER BY 1, 2")
        await conn.execute(f'DROP SCHEMA "{batched.pg_schema}" CASCADE')
    finally:
        await conn.close()
    assert len(one_by_one) == len(in_batches) > 0
    for a, b in zip(one_by_one, in_batches, strict=True):
        assert dict(a) == pytest.approx(dict(b), abs=1e-9)


async def test_the_event_id_ledger_forgets_ids_past_its_retention(
    settings: Settings, pg_schema: str
) -> None:
    async with schema_pool(settings, max_size=1) as pool:
        sink = PostgresSink(
            PostgresModelUsageProjection(), pool, ledger_retention=timedelta(hours=1)
        )
        await pool.execute(
            "INSERT INTO projection_applied_events (projection, event_id, occurred_at, recorded_at)"
            " VALUES ('model-usage', $1, '2020-01-01', now() - interval '2 hours'),"
            " ('model-usage', $2, '2020-01-01', now()),"  # an old event, recorded just now
            " ('other', $1, '2020-01-01', now() - interval '2 hours')",
            uuid.UUID(int=1),
            uuid.UUID(int=2),
        )
        assert await sink.prune_ledger() == 1
        left = await pool.fetch(
            "SELECT projection, event_id FROM projection_applied_events ORDER BY 1"
        )
    assert [(r["projection"], r["event_id"].int) for r in left] == [
        ("model-usage", 2),
        ("other", 1),
    ]
