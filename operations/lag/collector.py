"""Sample every consumer group's committed offsets, log-end offsets and oldest unconsumed record.

Everything runs on confluent-kafka's AdminClient and one group-less Consumer (assign + seek,
never a commit), both opened for one collection, so the collector neither joins nor creates
a consumer group. Blocking: call it
from a worker thread in async code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from fairstream.kafka_security import librdkafka_security
from operations.lag.model import GroupSample, PartitionSample

log = logging.getLogger(__name__)

TP = tuple[str, int]
READER_GROUP = "fairstream-lag-reader"


@dataclass(frozen=True, slots=True)
class Watermarks:
    """The log-start and log-end offsets of one partition."""

    start: int
    end: int


class KafkaLagCollector:
    """Read the position of every consumer group on every partition it has committed on."""

    # Open only while `collect` runs.
    _admin: AdminClient
    _reader: KafkaConsumer

    def __init__(
        self,
        bootstrap: str,
        *,
        timeout_seconds: float = 10.0,
        read_timeout_seconds: float = 5.0,
        client_id: str = "fairstream-lag-collector",
    ) -> None:
        self._timeout = timeout_seconds
        self._read_timeout = read_timeout_seconds
        common: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            **librdkafka_security(),
            "client.id": client_id,
        }
        self._common = common
        self._reader_config: dict[str, str | int | float | bool] = {
            **common,
            # librdkafka needs a group.id, but the reader only assigns, seeks and reads:
            # it never subscribes or commits, so the group never exists on the broker.
            "group.id": READER_GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Committed offset below the log start (retention): the oldest unconsumed
            # record is then the first one still in the log.
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 1_048_576,
            "max.partition.fetch.bytes": 65_536,
        }
        # (topic, partition, committed offset) -> timestamp (ms) of the record there.
        self._timestamps: dict[tuple[str, int, int], int] = {}
        # collect() may still run in a worker thread when its caller is cancelled: close()
        # waits for it instead of closing the reader under it.
        self._mutex = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Stop collecting (waits for a collection in progress)."""
        with self._mutex:
            self._closed = True

    def collect(self, only_group: str | None = None) -> list[GroupSample]:
        """Return one sample per consumer group (or only `only_group`).

        The clients live for one collection only. librdkafka (2.16 here, reported against 2.8
        as confluentinc/librdkafka#5315) can crash its process with a NULL dereference on
        its main thread when a broker it is connected to dies; the API, which samples lag,
        was seen to die that way when a cluster node was killed. Between collections no
        connection is open, so a dying broker finds nothing to crash.
        """
        with self._mutex:
            if self._closed:
                return []
            self._admin = AdminClient(self._common)
            self._reader = KafkaConsumer(self._reader_config)
            try:
                return self._collect(only_group)
            finally:
                self._reader.close()
                del self._reader, self._admin

    def _collect(self, only_group: str | None) -> list[GroupSample]:
        groups = self._group_ids() if only_group is None else [only_group]
        if not groups:
            self._timestamps.clear()
            return []
        committed = self._committed(groups)
        described = self._describe(groups)
        tps = {tp for offsets in committed.values() for tp in offsets}
        marks = self._watermarks(tps)
        wanted: dict[tuple[str, int, int], None] = {}
        for offsets in committed.values():
            for tp, offset in offsets.items():
                mark = marks.get(tp)
                if mark is not None and offset < mark.end:
                    wanted[(tp[0], tp[1], offset)] = None
        timestamps = self._oldest_unconsumed(list(wanted))
        samples: list[GroupSample] = []
        for group in groups:
            state, members, owned = described.get(group, ("Unknown", 0, set()))
            if group not in committed and group not in described:
                continue  # vanished between listing and describing
            parts = []
            for tp, offset in sorted(committed.get(group, {}).items()):
                mark = marks.get(tp)
                if mark is None:
                    continue  # topic deleted while the group still has offsets on it
                ts = timestamps.get((tp[0], tp[1], offset)) if offset < mark.end else None
                parts.append(
                    PartitionSample(
                        topic=tp[0],
                        partition=tp[1],
                        committed=offset,
                        log_start=mark.start,
                        log_end=mark.end,
                        oldest_unconsumed_ms=ts,
                        assigned=tp in owned,
                    )
                )
            samples.append(GroupSample(group, state, members, tuple(parts)))
        return samples

    def _group_ids(self) -> list[str]:
        result = self._admin.list_consumer_groups(request_timeout=self._timeout).result()
        return sorted(g.group_id for g in result.valid if g.group_id != READER_GROUP)

    def _committed(self, groups: list[str]) -> dict[str, dict[TP, int]]:
        requests = [ConsumerGroupTopicPartitions(g) for g in groups]
        out: dict[str, dict[TP, int]] = {}
        # One group per request: the admin API accepts a single group per call.
        futures = {}
        for request in requests:
            futures.update(
                self._admin.list_consumer_group_offsets([request], request_timeout=self._timeout)
            )
        for group, future in futures.items():
            try:
                result = future.result()
            except KafkaException as exc:
                log.debug("offsets of group %s unavailable: %s", group, exc)
                continue
            offsets: dict[TP, int] = {}
            for tp in result.topic_partitions or []:
                if tp.error is None and tp.offset != OFFSET_INVALID and tp.offset >= 0:
                    offsets[(tp.topic, tp.partition)] = tp.offset
            out[group] = offsets
        return out

    def _describe(self, groups: list[str]) -> dict[str, tuple[str, int, set[TP]]]:
        out: dict[str, tuple[str, int, set[TP]]] = {}
        futures = self._admin.describe_consumer_groups(groups, request_timeout=self._timeout)
        for group, future in futures.items():
            try:
                desc = future.result()
            except KafkaException as exc:
                log.debug("group %s not described: %s", group, exc)
                continue
            owned: set[TP] = set()
            for member in desc.members:
                if member.assignment is not None:
                    owned.update(
                        (tp.topic, tp.partition) for tp in member.assignment.topic_partitions
                    )
            state = getattr(desc.state, "name", str(desc.state))
            out[group] = (state.title(), len(desc.members), owned)
        return out

    def _watermarks(self, tps: Iterable[TP]) -> dict[TP, Watermarks]:
        tps = list(tps)
        if not tps:
            return {}
        starts = self._list_offsets(tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        ends = self._list_offsets(tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {tp: Watermarks(starts[tp], ends[tp]) for tp in tps if tp in starts and tp in ends}

    def _list_offsets(self, tps: list[TP], spec: OffsetSpec) -> dict[TP, int]:
        request = {TopicPartition(t, p): spec for t, p in tps}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout)
        out: dict[TP, int] = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:  # unknown topic/partition: it disappeared
                log.debug("offsets of %s-%s unavailable: %s", tp.topic, tp.partition, exc)
        return out

    def _oldest_unconsumed(
        self, wanted: list[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], int]:
        """Return the timestamp of the record at each (topic, partition, offset), cached."""
        found = {k: self._timestamps[k] for k in wanted if k in self._timestamps}
        missing = [k for k in wanted if k not in found]
        if missing:
            found.update(self._read_timestamps(missing))
        self._timestamps = dict(found)  # keep only the offsets still current
        return found

    def _read_timestamps(
        self, wanted: list[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], int]:
        # Several groups may sit on the same partition at different offsets: read in rounds,
        # one offset per partition per round.
        out: dict[tuple[str, int, int], int] = {}
        pending = list(wanted)
        deadline = time.monotonic() + self._read_timeout
        while pending and time.monotonic() < deadline:
            round_: dict[TP, int] = {}
            rest = []
            for topic, partition, offset in pending:
                if (topic, partition) in round_:
                    rest.append((topic, partition, offset))
                else:
                    round_[(topic, partition)] = offset
            out.update(self._read_round(round_, deadline))
            pending = rest
        return out

    def _read_round(
        self, positions: dict[TP, int], deadline: float
    ) -> dict[tuple[str, int, int], int]:
        out: dict[tuple[str, int, int], int] = {}
        self._reader.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])
        waiting = dict(positions)
        try:
            while waiting and time.monotonic() < deadline:
                batch = self._reader.consume(
                    num_messages=max(len(waiting), 1),
                    timeout=min(0.5, max(deadline - time.monotonic(), 0.01)),
                )
                done = []
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    topic, partition = msg.topic(), msg.partition()
                    if topic is None or partition is None:
                        continue
                    tp = (topic, partition)
                    offset = waiting.pop(tp, None)
                    if offset is None:
                        continue
                    _kind, ts = msg.timestamp()
                    if ts >= 0:  # -1: the record carries no timestamp
                        out[(topic, partition, offset)] = ts
                    done.append(TopicPartition(topic, partition))
                if done and waiting:
                    self._reader.incremental_unassign(done)
        finally:
            self._reader.unassign()
        return out
