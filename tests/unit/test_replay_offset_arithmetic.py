"""Consumer-group offset resets: kafka-consumer-groups arithmetic and rendering (no services)."""

from __future__ import annotations

import pytest

from operations.replay.exceptions import PlanError
from operations.replay.groups import (
    ShiftBy,
    ToDatetime,
    ToEarliest,
    ToLatest,
    ToOffset,
    parse_spec,
    plan_reset,
    render_reset,
)
from operations.replay.plan import PartitionBounds

BOUNDS = [
    PartitionBounds("content.submitted", 1, 0, 50),
    PartitionBounds("content.submitted", 0, 10, 100),
]
COMMITTED: dict[tuple[str, int], int | None] = {
    ("content.submitted", 0): 40,
    ("content.submitted", 1): None,
}


def news(spec: object, **kw: object) -> dict[int, int]:
    changes = plan_reset(BOUNDS, COMMITTED, spec, **kw)  # type: ignore[arg-type]
    return {c.partition: c.new for c in changes}


def test_earliest_and_latest_use_the_watermarks() -> None:
    assert news(ToEarliest()) == {0: 10, 1: 0}
    assert news(ToLatest()) == {0: 100, 1: 50}


def test_to_offset_is_clamped_into_log_start_and_end() -> None:
    assert news(ToOffset(30)) == {0: 30, 1: 30}
    assert news(ToOffset(5)) == {0: 10, 1: 5}
    assert news(ToOffset(70)) == {0: 70, 1: 50}


def test_shift_by_moves_the_committed_offset_and_clamps() -> None:
    bounds = BOUNDS[1:]
    assert plan_reset(bounds, COMMITTED, ShiftBy(-5))[0].new == 35
    assert plan_reset(bounds, COMMITTED, ShiftBy(-100))[0].new == 10
    assert plan_reset(bounds, COMMITTED, ShiftBy(1000))[0].new == 100


def test_shift_by_needs_a_committed_offset() -> None:
    with pytest.raises(PlanError, match=r"content\.submitted:1: cannot shift"):
        plan_reset(BOUNDS, COMMITTED, ShiftBy(1))


def test_to_datetime_takes_the_time_index_or_the_log_end() -> None:
    by_time = {("content.submitted", 0): 42, ("content.submitted", 1): None}
    assert news(ToDatetime(1_700_000_000_000), by_time=by_time) == {0: 42, 1: 50}


def test_changes_are_sorted_and_keep_current_offsets() -> None:
    changes = plan_reset(BOUNDS, COMMITTED, ToEarliest())
    assert [(c.partition, c.current, c.low, c.high) for c in changes] == [
        (0, 40, 10, 100),
        (1, None, 0, 50),
    ]
    text = render_reset("g", changes)
    lines = text.splitlines()
    assert lines[0].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "LOG-START",
        "LOG-END",
        "CURRENT",
        "NEW",
    ]
    assert lines[1].split() == ["g", "content.submitted", "0", "10", "100", "40", "10"]
    assert lines[2].split() == ["g", "content.submitted", "1", "0", "50", "-", "0"]


def test_parse_spec_takes_exactly_one_option() -> None:
    assert parse_spec(to_earliest=True) == ToEarliest()
    assert parse_spec(shift_by=-3) == ShiftBy(-3)
    assert parse_spec(to_offset=0) == ToOffset(0)
    assert parse_spec(to_datetime="1970-01-01T00:00:01Z") == ToDatetime(1000)
    with pytest.raises(PlanError, match="exactly one"):
        parse_spec()
    with pytest.raises(PlanError, match="exactly one"):
        parse_spec(to_earliest=True, to_latest=True)
    with pytest.raises(PlanError):
        parse_spec(to_datetime="yesterday")
