"""Commit a partition only up to the first record its stream has not finished.

faust-streaming 0.15.3 commits "the first run of consecutive acked offsets" and counts
every gap in the offsets it fetched as acked (a gap is meant to be a compacted record or a
transaction marker). A record that reached the consumer but never a stream (dropped from
a stream queue that a rebalance cleared, or cancelled while the flow was suspended) is
therefore committed without being processed: the fault harness saw a restarted campaign
processor never forward 3-4 CampaignPlanned, and analytics windows come up short after a
broker died, while every group showed no lag. Its head check is also one short: with
committed offset C (the next record to read) it accepts acked offsets starting at C + 1.

`StrictCommitConsumer` commits only a run that starts exactly at the committed offset (or,
before the first commit, at the partition's earliest offset), and ignores fetch gaps
(fairstream's input topics are neither compacted nor transactional). A partition whose
head record stays missing while later ones are acked, for `hole_grace_seconds`, was
skipped: the consumer seeks back to it, so it is delivered again. Records after it are
then processed twice; every processor tolerates that (derived ids are deterministic and
stateful steps keep positions or event ids). A head below the earliest offset (retention
deleted it) is accepted as the new floor.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any, cast

import faust
from aiokafka.structs import TopicPartition as AIOKafkaTP
from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from mode import Service

from processors.deadletter import DeadLetterLedger, watermark_offsets

HOLE_GRACE_SECONDS = 5.0


def next_commit(
    acked: list[int], index: set[int], start: int | None
) -> tuple[int | None, int | None]:
    """Return (offset to commit, missing head offset) and drop what it commits from `acked`.

    `acked` holds processed offsets not yet committed, `index` the same as a set; `start` is
    the next offset to commit (None: unknown, any run counts). Offsets below `start` are
    dropped. Nothing is committed while the record at `start` is not acked; then the
    second value names it.
    """
    acked.sort()
    if start is not None:
        stale = 0
        while stale < len(acked) and acked[stale] < start:
            index.discard(acked[stale])
            stale += 1
        del acked[:stale]
        if acked and acked[0] != start:
            return None, start
    if not acked:
        return None, None
    batch = next(consecutive_numbers(acked))
    del acked[: len(batch)]
    index.difference_update(batch)
    return int(batch[-1]) + 1, None


class StrictCommitConsumer(AIOKafkaConsumer):
    """Commit contiguous processed offsets only; re-read a record the streams never got."""

    hole_grace_seconds = HOLE_GRACE_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where a partition without a committed offset starts (its earliest offset).
        self._floor: dict[TP, int] = {}
        # Partition -> (missing head offset, when first seen missing).
        self._holes: dict[TP, tuple[int, float]] = {}

    def _new_offset(self, tp: TP) -> int | None:
        start = self._committed_offset[tp]
        if start is None:
            if tp not in self._floor:
                return None  # where it starts is not known yet: commit nothing
            start = self._floor[tp]
        offset, missing = next_commit(self._acked[tp], self._acked_index[tp], start)
        if missing is None:
            self._holes.pop(tp, None)
        else:
            held = self._holes.get(tp)
            if held is None or held[0] != missing:
                self._holes[tp] = (missing, time.monotonic())
        return offset

    async def perform_seek(self) -> None:
        """Seek to the committed offsets, or to the earliest where none (or 0) is committed.

        Faust seeks with aiokafka's `seek_to_committed`, which leaves a partition without a
        committed offset wherever the fetcher got to. Records fetched before a rebalance and
        cleared from the stream queues with it were then never read again: in the reduced
        fault run, no analytics worker started after it was written ever read the only
        record of a `model.usage` partition.
        """
        await super().perform_seek()
        self._floor = {}
        topics = self.app.topics
        fresh = [
            tp
            for tp in self.assignment()
            if not self._committed_offset[tp] and topics.acks_enabled_for(tp.topic)
        ]
        for tp in fresh:
            self._read_offset[tp] = None
        if fresh:
            await self._thread.seek_to_beginning(
                *(AIOKafkaTP(tp.topic, tp.partition) for tp in fresh)
            )

    def _unknown_floors(self) -> list[TP]:
        topics = self.app.topics
        return [
            tp
            for tp in self.assignment()
            if self._committed_offset[tp] is None
            and tp not in self._floor
            and topics.acks_enabled_for(tp.topic)
        ]

    async def _low_watermarks(self, tps: list[TP]) -> dict[TP, int]:
        # Asked of a client of its own: asking the stream consumer (aiokafka's
        # beginning_offsets) while partitions await their offset reset left some of them
        # never fetched.
        app = cast(StrictCommitApp, self.app)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, app.offsets.low_watermarks, tps)

    @Service.task
    async def _repair_holes(self) -> None:
        """Learn where uncommitted partitions start; seek back to a record that was skipped."""
        while not self.should_stop:
            await self.sleep(1.0)
            if getattr(self.app, "rebalancing", False):
                continue
            unknown = self._unknown_floors()
            if unknown:
                self._floor.update(await self._low_watermarks(unknown))
            if not self._holes:
                continue
            now = time.monotonic()
            assigned = self.assignment()
            for tp, (start, since) in list(self._holes.items()):
                if tp not in assigned:
                    self._holes.pop(tp, None)
                    continue
                if now - since < self.hole_grace_seconds:
                    continue
                self._holes.pop(tp, None)
                earliest = (await self._low_watermarks([tp])).get(tp)
                if earliest is not None and earliest > start:
                    self.log.warning("%s: offsets %d..%d were deleted", tp, start, earliest - 1)
                    if self._committed_offset[tp] is None:
                        self._floor[tp] = earliest
                    else:
                        self._committed_offset[tp] = earliest
                    continue
                self.log.warning(
                    "%s: offset %d never reached a stream but later ones did; reading again",
                    tp,
                    start,
                )
                await self.seek(tp, start)


class StrictCommitTransport(AIOKafkaTransport):
    """The aiokafka transport with `StrictCommitConsumer`."""

    Consumer = StrictCommitConsumer


class LowWatermarks:
    """Read partitions' earliest offsets with a librdkafka client of its own."""

    def __init__(self, config: Mapping[str, str]) -> None:
        self._config = {**config, "group.id": "fairstream-low-watermarks"}
        self._lock = threading.Lock()

    def low_watermarks(self, tps: list[TP], timeout: float = 10.0) -> dict[TP, int]:
        """Return the earliest offset of each partition it could read."""
        with self._lock:
            # A client per call, closed after: see DeadLetterLedger.unsent.
            consumer = Consumer(self._config)
            try:
                out = {}
                for tp in tps:
                    try:
                        low, _ = watermark_offsets(
                            consumer, TopicPartition(tp.topic, tp.partition), timeout
                        )
                    except KafkaException:
                        continue  # asked again on the next round
                    out[tp] = low
                return out
            finally:
                consumer.close()


class StrictCommitApp(faust.App):
    """A Faust app whose consumer commits with `StrictCommitConsumer`."""

    # Both set by `processors.faust_app.new_app`.
    offsets: LowWatermarks

    # `send_and_wait` skips the dead letters it finds already written.
    dead_letter_ledger: DeadLetterLedger | None = None

    def _new_transport(self) -> Any:
        return StrictCommitTransport(self.conf.broker_consumer, self)
