"""Reset a consumer group's offsets with the semantics of kafka-consumer-groups --reset-offsets.

The arithmetic is pure (`plan_reset`): every new offset is clamped into the partition's
[log start, log end], `--shift-by` moves the committed offset and needs one, `--to-datetime`
takes the first record at or after the time (the log end when none is that recent). The
Kafka side (`KafkaGroupOffsets`) reads committed offsets and watermarks, refuses a group
that has active members and writes the new offsets with `alter_consumer_group_offsets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fairstream.kafka_security import librdkafka_security
from operations.replay.exceptions import PlanError, ReplayError
from operations.replay.offsets import TIMEOUT, KafkaOffsets
from operations.replay.plan import Partition, PartitionBounds, parse_time


@dataclass(frozen=True, slots=True)
class ToEarliest:
    """Reset to the log start."""


@dataclass(frozen=True, slots=True)
class ToLatest:
    """Reset to the log end."""


@dataclass(frozen=True, slots=True)
class ToDatetime:
    """Reset to the first record at or after a time (milliseconds since the epoch)."""

    epoch_ms: int


@dataclass(frozen=True, slots=True)
class ToOffset:
    """Reset every partition to one offset."""

    offset: int


@dataclass(frozen=True, slots=True)
class ShiftBy:
    """Move the committed offset by a signed delta."""

    delta: int


ResetSpec = ToEarliest | ToLatest | ToDatetime | ToOffset | ShiftBy


class GroupActiveError(ReplayError):
    """Refuse to reset the offsets of a group that has active members."""


@dataclass(frozen=True, slots=True)
class OffsetChange:
    """One partition's committed offset now (None: none) and the offset it is reset to."""

    topic: str
    partition: int
    current: int | None
    new: int
    low: int
    high: int


def parse_spec(
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_datetime: str | None = None,
    to_offset: int | None = None,
    shift_by: int | None = None,
) -> ResetSpec:
    """Turn exactly one of the command's reset options into a spec."""
    given: list[ResetSpec] = []
    if to_earliest:
        given.append(ToEarliest())
    if to_latest:
        given.append(ToLatest())
    if to_datetime is not None:
        given.append(ToDatetime(int(parse_time(to_datetime).timestamp() * 1000)))
    if to_offset is not None:
        given.append(ToOffset(to_offset))
    if shift_by is not None:
        given.append(ShiftBy(shift_by))
    if len(given) != 1:
        raise PlanError(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by"
        )
    return given[0]


def plan_reset(
    bounds: Sequence[PartitionBounds],
    committed: Mapping[Partition, int | None],
    spec: ResetSpec,
    by_time: Mapping[Partition, int | None] | None = None,
) -> list[OffsetChange]:
    """Compute every partition's new offset, clamped into [log start, log end]."""
    changes = []
    for b in sorted(bounds, key=lambda b: (b.topic, b.partition)):
        key = (b.topic, b.partition)
        current = committed.get(key)
        if isinstance(spec, ToEarliest):
            wanted = b.low
        elif isinstance(spec, ToLatest):
            wanted = b.high
        elif isinstance(spec, ToOffset):
            wanted = spec.offset
        elif isinstance(spec, ShiftBy):
            if current is None:
                raise PlanError(
                    f"{b.topic}:{b.partition}: cannot shift, the group has no committed offset"
                )
            wanted = current + spec.delta
        else:
            found = (by_time or {}).get(key)
            wanted = b.high if found is None else found
        changes.append(
            OffsetChange(
                b.topic, b.partition, current, min(max(wanted, b.low), b.high), b.low, b.high
            )
        )
    return changes


def render_reset(group: str, changes: Sequence[OffsetChange]) -> str:
    """Render the changes as kafka-consumer-groups does: one line per partition."""
    header = ["GROUP", "TOPIC", "PARTITION", "LOG-START", "LOG-END", "CURRENT", "NEW"]
    rows = [
        [
            group,
            c.topic,
            str(c.partition),
            str(c.low),
            str(c.high),
            "-" if c.current is None else str(c.current),
            str(c.new),
        ]
        for c in changes
    ]
    widths = [max(len(cell) for cell in col) for col in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    )


class KafkaGroupOffsets:
    """Read and reset a consumer group's committed offsets with the AdminClient."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin = AdminClient({"bootstrap.servers": bootstrap, **librdkafka_security()})

    def active_members(self, group: str) -> list[str]:
        """Return the client ids of the group's members (empty for an empty or unknown group)."""
        futures = self._admin.describe_consumer_groups([group], request_timeout=TIMEOUT)
        try:
            description = futures[group].result(TIMEOUT)
        except KafkaException as exc:
            raise ReplayError(f"cannot describe group {group!r}: {exc}") from exc
        return [f"{m.client_id}@{m.host}" for m in description.members]

    def committed(self, group: str, parts: Sequence[Partition]) -> dict[Partition, int | None]:
        """Return the group's committed offset per partition (None where it has none)."""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in parts])
        futures = self._admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT)
        try:
            answer = futures[group].result(TIMEOUT)
        except KafkaException as exc:
            raise ReplayError(f"cannot list offsets of group {group!r}: {exc}") from exc
        return {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in answer.topic_partitions
        }

    def plan(self, group: str, topics: Sequence[str], spec: ResetSpec) -> list[OffsetChange]:
        """Read watermarks, committed offsets and (for a time) offsets; compute the reset."""
        offsets = KafkaOffsets(self._bootstrap)
        try:
            bounds = offsets.bounds(topics)
            parts = [(b.topic, b.partition) for b in bounds]
            by_time = (
                offsets.offsets_for_time(parts, spec.epoch_ms)
                if isinstance(spec, ToDatetime)
                else None
            )
        finally:
            offsets.close()
        return plan_reset(bounds, self.committed(group, parts), spec, by_time)

    def execute(self, group: str, changes: Sequence[OffsetChange]) -> None:
        """Write the new offsets; refuse while the group has active members."""
        members = self.active_members(group)
        if members:
            raise GroupActiveError(
                f"group {group!r} has {len(members)} active member(s) ({', '.join(members)}):"
                " stop its consumers before resetting offsets"
            )
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(c.topic, c.partition, c.new) for c in changes]
        )
        futures = self._admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT)
        try:
            answer = futures[group].result(TIMEOUT)
        except KafkaException as exc:
            raise ReplayError(f"cannot reset offsets of group {group!r}: {exc}") from exc
        failed = [tp for tp in answer.topic_partitions if tp.error is not None]
        if failed:
            raise ReplayError(
                f"group {group!r}: "
                + ", ".join(f"{tp.topic}:{tp.partition} {tp.error}" for tp in failed)
            )
