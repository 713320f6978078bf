"""Tumbling windows without Kafka: assignment, figures, p95, grace, late rule, close once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from processors.analytics.windows import (
    ClosedWindow,
    InMemoryWindowStore,
    Observation,
    WindowAggregator,
    percentile,
    score_bucket,
    to_datetime,
    to_millis,
    window_bounds,
    window_key,
)

GRACE = 5_000
T0 = to_millis(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))  # a day, hour and minute boundary


def ms(h: int, m: int, s: float = 0.0) -> int:
    return to_millis(datetime(2025, 6, 1, h, m, tzinfo=UTC)) + int(s * 1000)


def usage(i: int, at: int, latency: float = 10.0, **kw: object) -> Observation:
    fields: dict[str, object] = {
        "family": "model_usage",
        "group_by": "provider:model",
        "group_value": "openai:gpt-4o-mini",
        "event_id": f"e-{i}",
        "occurred_ms": at,
        "latency_ms": latency,
        "tokens": 100,
        "cost": 0.25,
    }
    fields.update(kw)
    return Observation(**fields)  # type: ignore[arg-type]


def by_kind(closed: list[ClosedWindow]) -> dict[str, ClosedWindow]:
    return {c.window: c for c in closed}


@pytest.mark.parametrize(
    ("at", "kind", "start", "end"),
    [
        (ms(12, 0), "minute", ms(12, 0), ms(12, 1)),
        (ms(12, 0, 59.999), "minute", ms(12, 0), ms(12, 1)),
        (ms(11, 59, 59.999), "minute", ms(11, 59), ms(12, 0)),
        (ms(12, 0), "hour", ms(12, 0), ms(13, 0)),
        (ms(12, 59, 59.999), "hour", ms(12, 0), ms(13, 0)),
        (ms(0, 0), "day", ms(0, 0), ms(0, 0) + 86_400_000),
        (ms(0, 0) - 1, "day", ms(0, 0) - 86_400_000, ms(0, 0)),
        (ms(23, 59, 59.999), "day", ms(0, 0), ms(0, 0) + 86_400_000),
    ],
)
def test_window_bounds_at_boundaries(at: int, kind: str, start: int, end: int) -> None:
    assert window_bounds(at, kind) == (start, end)


def test_window_key_and_time_conversions() -> None:
    assert window_key("bias", "minute", "content_type", "ad", T0) == (
        "bias/minute/content_type=ad/2025-06-01T12:00:00.000Z"
    )
    moment = datetime(2025, 6, 1, 12, 0, 1, 234000, tzinfo=UTC)
    assert to_millis(moment) == T0 + 1234
    assert to_datetime(T0 + 1234) == moment


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    assert percentile([float(v) for v in range(100, 0, -1)], 95) == 95.0
    assert percentile([1.0, 2.0, 3.0, 1000.0], 95) == 1000.0


def test_score_buckets() -> None:
    assert [score_bucket(s) for s in (0.0, 0.1999, 0.2, 0.59, 0.6, 0.8, 1.0)] == [
        0,
        0,
        1,
        2,
        3,
        4,
        4,
    ]


def test_window_closes_when_clock_passes_end_plus_grace_with_exact_figures() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE)
    latencies = [float(v) for v in range(1, 21)]  # p95 nearest rank = 19
    for i, lat in enumerate(latencies):
        out = agg.observe(0, usage(i, ms(12, 0, i), lat, error=i % 5 == 0), wall_ms=0)
        assert out.closed == [] and out.accepted == 3
    # Inside the grace period: the minute window is still open.
    assert agg.observe(0, usage(98, ms(12, 1, 4.999)), wall_ms=0).closed == []
    closed = agg.observe(0, usage(99, ms(12, 1, 5)), wall_ms=0).closed
    assert [c.window for c in closed] == ["minute"]
    minute = closed[0]
    assert minute.window_key == "model_usage/minute/provider:model=openai:gpt-4o-mini/" + (
        "2025-06-01T12:00:00.000Z"
    )
    assert (minute.window_start_ms, minute.window_end_ms) == (ms(12, 0), ms(12, 1))
    assert minute.count == 20
    assert minute.tokens == 2000
    assert minute.cost == 5.0
    assert minute.error_count == 4
    assert minute.latency_avg_ms == 10.5
    assert minute.latency_p95_ms == 19.0
    assert minute.score_avg is None and minute.score_max is None and minute.score_buckets == []
    assert minute.alert_counts == {} and minute.late_count == 0


def test_event_within_grace_is_counted_in_its_window() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE)
    agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0)
    agg.observe(0, usage(2, ms(12, 1, 3)), wall_ms=0)  # clock past the end, inside grace
    assert agg.observe(0, usage(3, ms(12, 0, 59)), wall_ms=0).accepted == 3
    closed = by_kind(agg.observe(0, usage(4, ms(12, 2)), wall_ms=0).closed)
    assert closed["minute"].count == 2


def test_late_event_is_not_counted_and_reported_on_next_close_of_the_group() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE)
    agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0)
    first = agg.observe(0, usage(2, ms(12, 1, 10)), wall_ms=0).closed
    assert [(c.window, c.count) for c in first] == [("minute", 1)]
    late = agg.observe(0, usage(3, ms(12, 0, 30)), wall_ms=0)
    # Late for its minute window (closed), still counted in the open hour and day windows.
    assert (late.late, late.accepted, late.closed) == (1, 2, [])
    closed = agg.observe(0, usage(4, ms(12, 2, 10)), wall_ms=0).closed
    assert [(c.window, c.count, c.late_count) for c in closed] == [("minute", 1, 1)]
    # The late counter was reported once and reset.
    closed = agg.observe(0, usage(5, ms(12, 3, 10)), wall_ms=0).closed
    assert [(c.window, c.late_count) for c in closed] == [("minute", 0)]


def test_window_closes_exactly_once() -> None:
    store = InMemoryWindowStore()
    agg = WindowAggregator(store, grace_ms=GRACE)
    agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0)
    assert len(agg.observe(0, usage(2, ms(12, 1, 30)), wall_ms=0).closed) == 1
    # Re-delivery of an event of the closed window (a duplicate, not late), more clock
    # movement, idle ticks.
    again = agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0)
    assert (again.late, again.duplicates) == (0, 3)
    assert agg.observe(0, usage(3, ms(12, 1, 31)), wall_ms=0).closed == []
    assert agg.tick(0, wall_ms=ms(12, 1, 40)).closed == []
    key = window_key("model_usage", "minute", "provider:model", "openai:gpt-4o-mini", T0)
    assert store.get(f"w/{key}")["closed"] is True


def test_closed_marker_is_pruned_and_the_clock_keeps_the_window_shut() -> None:
    store = InMemoryWindowStore()
    agg = WindowAggregator(store, grace_ms=GRACE, kinds=["minute"])
    agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0)
    agg.observe(0, usage(2, ms(12, 1, 10)), wall_ms=0)
    marker = "w/" + window_key("model_usage", "minute", "provider:model", "openai:gpt-4o-mini", T0)
    assert store.get(marker) is not None
    agg.observe(0, usage(3, ms(12, 5)), wall_ms=0)
    assert store.get(marker) is None
    out = agg.observe(0, usage(4, ms(12, 0, 20)), wall_ms=0)
    assert (out.late, out.accepted) == (1, 0)


def test_duplicate_event_in_open_window_counts_once() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE)
    assert agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0).accepted == 3
    assert agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=0).duplicates == 3
    closed = by_kind(agg.observe(0, usage(2, ms(12, 1, 10)), wall_ms=0).closed)
    assert closed["minute"].count == 1


def test_dedupe_memory_is_bounded() -> None:
    store = InMemoryWindowStore()
    agg = WindowAggregator(store, grace_ms=GRACE, kinds=["minute"], dedupe_size=3)
    for i in range(5):
        agg.observe(0, usage(i, ms(12, 0, i)), wall_ms=0)
    key = "w/" + window_key("model_usage", "minute", "provider:model", "openai:gpt-4o-mini", T0)
    assert store.get(key)["ids"] == ["e-2", "e-3", "e-4"]


def test_idle_lane_closes_by_wall_clock_only_after_idle_period() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE)
    agg.observe(0, usage(1, ms(12, 0, 10)), wall_ms=ms(13, 0))
    assert agg.tick(0, wall_ms=ms(13, 0, 4.999)).closed == []  # not idle for the grace yet
    assert agg.tick(1, wall_ms=ms(13, 0, 10)).closed == []  # another partition has no lane
    closed = by_kind(agg.tick(0, wall_ms=ms(13, 0, 5)).closed)
    # The wall clock passed minute and hour end + grace, not the day's.
    assert sorted(closed) == ["hour", "minute"]
    assert closed["hour"].count == 1
    # After the idle close the clock is the wall clock: the closed windows stay closed.
    assert agg.observe(0, usage(2, ms(12, 0, 20)), wall_ms=ms(13, 0, 6)).late == 2


def test_restored_state_continues_windows_and_restarts_idle_tracking() -> None:
    store = InMemoryWindowStore()
    before = WindowAggregator(store, grace_ms=GRACE)
    before.observe(0, usage(1, ms(12, 0, 10), 4.0), wall_ms=ms(13, 0))
    before.observe(0, usage(2, ms(12, 0, 20), 8.0), wall_ms=ms(13, 0))
    after = WindowAggregator(store, grace_ms=GRACE)  # a new worker with the restored table
    assert after.tick(0, wall_ms=ms(14, 0)).closed == []  # idle time counts from now
    assert after.observe(0, usage(2, ms(12, 0, 20), 8.0), wall_ms=ms(14, 0)).duplicates == 3
    after.observe(0, usage(3, ms(12, 0, 30), 12.0), wall_ms=ms(14, 0))
    closed = by_kind(after.tick(0, wall_ms=ms(14, 0, 6)).closed)
    assert closed["minute"].count == 3
    assert closed["minute"].latency_avg_ms == 8.0
    assert closed["minute"].latency_p95_ms == 12.0


def test_reservoir_bounds_latency_samples_and_keeps_avg_exact() -> None:
    store = InMemoryWindowStore()
    agg = WindowAggregator(store, grace_ms=GRACE, kinds=["minute"], reservoir_size=10)
    for i in range(100):
        agg.observe(0, usage(i, ms(12, 0, i * 0.5), float(i)), wall_ms=0)
    key = "w/" + window_key("model_usage", "minute", "provider:model", "openai:gpt-4o-mini", T0)
    samples = store.get(key)["samples"]
    assert len(samples) == 10 and set(samples) <= {float(i) for i in range(100)}
    closed = agg.observe(0, usage(100, ms(12, 2)), wall_ms=0).closed[0]
    assert closed.count == 100
    assert closed.latency_avg_ms == 49.5
    assert closed.latency_p95_ms == max(samples)


def test_bias_window_scores_buckets_and_alerts() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=GRACE, kinds=["minute"])
    levels = {0.1: None, 0.5: None, 0.7: "high", 0.9: "critical", 0.95: "critical"}
    for i, (score, alert) in enumerate(levels.items()):
        obs = Observation("bias", "all", "*", f"b-{i}", ms(12, 0, i), score, 2.0, alert_level=alert)
        agg.observe(0, obs, wall_ms=ms(13, 0))
    closed = agg.tick(0, wall_ms=ms(13, 0, 4)).closed  # not idle for the grace yet
    assert closed == []
    closed = agg.tick(0, wall_ms=ms(13, 0, 6)).closed
    window = closed[0]
    assert window.count == 5
    assert window.score_sum == pytest.approx(3.15)
    assert window.score_avg == pytest.approx(0.63)
    assert window.score_max == 0.95
    assert window.score_buckets == [1, 0, 1, 1, 2]
    assert window.alert_counts == {"high": 1, "critical": 2}
    assert window.payload()["window_start"] == to_datetime(T0)
