"""Replay planning: parsing `--from`/`--to` and resolving per-partition ranges (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from operations.replay.exceptions import PlanError, RetentionError
from operations.replay.plan import (
    AtOffsets,
    AtTime,
    Earliest,
    PartitionBounds,
    build_plan,
    format_duration,
    parse_bound,
    render_plan,
)

BOUNDS = [
    PartitionBounds("bias.scored", 1, 0, 50),
    PartitionBounds("bias.scored", 0, 10, 100),
]


def test_parse_bounds() -> None:
    assert parse_bound("earliest") == Earliest()
    assert parse_bound("2025-06-01T09:00:00Z") == AtTime(datetime(2025, 6, 1, 9, tzinfo=UTC))
    assert parse_bound("2025-06-01") == AtTime(datetime(2025, 6, 1, tzinfo=UTC))
    assert parse_bound("a.b:0:5, a.b:1:7") == AtOffsets({("a.b", 0): 5, ("a.b", 1): 7})
    assert AtTime(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)).epoch_ms == 1000


@pytest.mark.parametrize("text", ["yesterday", "a.b:x:1", "a.b:0:-1", ",", "2025-13-01"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(PlanError):
        parse_bound(text)


def test_earliest_is_not_an_end() -> None:
    with pytest.raises(PlanError):
        parse_bound("earliest", allow_earliest=False)


def test_plan_from_earliest_to_live_positions() -> None:
    plan = build_plan(
        "bias-daily",
        BOUNDS,
        start=Earliest(),
        end_offsets={("bias.scored", 0): 60},
        rate_per_second=10,
    )
    assert [(r.topic, r.partition, r.start, r.end) for r in plan.ranges] == [
        ("bias.scored", 0, 10, 60),
        ("bias.scored", 1, 0, 50),  # no live position: up to the high watermark
    ]
    assert plan.events == 100
    assert plan.estimated_seconds == 10.0
    assert "total: 100 events in 2 partitions, estimated 10.0s" in render_plan(plan)


def test_plan_from_offsets_and_to_time() -> None:
    plan = build_plan(
        "p",
        BOUNDS,
        start=AtOffsets({("bias.scored", 0): 20}),
        end_by_time={("bias.scored", 0): 30, ("bias.scored", 1): None},
    )
    assert [(r.start, r.end) for r in plan.ranges] == [(20, 30), (0, 50)]


def test_plan_from_time() -> None:
    start = AtTime(datetime(2025, 6, 1, tzinfo=UTC))
    plan = build_plan(
        "p", BOUNDS, start=start, start_by_time={("bias.scored", 0): 40, ("bias.scored", 1): None}
    )
    assert [(r.start, r.end, r.events) for r in plan.ranges] == [(40, 100, 60), (50, 50, 0)]


def test_start_deleted_by_retention_is_refused() -> None:
    with pytest.raises(RetentionError, match="earliest available offset is 10") as info:
        build_plan("p", BOUNDS, start=AtOffsets({("bias.scored", 0): 3}))
    assert (info.value.topic, info.value.partition, info.value.earliest) == ("bias.scored", 0, 10)
    # A time that resolves to the first retained record may have lost older records too.
    with pytest.raises(RetentionError, match=r"bias\.scored:0"):
        build_plan(
            "p",
            BOUNDS,
            start=AtTime(datetime(2020, 1, 1, tzinfo=UTC)),
            start_by_time={("bias.scored", 0): 10, ("bias.scored", 1): 0},
        )


def test_end_before_start_and_past_end_are_refused() -> None:
    with pytest.raises(PlanError, match="before start"):
        build_plan(
            "p",
            BOUNDS,
            start=AtOffsets({("bias.scored", 0): 50}),
            end_offsets={("bias.scored", 0): 20},
        )
    with pytest.raises(PlanError, match="past the end"):
        build_plan("p", BOUNDS, start=AtOffsets({("bias.scored", 1): 51}))


def test_format_duration() -> None:
    assert (format_duration(4.24), format_duration(185), format_duration(3720)) == (
        "4.2s",
        "3m05s",
        "1h02m",
    )
