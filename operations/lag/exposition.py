"""Expose the latest lag snapshot to Prometheus, named like kafka-lag-exporter and Burrow.

Per partition (labels group, topic, partition): `kafka_consumergroup_group_lag` (offset lag),
`kafka_consumergroup_group_lag_seconds` (age of the oldest unconsumed record, 0 without lag),
`kafka_consumergroup_group_offset` (committed offset),
`kafka_consumergroup_group_partition_status` (status code); `kafka_partition_latest_offset`
(topic, partition: log-end offset).

Per group (label group): `kafka_consumergroup_group_max_lag`,
`kafka_consumergroup_group_max_lag_seconds`, `kafka_consumergroup_group_sum_lag`,
`kafka_consumergroup_group_status` (`LagStatus` code: 0 NOTFOUND, 1 OK, 2 WARN, 3 ERR, 4 STOP,
5 STALL, 6 REWIND, 7 REPLAYING) and `kafka_consumergroup_group_replaying` (1 while replaying).

The collector itself: `kafka_consumergroup_poll_time_seconds`,
`kafka_consumergroup_last_collection_timestamp_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from operations.lag.model import LagSnapshot

PARTITION_LABELS = ["group", "topic", "partition"]


class LagExposition(Collector):
    """A custom Prometheus collector that renders the newest snapshot of the attached source."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], LagSnapshot | None]] = []

    def attach(self, source: Callable[[], LagSnapshot | None]) -> None:
        """Serve snapshots from `source` (the most recently attached one wins)."""
        self._sources.append(source)

    def detach(self, source: Callable[[], LagSnapshot | None]) -> None:
        """Stop serving `source`."""
        if source in self._sources:
            self._sources.remove(source)

    def describe(self) -> list[Metric]:
        """Describe nothing up front, so registering never triggers a collection."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the lag metric families of the current snapshot."""
        snapshot = self._sources[-1]() if self._sources else None
        if snapshot is None:
            return
        yield from render(snapshot)


def render(snapshot: LagSnapshot) -> list[Metric]:
    """Build every metric family from a snapshot."""
    lag = GaugeMetricFamily(
        "kafka_consumergroup_group_lag",
        "Offset lag of a group on a partition.",
        labels=PARTITION_LABELS,
    )
    lag_s = GaugeMetricFamily(
        "kafka_consumergroup_group_lag_seconds",
        "Age of the oldest unconsumed record of a group on a partition (0 without lag).",
        labels=PARTITION_LABELS,
    )
    offset = GaugeMetricFamily(
        "kafka_consumergroup_group_offset",
        "Committed offset of a group on a partition.",
        labels=PARTITION_LABELS,
    )
    p_status = GaugeMetricFamily(
        "kafka_consumergroup_group_partition_status",
        "Status code of a group on a partition (see kafka_consumergroup_group_status).",
        labels=PARTITION_LABELS,
    )
    latest = GaugeMetricFamily(
        "kafka_partition_latest_offset",
        "Log-end offset of a partition.",
        labels=["topic", "partition"],
    )
    max_lag = GaugeMetricFamily(
        "kafka_consumergroup_group_max_lag",
        "Largest partition offset lag of a group.",
        labels=["group"],
    )
    max_lag_s = GaugeMetricFamily(
        "kafka_consumergroup_group_max_lag_seconds",
        "Largest partition time lag of a group.",
        labels=["group"],
    )
    sum_lag = GaugeMetricFamily(
        "kafka_consumergroup_group_sum_lag", "Total offset lag of a group.", labels=["group"]
    )
    status = GaugeMetricFamily(
        "kafka_consumergroup_group_status",
        "Group status: 0 NOTFOUND, 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND, 7 REPLAYING.",
        labels=["group"],
    )
    replaying = GaugeMetricFamily(
        "kafka_consumergroup_group_replaying", "1 while the group is replaying.", labels=["group"]
    )
    seen_partitions: set[tuple[str, int]] = set()
    for g in snapshot.groups:
        for p in g.partitions:
            labels = [g.group, p.topic, str(p.partition)]
            lag.add_metric(labels, p.lag)
            lag_s.add_metric(labels, p.lag_seconds)
            offset.add_metric(labels, p.committed)
            p_status.add_metric(labels, int(p.status))
            if (p.topic, p.partition) not in seen_partitions:
                seen_partitions.add((p.topic, p.partition))
                latest.add_metric([p.topic, str(p.partition)], p.log_end)
        max_lag.add_metric([g.group], g.max_lag)
        max_lag_s.add_metric([g.group], g.max_lag_seconds)
        sum_lag.add_metric([g.group], g.total_lag)
        status.add_metric([g.group], int(g.status))
        replaying.add_metric([g.group], 1 if g.replaying else 0)
    poll = GaugeMetricFamily(
        "kafka_consumergroup_poll_time_seconds", "Duration of the last lag collection."
    )
    poll.add_metric([], snapshot.duration_seconds)
    stamp = GaugeMetricFamily(
        "kafka_consumergroup_last_collection_timestamp_seconds",
        "Unix time of the last lag collection.",
    )
    stamp.add_metric([], snapshot.collected_at)
    return [
        lag,
        lag_s,
        offset,
        p_status,
        latest,
        max_lag,
        max_lag_s,
        sum_lag,
        status,
        replaying,
        poll,
        stamp,
    ]


# The process-wide collector, registered once in prometheus_client's default registry.
LAG_EXPOSITION = LagExposition()
_registered = False


def register_default() -> LagExposition:
    """Register `LAG_EXPOSITION` in the default registry once per process; return it."""
    global _registered
    if not _registered:
        from prometheus_client import REGISTRY

        REGISTRY.register(LAG_EXPOSITION)
        _registered = True
    return LAG_EXPOSITION
