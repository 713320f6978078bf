"""Run a projection from Kafka with its applied positions stored beside the read model.

The runner consumes, decodes (dead-lettering what it cannot decode) and hands each
partition's batch to a sink. `PostgresSink` applies the batch in one transaction together
with the partition's next offset, so a crash between the write and Kafka's commit never
loses or doubles a change; `projections.documents.DocumentSink` does the same for
document stores (per-document position guard + stored positions). On assignment the runner
seeks to the stored positions: Kafka's committed offsets are only advisory (they feed lag
monitoring).

Batches are applied set-based where the projection can (`BatchPostgresProjection`,
`projections.documents.BatchDocumentProjection`): records at or below the stored position are
skipped and a repeated event id within the batch is applied once. When the store becomes
unreachable the runner pauses its partitions, retries with capped exponential backoff and, once
the store answers, seeks every partition to its stored position again (a write whose
acknowledgement was lost may have committed), so nothing is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, cast, runtime_checkable

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge
from pymongo.errors import ConnectionFailure, OperationFailure

from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Event
from fairstream.kafka_security import aiokafka_security, librdkafka_security
from fairstream.logs import log_batch
from processors.deadletter import DeadLetterLedger, RawMessage, dead_letter

log = logging.getLogger(__name__)

# How long an applied event id is remembered: a re-emission (a processor restarted before
# it committed) follows its first emission within minutes; a week leaves room for a long
# outage of a processor. Pruned at most once per LEDGER_PRUNE_SECONDS.
LEDGER_RETENTION = timedelta(days=7)
LEDGER_PRUNE_SECONDS = 3600.0

APPLIED = Counter(
    "fairstream_projection_applied_total",
    "Events applied to a read model, by outcome.",
    ["projection", "outcome"],
)
STORE_UP = Gauge(
    "fairstream_projection_store_up",
    "1 while the projection's read-model store answers, 0 while it is paused waiting for it.",
    ["projection"],
)
STORE_RETRIES = Counter(
    "fairstream_projection_store_retries_total",
    "Attempts to reach an unreachable read-model store.",
    ["projection"],
)

# Errors that mean "the store cannot be reached now", not "this batch is wrong".
STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is a subclass)
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, starting up
    asyncpg.ConnectionDoesNotExistError,  # the connection died mid-operation
    ConnectionFailure,  # pymongo/motor: AutoReconnect, NetworkTimeout, server selection
)


# FerretDB relays its PostgreSQL's failures as command errors (pymongo OperationFailure):
# a connection it could not open, or SQLSTATE class 08 (connection) / 57P (shutdown).
_BACKEND_DOWN = re.compile(r"SQLSTATE (08|57P)|failed to connect to")
# asyncpg reports a connection cut in the middle of an operation as interface errors.
_CONNECTION_CUT = re.compile(
    r"connection is closed|connection was closed|another operation .*is in progress"
)


def store_unavailable(exc: BaseException) -> bool:
    """Tell whether `exc` means the read-model store is unreachable (worth waiting for)."""
    if isinstance(exc, STORE_UNAVAILABLE):
        return True
    if isinstance(exc, OperationFailure):
        return bool(_BACKEND_DOWN.search(str(exc)))
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return bool(_CONNECTION_CUT.search(str(exc)))
    return False


@dataclass(frozen=True, slots=True)
class Backoff:
    """Compute capped exponential retry delays: initial, 2x, 4x ... up to `cap` seconds."""

    initial: float = 0.5
    cap: float = 15.0

    def delay(self, attempt: int) -> float:
        """Return the delay before retry number `attempt` (0-based)."""
        return float(min(self.cap, self.initial * 2 ** min(attempt, 30)))


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


@runtime_checkable
class BatchPostgresProjection(Protocol):
    """Apply a batch of events to a PostgreSQL read model with set-based statements.

    `events` are new (past the stored position), in offset order, with distinct event ids;
    the result must equal applying them one by one with `apply`.
    """

    name: str
    event_types: tuple[str, ...]

    async def apply(self, conn: asyncpg.Connection, event: Event, position: Position) -> None:
        """Apply one event; the caller owns the transaction."""

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[tuple[Event, Position]]
    ) -> None:
        """Apply the events; the caller owns the transaction."""


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
    duplicates: int = 0  # events whose id was already applied (same batch or, if kept, earlier)


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

    def __init__(
        self,
        projection: PostgresProjection,
        pool: asyncpg.Pool,
        *,
        ledger_retention: timedelta = LEDGER_RETENTION,
        prune_every_seconds: float = LEDGER_PRUNE_SECONDS,
    ) -> None:
        self.projection = projection
        self._pool = pool
        self._batched = isinstance(projection, BatchPostgresProjection)
        # Projections whose effect is not idempotent per event (counters) keep a ledger of
        # applied event ids, so an event re-published at a new offset counts once.
        self._ledger = bool(getattr(projection, "dedupe_event_ids", False))
        self._ledger_retention = ledger_retention
        self._prune_every = prune_every_seconds
        self._pruned_at: float | None = None

    async def prune_ledger(self) -> int:
        """Forget the ledger's event ids recorded longer ago than the retention; return how many."""
        status = await self._pool.execute(
            "DELETE FROM projection_applied_events"
            " WHERE projection = $1 AND recorded_at < now() - $2::interval",
            self.projection.name,
            self._ledger_retention,
        )
        self._pruned_at = time.monotonic()
        return int(status.split()[-1])

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
            pending, skipped, duplicates, next_offset = new_events(
                self.projection.event_types, topic, partition, records, next_offset
            )
            if pending and self._ledger:
                fresh = await self._record_event_ids(conn, pending)
                duplicates += len(pending) - len(fresh)
                pending = fresh
            if pending and self._batched:
                await cast(BatchPostgresProjection, self.projection).apply_batch(conn, pending)
            else:
                for event, position in pending:
                    await self.projection.apply(conn, event, position)
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
        if self._ledger and (
            self._pruned_at is None or time.monotonic() - self._pruned_at > self._prune_every
        ):
            pruned = await self.prune_ledger()
            if pruned:
                log.info("%s: pruned %d event ids from the ledger", self.projection.name, pruned)
        return BatchResult(next_offset, len(pending), skipped, duplicates)

    async def _record_event_ids(
        self, conn: asyncpg.Connection, pending: list[tuple[Event, Position]]
    ) -> list[tuple[Event, Position]]:
        """Add the events' ids to the ledger; return the events not seen before."""
        rows = await conn.fetch(
            "INSERT INTO projection_applied_events (projection, event_id, occurred_at)"
            " SELECT $1, e.id, e.at FROM unnest($2::uuid[], $3::timestamptz[]) AS e(id, at)"
            " ON CONFLICT (projection, event_id) DO NOTHING RETURNING event_id",
            self.projection.name,
            [e.envelope.event_id for e, _ in pending],
            [e.envelope.occurred_at for e, _ in pending],
        )
        fresh = {str(r["event_id"]) for r in rows}
        return [(e, p) for e, p in pending if str(e.envelope.event_id) in fresh]


def new_events(
    event_types: Sequence[str],
    topic: str,
    partition: int,
    records: Sequence[tuple[int, Event | None]],
    next_offset: int,
) -> tuple[list[tuple[Event, Position]], int, int, int]:
    """Select the batch's events to apply: past `next_offset`, of `event_types`, ids distinct.

    Return (events with positions, records skipped as already applied, repeated event ids,
    the partition's new next offset).
    """
    pending: list[tuple[Event, Position]] = []
    seen: set[str] = set()
    skipped = duplicates = 0
    for offset, event in records:
        if offset < next_offset:
            skipped += 1
            continue
        next_offset = offset + 1
        if event is None or event.type not in event_types:
            continue
        event_id = str(event.envelope.event_id)
        if event_id in seen:
            duplicates += 1
            continue
        seen.add(event_id)
        pending.append((event, Position(topic, partition, offset)))
    return pending, skipped, duplicates, next_offset


@dataclass(slots=True)
class RunStats:
    """Count what the runner did since it started."""

    applied: int = 0
    skipped: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    outages: int = 0
    by_partition: dict[tuple[str, int], int] = field(default_factory=dict)


class _SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        try:
            await self._runner.seek_to_stored(assigned)
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            # Fetch nothing until the store answers; recovery seeks every partition again.
            self._runner.store_lost(exc)


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
        backoff: Backoff | None = None,
        apply_timeout: float = 120.0,
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
        security = aiokafka_security()  # FAIRSTREAM_KAFKA_* of the environment
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **security,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=batch_max,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, **security, acks="all", enable_idempotence=True
        )
        # A poison record dead-lettered just before a crash comes back: not twice to the DLQ.
        self._dead_letters = DeadLetterLedger(
            {"bootstrap.servers": bootstrap, **librdkafka_security()}
        )
        # Next offset per partition as last stored; filters re-deliveries before decoding.
        self._next: dict[tuple[str, int], int] = {}
        self._backoff = backoff or Backoff()
        # A store that hangs instead of refusing counts as unreachable after this long, so the
        # consumer keeps polling (and its group membership) instead of blocking on it.
        self._apply_timeout = apply_timeout
        # Set while the store is unreachable: partitions stay paused until it answers.
        self._store_down: BaseException | None = None
        self._attempt = 0
        STORE_UP.labels(projection.name).set(1)

    @property
    def store_available(self) -> bool:
        """Tell whether the runner is consuming (False while it waits for its store)."""
        return self._store_down is None

    def store_lost(self, exc: BaseException) -> None:
        """Stop fetching: pause every assigned partition until the store answers again."""
        self._consumer.pause(*self._consumer.assignment())
        if self._store_down is None:
            self._store_down = exc
            self._attempt = 0
            self.stats.outages += 1
            STORE_UP.labels(self.projection.name).set(0)
            log.error(
                "projection %s: read-model store unreachable (%s: %s); partitions paused,"
                " retrying with backoff up to %.0f s",
                self.projection.name,
                type(exc).__name__,
                exc,
                self._backoff.cap,
            )

    async def _recover(self, stop: asyncio.Event) -> None:
        """Wait one backoff step, then try the store; on success seek to stored and resume."""
        delay = self._backoff.delay(self._attempt)
        self._attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        STORE_RETRIES.labels(self.projection.name).inc()
        assigned = list(self._consumer.assignment())
        try:
            await asyncio.wait_for(self.seek_to_stored(assigned), self._apply_timeout)
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            log.debug("projection %s: store still unreachable: %s", self.projection.name, exc)
            return
        # A rebalance during the outage may have assigned partitions the seek above missed.
        self._consumer.pause(*self._consumer.assignment())
        if set(self._consumer.assignment()) != set(assigned):
            return  # try again with the new assignment on the next step
        self._consumer.resume(*assigned)
        down, self._store_down = self._store_down, None
        STORE_UP.labels(self.projection.name).set(1)
        log.warning(
            "projection %s: read-model store reachable again after %d attempt(s) (%s);"
            " resumed from the stored positions",
            self.projection.name,
            self._attempt,
            type(down).__name__,
        )

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
        try:
            await self._producer.start()
            self._consumer.subscribe(self._topics, listener=_SeekToStoredPositions(self))
            await self._consumer.start()
        except BaseException:
            # Unreachable Kafka: close what started, so the caller may retry with a new runner.
            await self._consumer.stop()
            await self._producer.stop()
            raise
        try:
            while not stop.is_set():
                if self._store_down is not None:
                    await self._recover(stop)
                    # Keep polling with every partition paused: it fetches nothing but keeps
                    # the consumer inside max.poll.interval.ms, so the group keeps it.
                    await self._consumer.getmany(timeout_ms=0)
                    continue
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch_max)
                for tp, records in batches.items():
                    if records and self._store_down is None:
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
        try:
            result = await asyncio.wait_for(
                self.sink.apply_batch(tp.topic, tp.partition, decoded), self._apply_timeout
            )
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            self.store_lost(exc)  # nothing is committed to Kafka; recovery re-seeks
            return
        next_offset, applied, skipped = result.next_offset, result.applied, result.skipped
        # Only after the batch is durable does Kafka hear about it.
        await self._consumer.commit({tp: next_offset})
        self.stats.applied += applied
        self.stats.skipped += skipped
        self.stats.duplicates += result.duplicates
        self._next[key] = next_offset
        self.stats.batches += 1
        self.stats.by_partition[key] = self.stats.by_partition.get(key, 0) + applied
        APPLIED.labels(self.projection.name, "applied").inc(applied)
        APPLIED.labels(self.projection.name, "skipped_already_applied").inc(skipped)
        APPLIED.labels(self.projection.name, "skipped_duplicate_event").inc(result.duplicates)
        done = [event for _, event in decoded if event is not None]
        where = f"{tp.topic}[{tp.partition}] to offset {next_offset}"
        log_batch(log, done, "applied %s: %d applied, %d skipped", where, applied, skipped)

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
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, self._dead_letters.unsent, [out]):
                await self._producer.send_and_wait(
                    out.topic, value=out.value, key=out.key, headers=list(out.headers)
                )
            self.stats.dead_lettered += 1
            APPLIED.labels(self.projection.name, "dead_lettered").inc()
            log.warning("dead-lettered %s:%d:%d: %s", *_where(record), exc)
            return None


def _where(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset
