"""The lag data model: statuses, partition samples and evaluated group snapshots."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class LagStatus(enum.IntEnum):
    """Status of a partition or group; the value is the code of the status metric.

    Codes follow Burrow's `StatusConstant` (NOTFOUND 0 .. REWIND 6) so dashboards and alerts
    written for Burrow's exporters read the same numbers; REPLAYING (7) is fairstream's.
    """

    NOTFOUND = 0
    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6
    REPLAYING = 7


# How bad a status is when a group's partitions disagree: the worst one is the group's.
SEVERITY: dict[LagStatus, int] = {
    LagStatus.NOTFOUND: 0,
    LagStatus.OK: 1,
    LagStatus.REPLAYING: 1,
    LagStatus.WARN: 2,
    LagStatus.REWIND: 3,
    LagStatus.STALL: 4,
    LagStatus.STOP: 5,
    LagStatus.ERR: 6,
}


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One observation of a group's position on one partition, as read from Kafka."""

    topic: str
    partition: int
    committed: int
    log_start: int
    log_end: int
    oldest_unconsumed_ms: int | None  # timestamp of the record at `committed`, if lag > 0
    assigned: bool  # a live member of the group owns the partition

    @property
    def lag(self) -> int:
        """Return the offset lag (never negative)."""
        return max(self.log_end - self.committed, 0)


@dataclass(frozen=True, slots=True)
class GroupSample:
    """One observation of a consumer group: its state, members and partitions."""

    group: str
    state: str
    members: int
    partitions: tuple[PartitionSample, ...]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """The evaluated lag of one partition."""

    topic: str
    partition: int
    committed: int
    log_end: int
    lag: int
    lag_seconds: float
    consume_rate: float | None  # offsets committed per second over the window
    produce_rate: float | None  # offsets appended per second over the window
    catch_up_seconds: float | None  # None: not catching up (or unknown)
    assigned: bool
    status: LagStatus


@dataclass(frozen=True, slots=True)
class GroupLag:
    """The evaluated lag of one consumer group at one collection."""

    group: str
    state: str
    members: int
    observed_at: float  # unix seconds
    status: LagStatus  # REPLAYING when the group is replaying
    evaluated_status: LagStatus  # what the rules say, also for a replaying group
    replaying: bool
    max_lag: int
    max_lag_seconds: float
    total_lag: int
    consume_rate: float | None
    catch_up_seconds: float | None
    partitions: tuple[PartitionLag, ...] = field(default=())

    def to_json(self, with_partitions: bool = True) -> dict[str, Any]:
        """Return the group as JSON-ready data (statuses by name)."""
        data = asdict(self)
        data["status"] = self.status.name
        data["status_code"] = int(self.status)
        data["evaluated_status"] = self.evaluated_status.name
        if with_partitions:
            data["partitions"] = [{**asdict(p), "status": p.status.name} for p in self.partitions]
        else:
            del data["partitions"]
            data["partition_count"] = len(self.partitions)
        return data


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    """Every group's evaluated lag at one collection."""

    collected_at: float
    duration_seconds: float
    groups: tuple[GroupLag, ...]

    def group(self, name: str) -> GroupLag | None:
        """Return one group's lag, or None when it is not in the snapshot."""
        return next((g for g in self.groups if g.group == name), None)
