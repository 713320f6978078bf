"""The analytics processor's logic without Kafka: observations, routing, MetricWindowClosed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from events.catalog import topic_name
from events.codec import EventCodec
from events.testing import example_event
from processors.analytics.service import (
    TICK_KEY,
    AnalyticsAggregationService,
    encode_tick,
    metric_event_id,
    observations_for,
)
from processors.analytics.windows import InMemoryWindowStore, WindowAggregator, to_millis
from processors.deadletter import RawMessage

PREFIX = "t-unit."
AT = "2025-06-01T12:00:10.000Z"


def service(codec: EventCodec) -> AnalyticsAggregationService:
    return AnalyticsAggregationService(
        codec,
        WindowAggregator(InMemoryWindowStore(), grace_ms=5_000),
        observations_topic="app-observations",
        topic_prefix=PREFIX,
        dimension_floor=0.3,
    )


def raw(event_type: str, codec: EventCodec, offset: int = 7, **fields: Any) -> RawMessage:
    encoded = codec.encode(example_event(event_type, envelope={"occurred_at": AT}, **fields))
    return RawMessage(
        topic_name(event_type, PREFIX), 0, offset, encoded.key, encoded.value, encoded.headers
    )


def test_observations_per_family() -> None:
    analytics = example_event("AnalyticsEventRecorded", analytics_type="error")
    [obs] = observations_for(analytics)
    assert (obs.family, obs.group_by, obs.group_value, obs.error) == (
        "analytics",
        "analytics_type",
        "error",
        True,
    )
    usage = example_event("ModelUsageRecorded", total_tokens=0, success=False)
    [obs] = observations_for(usage)
    assert obs.group_key == "model_usage/provider:model=openai:gpt-4o-mini"
    assert (obs.tokens, obs.latency_ms, obs.cost, obs.error) == (640, 842.0, 0.000154, True)
    scored = example_event("BiasScored", envelope={"occurred_at": AT})
    groups = [(o.group_by, o.group_value, o.score) for o in observations_for(scored)]
    # `profession` scores 0.18, under the 0.3 dimension floor.
    assert groups == [("all", "*", 0.72), ("level", "high", 0.72), ("dimension", "age", 0.72)]
    assert {o.alert_level for o in observations_for(scored)} == {"high"}
    assert observations_for(scored)[0].occurred_ms == to_millis(
        datetime(2025, 6, 1, 12, 0, 10, tzinfo=UTC)
    )


def test_route_keys_observations_by_group() -> None:
    codec = EventCodec()
    out = service(codec).route(raw("BiasScored", codec))
    assert not out.dead_lettered and out.event_type == "BiasScored"
    assert [m.key for m in out.messages] == [
        b"bias/all=*",
        b"bias/level=high",
        b"bias/dimension=age",
    ]
    assert {m.topic for m in out.messages} == {"app-observations"}
    assert json.loads(out.messages[0].value or b"{}")["s"] == 0.72


def test_route_dead_letters_garbage_and_wrong_type() -> None:
    codec = EventCodec()
    svc = service(codec)
    garbage = RawMessage(topic_name("ModelUsageRecorded", PREFIX), 2, 5, b"k", b"\x00junk")
    out = svc.route(garbage)
    assert out.dead_lettered
    [letter] = out.messages
    assert letter.topic == topic_name("ModelUsageRecorded", PREFIX) + ".dlq"
    assert letter.value == b"\x00junk"
    assert dict(letter.headers)["dlq_processor"] == b"analytics-aggregator"
    usage = raw("ModelUsageRecorded", codec)
    misplaced = RawMessage(
        topic_name("BiasScored", PREFIX), 0, 1, usage.key, usage.value, usage.headers
    )
    out = svc.route(misplaced)
    assert out.dead_lettered
    assert b"expected BiasScored" in dict(out.messages[0].headers)["dlq_reason"]


def test_closed_window_is_encoded_as_metric_window_closed() -> None:
    codec = EventCodec()
    svc = service(codec)
    routed = svc.route(raw("ModelUsageRecorded", codec)).messages
    routed += svc.route(
        raw("ModelUsageRecorded", codec, offset=8, latency_ms=100.0, cost=0.5)
    ).messages
    for message in routed:
        assert svc.aggregate(3, message.key, message.value or b"", wall_ms=0).messages == []
    # A tick carrying a far-future time closes nothing: idle time is this worker's clock.
    assert svc.aggregate(3, TICK_KEY, encode_tick(10**13), wall_ms=1_000).messages == []
    result = svc.aggregate(3, TICK_KEY, encode_tick(0), wall_ms=10**13)
    assert [c.window for c in result.step.closed] == ["minute", "hour", "day"]
    messages = {c.window: m for c, m in zip(result.step.closed, result.messages, strict=True)}
    minute = messages["minute"]
    assert minute.topic == topic_name("MetricWindowClosed", PREFIX)
    key = "model_usage/minute/provider:model=openai:gpt-4o-mini/2025-06-01T12:00:00.000Z"
    assert minute.key == key.encode()
    event = codec.decode(minute.value or b"", minute.headers)
    assert event.type == "MetricWindowClosed"
    assert event.envelope.event_id == metric_event_id(key)
    assert event.envelope.subject == key
    p = event.payload
    assert (p["family"], p["window"], p["group_by"], p["group_value"]) == (
        "model_usage",
        "minute",
        "provider:model",
        "openai:gpt-4o-mini",
    )
    assert p["window_start"] == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert p["window_end"] == datetime(2025, 6, 1, 12, 1, tzinfo=UTC)
    assert (p["count"], p["tokens"], p["error_count"], p["late_count"]) == (2, 1280, 0, 0)
    assert p["cost"] == 0.000154 + 0.5
    assert (p["latency_avg_ms"], p["latency_p95_ms"]) == (471.0, 842.0)
    assert p["score_avg"] is None and p["score_buckets"] == [] and p["alert_counts"] == {}


def test_create_app_wires_group_topics_and_table() -> None:
    from fairstream.settings import Settings
    from processors.analytics.app import (
        INTERNAL_PARTITIONS,
        create_app,
        internal_topic_specs,
        tick_interval,
    )

    settings = Settings(topic_prefix=PREFIX, analytics_processor_group="t-unit-analytics")
    app = create_app(settings)
    assert app.conf.id == "t-unit-analytics"
    assert sorted(app.agents) == ["aggregate-windows", "route-observations"]
    table = app.tables["windows"]
    assert table.partitions == INTERNAL_PARTITIONS
    assert table.changelog_topic.get_topic_name() == "t-unit-analytics-windows-changelog"
    specs = {s.name: s for s in internal_topic_specs(settings)}
    assert specs["t-unit-analytics-windows-changelog"].cleanup_policy == "compact"
    assert specs["t-unit-analytics-observations"].partitions == INTERNAL_PARTITIONS
    assert (tick_interval(60.0), tick_interval(1.0), tick_interval(8.0)) == (5.0, 0.5, 2.0)
