"""The analytics aggregator counts each event once whatever is delivered again."""

from __future__ import annotations

from processors.analytics.windows import InMemoryWindowStore, Observation, WindowAggregator

T0 = 1_748_779_200_000  # 2025-06-01T12:00:00Z
SOURCE = "bias.scored:3"


def observation(i: int, *, offset: int | None = None) -> Observation:
    return Observation(
        "bias",
        "all",
        "*",
        f"event-{i}",
        T0 + i * 10,
        score=0.5,
        latency_ms=1.0,
        source=SOURCE,
        position=(i if offset is None else offset, 0),
    )


def test_a_replayed_tail_longer_than_the_id_memory_is_not_counted_again() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=0, idle_ms=0, dedupe_size=16)
    for i in range(1_000):
        agg.observe(0, observation(i), wall_ms=0)
    replayed = [agg.observe(0, observation(i), wall_ms=0) for i in range(200, 1_000)]
    assert sum(step.accepted for step in replayed) == 0
    assert sum(step.duplicates for step in replayed) == 800 * 3


def test_an_upstream_duplicate_at_another_offset_is_not_counted_again() -> None:
    agg = WindowAggregator(InMemoryWindowStore(), grace_ms=0, idle_ms=0, dedupe_size=16)
    for i in range(100):
        agg.observe(0, observation(i), wall_ms=0)
    again = [agg.observe(0, observation(i, offset=500 + i), wall_ms=0) for i in range(100)]
    assert sum(step.accepted for step in again) == 0


def test_a_partly_written_observation_completes_on_replay() -> None:
    store = InMemoryWindowStore()
    agg = WindowAggregator(store, grace_ms=0, idle_ms=0, kinds=["minute", "hour"])
    agg.observe(0, observation(0), wall_ms=0)
    before = dict(store.data)
    agg.observe(0, observation(1), wall_ms=0)
    # Lose the lane and marker writes of observation 1, keep its window writes: a crash
    # between the changelog records of one step.
    for key in [k for k in store.data if k.startswith(("lane/", "seen/")) and k not in before]:
        del store.data[key]
    for key in [k for k in before if k.startswith("lane/")]:
        store.data[key] = before[key]
    again = agg.observe(0, observation(1), wall_ms=0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert store.get("seen/bias/all=*/event-1") == 1
