"""Projection logic that needs no services: updates, buckets, percentiles, document sinks."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import asyncpg
import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from events.model import Event
from events.testing import example_event
from projections.agent_tasks import AgentTasksProjection
from projections.bias_daily import bucket_for, level_column
from projections.campaigns import CampaignsProjection
from projections.documents import (
    DocumentSink,
    DocumentStoreError,
    InMemoryDocumentStore,
    apply_update,
    escape_key,
    iso_time,
    plain,
    position_key,
)
from projections.model_usage import latency_bucket, percentile_from_histogram
from projections.opportunities import OpportunitiesProjection
from projections.rows import columns, latest_per_key
from projections.runner import Backoff, Position, new_events, store_unavailable


def test_apply_update_operators() -> None:
    doc = {"a": {"b": 1}, "n": 2}
    out = apply_update(
        doc,
        {
            "$set": {"a.c": [1]},
            "$inc": {"n": 3, "m.k": 1},
            "$unset": {"a.b": ""},
            "$setOnInsert": {"created": 1},
        },
        inserted=False,
    )
    assert out == {"a": {"c": [1]}, "n": 5, "m": {"k": 1}}
    assert doc == {"a": {"b": 1}, "n": 2}  # the input is not changed
    assert apply_update({}, {"$setOnInsert": {"x": 1}}, inserted=True) == {"x": 1}
    with pytest.raises(DocumentStoreError):
        apply_update({}, {"$push": {"x": 1}}, inserted=True)
    with pytest.raises(DocumentStoreError):
        apply_update({"s": "text"}, {"$inc": {"s": 1}}, inserted=False)


def test_keys_and_values() -> None:
    assert escape_key("a.b%c") == "a%2Eb%25c"
    assert escape_key("$x") == "%24x"
    assert position_key(Position("t-1.bias.scored", 3, 9)) == "t-1~bias~scored:3"
    moment = datetime(2025, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert iso_time(moment) == "2025-06-01T12:00:00.123Z"
    assert plain({"d": date(2025, 7, 1), "l": (1, {"t": moment})}) == {
        "d": "2025-07-01",
        "l": [1, {"t": "2025-06-01T12:00:00.123Z"}],
    }


@pytest.mark.parametrize(
    ("score", "column"),
    [
        (0.0, "bucket_lt_02"),
        (0.19, "bucket_lt_02"),
        (0.2, "bucket_lt_04"),
        (0.59, "bucket_lt_06"),
        (0.6, "bucket_lt_08"),
        (0.8, "bucket_ge_08"),
        (1.0, "bucket_ge_08"),
    ],
)
def test_bias_histogram_buckets(score: float, column: str) -> None:
    assert bucket_for(score) == column


def test_level_columns() -> None:
    assert level_column("critical") == "level_critical"
    with pytest.raises(ValueError):
        level_column("severe")


def test_latency_p95_from_histogram_is_within_five_percent() -> None:
    latencies = [float(i) for i in range(1, 1001)]
    histogram: dict[str, int] = {}
    for latency in latencies:
        key = str(latency_bucket(latency))
        histogram[key] = histogram.get(key, 0) + 1
    p95 = percentile_from_histogram(histogram, 0.95, 1.0, 1000.0)
    assert 950.0 <= p95 <= 950.0 * 1.05
    assert percentile_from_histogram({"0": 3}, 0.95, 0.2, 0.7) == 0.7
    assert percentile_from_histogram({}, 0.95, 0.0, 0.0) == 0.0
    assert latency_bucket(0.5) == 0 and latency_bucket(1e30) == 600


async def test_document_sink_applies_once_and_stores_positions() -> None:
    store = InMemoryDocumentStore()
    sink = DocumentSink(AgentTasksProjection(), store)
    first = example_event("AgentTaskCompleted", task_id="t1", status="in_progress")
    second = example_event("AgentTaskCompleted", task_id="t1", status="completed")
    result = await sink.apply_batch("tasks", 0, [(0, first), (1, None), (2, second)])
    assert (result.next_offset, result.applied, result.skipped) == (3, 2, 0)
    assert await store.stored_positions("agent-tasks") == {("tasks", 0): 3}
    again = await sink.apply_batch("tasks", 0, [(2, second)])
    assert (again.next_offset, again.applied, again.skipped) == (3, 0, 1)
    doc = await store.get("agent_tasks", "t1")
    assert doc is not None and (doc["status"], doc["events_applied"]) == ("completed", 2)


async def test_per_document_guard_makes_replay_after_lost_position_a_no_op() -> None:
    store = InMemoryDocumentStore()
    projection = CampaignsProjection()
    planned = example_event("CampaignPlanned", envelope={"occurred_at": "2025-06-01T00:00:00Z"})
    await projection.apply(store, planned, Position("campaign.planned", 0, 4))
    await projection.apply(store, planned, Position("campaign.planned", 0, 4))
    doc = await store.get("campaigns", "mk-2031")
    assert doc is not None and doc["events_applied"] == 1
    assert doc["planned_at"] == "2025-06-01T00:00:00.000Z"
    assert "text" not in doc["channels"][0]["items"][0]


async def test_campaign_keeps_raw_text_only_when_configured() -> None:
    store = InMemoryDocumentStore()
    await CampaignsProjection(store_raw_text=True).apply(
        store, example_event("CampaignPlanned"), Position("p", 0, 0)
    )
    doc = await store.get("campaigns", "mk-2031")
    assert doc is not None and doc["channels"][1]["items"][0]["text"].startswith("Hi there")


def test_new_events_skips_applied_offsets_other_types_and_repeated_event_ids() -> None:
    a = example_event("AgentTaskCompleted", task_id="a")
    b = example_event("AgentTaskCompleted", task_id="b")
    other = example_event("BiasScored")
    records = [(3, a), (4, a), (5, b), (6, None), (7, other), (8, a)]
    pending, skipped, duplicates, next_offset = new_events(
        ("AgentTaskCompleted",), "t", 1, records, 4
    )
    assert [(e.payload["task_id"], p.offset) for e, p in pending] == [("a", 4), ("b", 5)]
    assert (skipped, duplicates, next_offset) == (1, 1, 9)
    assert new_events(("X",), "t", 0, [], 7) == ([], 0, 0, 7)


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, cap=4.0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(initial=1.0, cap=30.0).delay(10_000) == 30.0


def test_latest_per_key_keeps_the_newest_and_the_later_offset_on_ties() -> None:
    def ev(cid: str, time: str, score: float) -> Event:
        return example_event(
            "BiasScored",
            content_id=cid,
            overall_score=score,
            envelope={"occurred_at": f"2025-06-01T{time}Z"},
        )

    events = [
        (ev("a", "10:00:00", 0.1), Position("t", 0, 0)),
        (ev("a", "09:00:00", 0.2), Position("t", 0, 1)),  # older: never replaces
        (ev("b", "10:00:00", 0.3), Position("t", 0, 2)),
        (ev("b", "10:00:00", 0.4), Position("t", 0, 3)),  # tie: the later offset wins
    ]
    kept = latest_per_key(events, "content_id", "model_version")
    assert [(p.offset, e.payload["overall_score"]) for e, p in kept] == [(0, 0.1), (3, 0.4)]
    assert columns([(1, "x"), (2, "y")], 2) == [[1, 2], ["x", "y"]]
    assert columns([], 3) == [[], [], []]


def test_store_unavailable_tells_outages_from_bugs() -> None:
    assert store_unavailable(ConnectionRefusedError())
    assert store_unavailable(asyncpg.exceptions.AdminShutdownError("stopping"))
    assert store_unavailable(AutoReconnect("gone"))
    assert not store_unavailable(asyncpg.exceptions.UniqueViolationError("dup"))
    assert not store_unavailable(ValueError("bad event"))


def test_store_unavailable_reads_relayed_and_cut_connections() -> None:
    # FerretDB relaying its PostgreSQL going down (messages as seen in the fault runs).
    shutdown = OperationFailure(
        "[msg_createindexes.go:155] FATAL: terminating connection due to administrator"
        " command (SQLSTATE 57P01)"
    )
    refused = OperationFailure(
        "[msg_find.go:344] failed to connect to `user=fairstream database=ferretdb`:"
        " server error: FATAL: the database system is shutting down (SQLSTATE 57P03)"
    )
    assert store_unavailable(shutdown) and store_unavailable(refused)
    assert not store_unavailable(OperationFailure("unknown operator: $setIfNewer"))
    # asyncpg when PostgreSQL dies mid-transaction.
    assert store_unavailable(
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        )
    )
    assert store_unavailable(
        asyncpg.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        )
    )
    assert not store_unavailable(asyncpg.InterfaceError("the server expects 2 arguments"))


async def test_batched_document_sink_equals_the_per_event_path() -> None:
    statuses = ("in_progress", "failed", "completed")
    events = [
        example_event("AgentTaskCompleted", task_id=f"t{i % 4}", status=statuses[i % 3])
        for i in range(12)
    ]
    records: list[tuple[int, Event | None]] = [(i, e) for i, e in enumerate(events)]
    records.append((12, events[2]))  # the same event id again at a later offset
    batched, one_by_one = InMemoryDocumentStore(), InMemoryDocumentStore()
    result = await DocumentSink(AgentTasksProjection(), batched).apply_batch("t", 0, records)
    assert (result.applied, result.duplicates) == (12, 1)
    for i, e in enumerate(events):
        await AgentTasksProjection().apply(one_by_one, e, Position("t", 0, i))
    assert await batched.find("agent_tasks") == await one_by_one.find("agent_tasks")
    assert [d["events_applied"] for d in await batched.find("agent_tasks")] == [3, 3, 3, 3]


@pytest.mark.parametrize(
    "projection, events",
    [
        (
            CampaignsProjection(),
            [
                example_event("CampaignPlanned"),
                example_event("BiasScored", campaign_id="mk-2031", content_id="mk-2031-ad-03"),
                example_event("CampaignScreened"),
            ],
        ),
        (
            OpportunitiesProjection(),
            [example_event("NicheResearched"), example_event("OpportunityScored")],
        ),
        (
            AgentTasksProjection(),
            [example_event("AgentTaskCompleted"), example_event("AgentTaskCompleted")],
        ),
    ],
    ids=["campaigns", "opportunities", "agent-tasks"],
)
async def test_document_sink_counts_a_reemitted_event_once(
    projection: CampaignsProjection | OpportunitiesProjection | AgentTasksProjection,
    events: list[Event],
) -> None:
    store = InMemoryDocumentStore()
    sink = DocumentSink(projection, store)
    # A restarted processor re-emits the same event ids at new offsets: same batch, then later.
    first = [(i, e) for i, e in enumerate([*events, events[0]])]
    await sink.apply_batch("t", 0, first)
    (collection,) = projection.indexes
    docs = await store.find(collection)
    assert [d["events_applied"] for d in docs] == [len(events)]
    later = [(len(first) + i, e) for i, e in enumerate(reversed(events))]
    await sink.apply_batch("t", 0, later)
    await sink.apply_batch("t", 1, [(0, events[-1])])  # another partition
    assert await store.find(collection) == docs


async def test_campaign_item_keeps_the_newest_bias_score_in_any_order() -> None:
    def scored(score: float, time: str, event_id: str) -> Event:
        return example_event(
            "BiasScored",
            campaign_id="mk-2031",
            content_id="mk-2031-ad-03",
            overall_score=score,
            envelope={"occurred_at": f"2025-06-01T{time}Z", "event_id": event_id},
        )

    events = [
        scored(0.1, "12:00:00.001", "00000000-0000-4000-8000-000000000009"),
        scored(0.2, "12:00:00.002", "00000000-0000-4000-8000-000000000001"),
        scored(0.3, "12:00:00.002", "00000000-0000-4000-8000-000000000002"),  # tie: id
        scored(0.0, "11:59:59", "00000000-0000-4000-8000-000000000003"),
    ]
    for order in (events, list(reversed(events)), [events[2], events[0], events[3], events[1]]):
        store = InMemoryDocumentStore()
        sink = DocumentSink(CampaignsProjection(), store)
        await sink.apply_batch("s", 0, list(enumerate(order)))
        doc = await store.get("campaigns", "mk-2031")
        assert doc is not None and doc["events_applied"] == 4
        assert doc["item_scores"]["mk-2031-ad-03"]["overall_score"] == 0.3
        assert doc["item_scores"]["mk-2031-ad-03"]["scored_at"] == "2025-06-01T12:00:00.002Z"
