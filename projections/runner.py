"""Run a projection from Kafka with its applied positions stored beside the read model.

The runner consumes, decodes (dead-lettering what it cannot decode) and hands each
partition's batch to a sink. `PostgresSink` applies the batch in one transaction together
with the partition's next offset, so a crash between the write and Kafka's commit never
loses or doubles a change; `projections.documents.DocumentSink` does the same for
document stores (per-document position guard + stored positions). On assignment the runner
seeks to the stored positions: Kafka's committed offsets are only advisory (they feed lag
monitoring).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Event
from processors.deadletter import RawMessage, dead_letter

log = logging.getLogger(__name__)

APPLIED = Counter(
    "fairstream_projection_applied_total",
    "Events applied to a read model, by outcome.",
    ["projection", "outcome"],
)


@dataclass(frozen=True, slots=True)
class Position:
    """Locate one record in Kafka."""

    topic: str
    partition: int
    offset: int


class PostgresProjection(Protocol):
    """Apply events of some types to a PostgreSQL read model inside the caller's transaction."""

    name: str
    event_types: tuple[str, ...]

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Apply one event; the caller owns the transaction."""


class Projection(Protocol):
    """Name a projection and the event types it consumes."""

    name: str
    event_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Say what applying one partition's batch did."""

    next_offset: int
    applied: int
    skipped: int


class ProjectionSink(Protocol):
    """Store a projection's read model and its applied positions together."""

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Return the next offset to apply per (topic, partition)."""

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[tuple[int, Event | None]]
    ) -> BatchResult:
        """Apply `(offset, event or None if undecodable)` in offset order; store the position."""


class PostgresSink:
    """Apply a PostgreSQL projection's batch and its position in one transaction."""

    def __init__(self, projection: PostgresProjection, pool: asyncpg.Pool) -> None:
        self.projection = projection
        self._pool = pool

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Return the next offset to apply per (topic, partition), as stored with the rows."""
        rows = await self._pool.fetch(
            "SELECT topic, partition, next_offset FROM projection_positions WHERE projection = $1",
            self.projection.name,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[tuple[int, Event | None]]
    ) -> BatchResult:
        """Apply the batch and the partition's next offset in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT next_offset FROM projection_positions"
                " WHERE projection = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
                self.projection.name,
                topic,
                partition,
            )
            next_offset = row["next_offset"] if row else 0
            applied = skipped = 0
            for offset, event in records:
                if offset < next_offset:
                    skipped += 1
                    continue
                if event is not None and event.type in self.projection.event_types:
                    await self.projection.apply(conn, event, Position(topic, partition, offset))
                    applied += 1
                next_offset = offset + 1
            await conn.execute(
                "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (projection, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                self.projection.name,
                topic,
                partition,
                next_offset,
            )
        return BatchResult(next_offset, applied, skipped)


@dataclass(slots=True)
class RunStats:
    """Count what the runner did since it started."""

    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0
    by_partition: dict[tuple[str, int], int] = field(default_factory=dict)


class _SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._runner.seek_to_stored(assigned)


class ProjectionRunner:
    """Consume a projection's topics in one consumer group and apply them exactly once."""

    def __init__(
        self,
        projection: Projection,
        *,
        sink: ProjectionSink | None = None,
        pool: asyncpg.Pool | None = None,
        codec: EventCodec,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        batch_max: int = 500,
    ) -> None:
        self.projection = projection
        self.stats = RunStats()
        if sink is None:
            if pool is None:
                raise ValueError("ProjectionRunner needs a sink or a PostgreSQL pool")
            sink = PostgresSink(cast(PostgresProjection, projection), pool)
        self.sink = sink
        self._codec = codec
        self._group_id = group_id
        self._topics = list(topics)
        self._batch_max = batch_max
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=batch_max,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        # Next offset per partition as last stored; filters re-deliveries before decoding.
        self._next: dict[tuple[str, int], int] = {}

    async def stored_positions(self) -> dict[tuple[str, int], int]:
        """Return the next offset to apply per (topic, partition), as stored with the model."""
        return await self.sink.stored_positions()

    async def seek_to_stored(self, assigned: Sequence[TopicPartition]) -> None:
        """Position the consumer at the stored next offset of each assigned partition."""
        stored = await self.stored_positions()
        fresh = []
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
                self._next.pop((tp.topic, tp.partition), None)
            else:
                self._consumer.seek(tp, offset)
                self._next[(tp.topic, tp.partition)] = offset
        if fresh:
            await self._consumer.seek_to_beginning(*fresh)

    async def run(self, stop: asyncio.Event) -> RunStats:
        """Consume and apply until `stop` is set; return the counts."""
        await self._producer.start()
        self._consumer.subscribe(self._topics, listener=_SeekToStoredPositions(self))
        await self._consumer.start()
        try:
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch_max)
                for tp, records in batches.items():
                    if records:
                        await self._apply_partition_batch(tp, records)
        finally:
            await self._consumer.stop()
            await self._producer.stop()
        return self.stats

    async def _apply_partition_batch(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        key = (tp.topic, tp.partition)
        known = self._next.get(key, 0)
        decoded: list[tuple[int, Event | None]] = []
        for record in records:
            event = await self._decode_or_dead_letter(record) if record.offset >= known else None
            decoded.append((record.offset, event))
        result = await self.sink.apply_batch(tp.topic, tp.partition, decoded)
        next_offset, applied, skipped = result.next_offset, result.applied, result.skipped
        # Only after the batch is durable does Kafka hear about it.
        await self._consumer.commit({tp: next_offset})
        self.stats.applied += applied
        self.stats.skipped += skipped
        self._next[key] = next_offset
        self.stats.batches += 1
        self.stats.by_partition[key] = self.stats.by_partition.get(key, 0) + applied
        APPLIED.labels(self.projection.name, "applied").inc(applied)
        APPLIED.labels(self.projection.name, "skipped_already_applied").inc(skipped)

    async def _decode_or_dead_letter(self, record: ConsumerRecord[bytes, bytes]) -> Event | None:
        try:
            if record.value is None:
                raise DecodeError("message has no value (tombstone)")
            return self._codec.decode(record.value, list(record.headers or ()))
        except (DecodeError, ValidationError) as exc:
            message = RawMessage(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                [(k, bytes(v)) for k, v in record.headers or ()],
            )
            out = dead_letter(
                message,
                reason=str(exc),
                error_type=type(exc).__name__,
                processor=f"projection:{self.projection.name}",
            )
            await self._producer.send_and_wait(
                out.topic, value=out.value, key=out.key, headers=list(out.headers)
            )
            self.stats.dead_lettered += 1
            APPLIED.labels(self.projection.name, "dead_lettered").inc()
            log.warning("dead-lettered %s:%d:%d: %s", *_where(record), exc)
            return None


def _where(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset
