"""Count what the dead-letter topics of one namespace hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from events.topics import dead_letter_name


@dataclass(frozen=True)
class DeadLetterCount:
    """Hold one dead-letter topic's records: all of them, and distinct source records."""

    topic: str
    records: int
    distinct: int  # distinct (processor, source topic, partition, offset)


def count_dead_letters(
    bootstrap: str, security: Mapping[str, str], prefix: str, topics: Sequence[str]
) -> dict[str, DeadLetterCount]:
    """Read every `<prefix><topic>.dlq` to its end; count records and distinct sources."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **security,
            "group.id": f"{prefix}dlq-counter",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    out: dict[str, DeadLetterCount] = {}
    try:
        for topic in topics:
            name = prefix + dead_letter_name(topic)
            meta = consumer.list_topics(name, timeout=20).topics.get(name)
            if meta is None or meta.error is not None:
                out[topic] = DeadLetterCount(topic, 0, 0)
                continue
            ends = {}
            for p in meta.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=20)
                if high > 0:
                    ends[p] = high
            consumer.assign([TopicPartition(name, p, 0) for p in ends])
            sources: Counter[tuple[str, ...]] = Counter()
            done: set[int] = set()
            idle = 0
            while len(done) < len(ends) and idle < 60:
                msg = consumer.poll(0.5)
                if msg is None:
                    idle += 1
                    continue
                if msg.error() is not None:
                    continue
                idle = 0
                headers = _headers(msg.headers() or [])
                source = tuple(
                    headers.get(h, "")
                    for h in (
                        "dlq_processor",
                        "dlq_source_topic",
                        "dlq_source_partition",
                        "dlq_source_offset",
                    )
                )
                sources[source] += 1
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if offset + 1 >= ends[partition]:
                    done.add(partition)
            out[topic] = DeadLetterCount(topic, sum(sources.values()), len(sources))
    finally:
        consumer.close()
    return out


def _headers(raw: Any) -> dict[str, str]:
    """Return a record's headers as text, by name."""
    items = raw.items() if isinstance(raw, dict) else raw
    return {str(k): bytes(v or b"").decode(errors="replace") for k, v in items}
