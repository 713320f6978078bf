"""Plan a replay: parse `--from`/`--to`, turn them into per-partition offset ranges (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from operations.replay.exceptions import PlanError, RetentionError

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Earliest:
    """Start at the earliest offset still retained."""


@dataclass(frozen=True, slots=True)
class AtTime:
    """Start (or stop) at the first record at or after a time."""

    at: datetime

    @property
    def epoch_ms(self) -> int:
        """Return the time as Kafka's milliseconds since the epoch."""
        return int(self.at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class AtOffsets:
    """Start (or stop) at explicit offsets per topic and partition."""

    offsets: Mapping[Partition, int]


Bound = Earliest | AtTime | AtOffsets


@dataclass(frozen=True, slots=True)
class PartitionBounds:
    """Say what Kafka holds in one partition: [low, high) offsets."""

    topic: str
    partition: int
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """One partition's replay range: offsets [start, end)."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def events(self) -> int:
        """Return how many records the range holds (an upper bound: markers take offsets)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """Every partition's range and an estimate of how long the replay takes."""

    projection: str
    ranges: tuple[PartitionRange, ...]
    rate_per_second: float

    @property
    def events(self) -> int:
        """Return the records the plan reads in total."""
        return sum(r.events for r in self.ranges)

    @property
    def estimated_seconds(self) -> float:
        """Return the estimated duration at the plan's rate."""
        return self.events / self.rate_per_second if self.rate_per_second > 0 else 0.0

    def to_json(self) -> list[dict[str, Any]]:
        """Return the ranges as JSON-ready dicts (stored with the run for `--resume`)."""
        return [asdict(r) for r in self.ranges]


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time; a time without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PlanError(f"not an ISO-8601 time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_offsets(text: str) -> dict[Partition, int]:
    """Parse `topic:partition:offset,...` (topic names may not hold a colon)."""
    offsets: dict[Partition, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        topic, sep, rest = item.partition(":")
        partition, sep2, offset = rest.partition(":")
        if not (topic and sep and sep2):
            raise PlanError(f"expected topic:partition:offset, got {item!r}")
        try:
            key, value = (topic, int(partition)), int(offset)
        except ValueError as exc:
            raise PlanError(f"partition and offset must be integers in {item!r}") from exc
        if value < 0 or key[1] < 0:
            raise PlanError(f"negative partition or offset in {item!r}")
        offsets[key] = value
    if not offsets:
        raise PlanError("no offsets given")
    return offsets


def parse_bound(text: str, *, allow_earliest: bool = True) -> Bound:
    """Parse a `--from`/`--to` value: `earliest`, an ISO time or `topic:partition:offset,...`."""
    text = text.strip()
    if text == "earliest":
        if not allow_earliest:
            raise PlanError("`earliest` is not a valid end")
        return Earliest()
    if text.count(":") >= 2 and not text[:4].isdigit():
        return AtOffsets(parse_offsets(text))
    return AtTime(parse_time(text))


def build_plan(
    projection: str,
    bounds: list[PartitionBounds],
    *,
    start: Bound,
    start_by_time: Mapping[Partition, int | None] | None = None,
    end_offsets: Mapping[Partition, int] | None = None,
    end_by_time: Mapping[Partition, int | None] | None = None,
    rate_per_second: float = 2000.0,
) -> ReplayPlan:
    """Resolve the start and end of every partition; refuse a start deleted by retention.

    `start_by_time` and `end_by_time` hold Kafka's `offsets_for_times` answers (None when no
    record is that recent); `end_offsets` is the default end (e.g. the live version's
    positions), the high watermark where it has no entry.
    """
    ranges = []
    for b in sorted(bounds, key=lambda b: (b.topic, b.partition)):
        key = (b.topic, b.partition)
        first = _start(b, start, start_by_time or {})
        last = b.high
        if end_by_time is not None:
            found = end_by_time.get(key)
            last = b.high if found is None else found
        elif end_offsets is not None and key in end_offsets:
            last = end_offsets[key]
        last = min(last, b.high)
        if last < first:
            raise PlanError(f"{b.topic}:{b.partition}: end offset {last} is before start {first}")
        ranges.append(PartitionRange(b.topic, b.partition, first, last))
    return ReplayPlan(projection, tuple(ranges), rate_per_second)


def _start(b: PartitionBounds, start: Bound, by_time: Mapping[Partition, int | None]) -> int:
    key = (b.topic, b.partition)
    if isinstance(start, Earliest):
        return b.low
    if isinstance(start, AtOffsets):
        offset = start.offsets.get(key, b.low)
        if offset > b.high:
            raise PlanError(f"{b.topic}:{b.partition}: offset {offset} is past the end {b.high}")
    else:
        found = by_time.get(key)
        offset = b.high if found is None else found
        if offset == b.low and b.low > 0:
            # Records older than the earliest retained one may have been in range.
            raise RetentionError(b.topic, b.partition, b.low, requested=start.at.isoformat())
    if offset < b.low:
        raise RetentionError(b.topic, b.partition, b.low, requested=str(offset))
    return offset


def format_duration(seconds: float) -> str:
    """Render seconds as `1h02m`, `3m05s` or `4.2s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render_plan(plan: ReplayPlan) -> str:
    """Render the plan as a table with a total line."""
    header = ["TOPIC", "PARTITION", "FROM", "TO", "EVENTS"]
    rows = [
        [r.topic, str(r.partition), str(r.start), str(r.end), str(r.events)] for r in plan.ranges
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
        for line in [header, *rows]
    ]
    lines.append(
        f"total: {plan.events} events in {len(plan.ranges)} partitions, estimated "
        f"{format_duration(plan.estimated_seconds)} at {plan.rate_per_second:.0f} events/s"
    )
    return "\n".join(lines)
