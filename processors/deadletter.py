"""Route a message that cannot be processed to its topic's dead-letter topic.

The dead-letter record keeps the original headers, except that its `traceparent` is a
child span of the original's (same trace id, new span id), or a new trace if the original
had none, so the failure can be found from the trace the input belonged to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from events.catalog import DLQ_SUFFIX, dlq_topic
from events.tracecontext import TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext, from_headers


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Hold one consumed Kafka record as bytes, with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Hold one record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def dead_letter(
    message: RawMessage, *, reason: str, error_type: str, processor: str
) -> OutgoingMessage:
    """Build the dead-letter record: the original bytes, the reason in the headers."""
    received = from_headers(message.headers)
    trace = received.child() if received is not None else TraceContext.new()
    headers = [
        (k, v)
        for k, v in message.headers
        if not k.startswith("dlq_") and k not in (TRACEPARENT_HEADER, TRACESTATE_HEADER)
    ]
    headers += trace.headers()
    headers += [
        ("dlq_reason", reason.encode("utf-8")[:4096]),
        ("dlq_error_type", error_type.encode("utf-8")),
        ("dlq_processor", processor.encode("utf-8")),
        ("dlq_source_topic", message.topic.encode("utf-8")),
        ("dlq_source_partition", str(message.partition).encode("ascii")),
        ("dlq_source_offset", str(message.offset).encode("ascii")),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode("ascii")),
    ]
    return OutgoingMessage(
        topic=dlq_topic(message.topic),
        key=message.key,
        value=message.value,
        headers=headers,
    )


# The headers that name one dead-lettered source record.
SOURCE_HEADERS = ("dlq_processor", "dlq_source_topic", "dlq_source_partition", "dlq_source_offset")

Source = tuple[bytes, ...]


def dead_letter_source(message: OutgoingMessage) -> Source | None:
    """Return (processor, source topic, partition, offset) of a dead letter, else None."""
    if not message.topic.endswith(DLQ_SUFFIX):
        return None
    headers = dict(message.headers)
    if not all(h in headers for h in SOURCE_HEADERS):
        return None
    return tuple(bytes(headers[h]) for h in SOURCE_HEADERS)


class DeadLetterLedger:
    """Know which source records a dead-letter topic already holds.

    A consumer that dies after it dead-lettered a record but before its position was
    stored gets the record again; without this, the dead-letter topic would hold it
    twice. Before dead letters are sent, the ledger reads their topics up to the current
    end (from where it stopped last time) and `unsent` drops the ones already there. It
    keeps the source of every dead letter it has read: dead-letter topics are small, and
    reading is only done when there is something to dead-letter.
    """

    def __init__(self, config: Mapping[str, str]) -> None:
        self._config = {
            **config,
            "group.id": "fairstream-dead-letter-ledger",
            "enable.auto.commit": "false",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": "false",
        }
        self._seen: dict[str, set[Source]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def unsent(
        self, messages: Sequence[OutgoingMessage], timeout: float = 30.0
    ) -> list[OutgoingMessage]:
        """Return `messages` without the dead letters whose topic already holds their source."""
        sources = [dead_letter_source(m) for m in messages]
        topics = {m.topic for m, s in zip(messages, sources, strict=True) if s is not None}
        if not topics:
            return list(messages)
        with self._lock:
            # A client per call: none stays connected between the (rare) dead letters, so a
            # dying broker cannot take the process down with it (confluentinc/librdkafka#5315).
            consumer = Consumer(self._config)
            try:
                for topic in sorted(topics):
                    self._catch_up(consumer, topic, timeout)
            finally:
                consumer.close()
            out = []
            batch: set[tuple[str, Source]] = set()
            for message, source in zip(messages, sources, strict=True):
                if source is not None:
                    if source in self._seen[message.topic] or (message.topic, source) in batch:
                        continue
                    batch.add((message.topic, source))
                out.append(message)
            return out

    def _catch_up(self, consumer: Consumer, topic: str, timeout: float) -> None:
        seen = self._seen.setdefault(topic, set())
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return  # not created yet: it holds nothing
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = watermark_offsets(consumer, TopicPartition(topic, p), timeout)
            start = max(self._next.get((topic, p), low), low)
            if start < high:
                ends[p] = high
                self._next[(topic, p)] = start
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, self._next[(topic, p)]) for p in ends])
        try:
            idle = 0
            while ends and idle < timeout:
                records = consumer.consume(num_messages=500, timeout=1.0)
                if not records:
                    idle += 1
                    continue
                for record in records:
                    if record.error() is not None:
                        continue
                    partition, offset = record.partition(), record.offset()
                    if partition is None or offset is None:
                        continue
                    headers = dict(record.headers() or [])
                    if all(h in headers for h in SOURCE_HEADERS):
                        seen.add(tuple(_as_bytes(headers[h]) for h in SOURCE_HEADERS))
                    self._next[(topic, partition)] = offset + 1
                    if partition in ends and offset + 1 >= ends[partition]:
                        del ends[partition]
            if ends:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f} s")
        finally:
            consumer.unassign()


def _as_bytes(value: str | bytes | None) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value or b"")


# Errors a restarting broker causes before the client's metadata knows the partition again.
TRANSIENT_WATERMARK_ERRORS = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
    }
)


def watermark_offsets(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """Return a partition's low and high offsets, waiting out a leader election or a restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = max(0.1, deadline - time.monotonic())  # all tries share `timeout`
            low, high = consumer.get_watermark_offsets(tp, timeout=left)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            transient = (
                error.retriable()
                or error.code() in TRANSIENT_WATERMARK_ERRORS
                or "leader" in str(exc).lower()
            )
            if not transient:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
