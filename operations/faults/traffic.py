"""Seeded traffic for a fault run: the events, the poison among them, and who dead-letters it."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Producer

from events.catalog import entry, topic_name
from events.codec import EventCodec
from events.model import Event
from events.testing import example_event
from producers.generator import SOURCE_TYPES, TrafficGenerator
from producers.publisher import KafkaEventPublisher

# Event types each processor reads (the projections' come from their `event_types`).
PROCESSOR_INPUTS: Mapping[str, tuple[str, ...]] = {
    "bias": ("ContentSubmitted",),
    "analytics": ("AnalyticsEventRecorded", "ModelUsageRecorded", "BiasScored"),
    "opportunity": ("NicheResearched",),
    "campaign": ("CampaignPlanned", "BiasScored"),
    "revenue": ("RevenueProjectionRequested",),
}
POISON_KINDS: tuple[str, ...] = ("random-bytes", "truncated-avro", "wrong-type", "empty")
# A projection decodes any known event type and skips the types it does not project, so only
# undecodable records reach its dead-letter topic; a processor also refuses the wrong type.
UNDECODABLE_KINDS = frozenset({"random-bytes", "truncated-avro", "empty"})
# Event time of the first event, before the run: windows never close on event time during it.
EVENT_TIME_OFFSET = dt.timedelta(hours=3)
EVENT_INTERVAL_SECONDS = 0.001


@dataclass(frozen=True)
class Poison:
    """One record no consumer can use, published on a source topic."""

    event_type: str  # the topic's event type
    kind: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def generate_events(count: int, seed: int, start: dt.datetime) -> list[Event]:
    """Return `count` source events of the seeded generator, timed from `start`."""
    generator = TrafficGenerator(
        types=SOURCE_TYPES, seed=seed, start=start, interval=EVENT_INTERVAL_SECONDS
    )
    return list(generator.events(count))


def event_start(now: dt.datetime | None = None) -> dt.datetime:
    """Return the event time of the first event of a run started `now`."""
    moment = (now or dt.datetime.now(dt.UTC)) - EVENT_TIME_OFFSET
    return moment.replace(second=0, microsecond=0)


def make_poison(per_topic: int, rng: random.Random) -> list[Poison]:
    """Return `per_topic` poison records for each source topic, cycling through the kinds."""
    codec = EventCodec()
    out: list[Poison] = []
    for event_type in SOURCE_TYPES:
        for i in range(per_topic):
            kind = POISON_KINDS[i % len(POISON_KINDS)]
            key = f"poison-{event_type}-{i}".encode()
            good = codec.encode(example_event(event_type))
            headers: tuple[tuple[str, bytes], ...] = ()
            if kind == "random-bytes":
                value = rng.randbytes(rng.randint(8, 200))
            elif kind == "truncated-avro":
                value = bytes(good.value or b"")[: max(3, len(good.value or b"") // 2)]
                headers = tuple((k, bytes(v)) for k, v in good.headers if v is not None)
            elif kind == "wrong-type":
                other = (
                    "AgentTaskCompleted"
                    if event_type != "AgentTaskCompleted"
                    else "NicheResearched"
                )
                wrong = codec.encode(example_event(other))
                value = bytes(wrong.value or b"")
                headers = tuple((k, bytes(v)) for k, v in wrong.headers if v is not None)
            else:
                value = b""
            out.append(Poison(event_type, kind, key, value, headers))
    return out


def expected_dead_letters(
    poison: Iterable[Poison], readers: Mapping[str, Sequence[str]], processors: Iterable[str]
) -> Counter[str]:
    """Count the dead letters each source topic's DLQ must hold, by unprefixed topic.

    `readers` maps an event type to the components (processor or projection names) reading
    its topic; a processor dead-letters every poison kind, a projection the undecodable ones.
    """
    procs = set(processors)
    expected: Counter[str] = Counter()
    for item in poison:
        topic = entry(item.event_type).topic
        for reader in readers.get(item.event_type, ()):
            if reader in procs or item.kind in UNDECODABLE_KINDS:
                expected[topic] += 1
    return expected


class TrafficPublisher:
    """Publish events and poison to one topic prefix at a steady rate."""

    def __init__(self, bootstrap: str, prefix: str, security: Mapping[str, str]) -> None:
        self._events = KafkaEventPublisher(
            bootstrap, topic_prefix=prefix, config=dict(security), flush_timeout=120.0
        )
        self._raw = Producer(
            {"bootstrap.servers": bootstrap, **security, "acks": "all", "enable.idempotence": True}
        )
        self._prefix = prefix

    def publish(
        self,
        events: Sequence[Event],
        poison: Sequence[Poison],
        rate: float,
        rng: random.Random,
        tick: Callable[[float], object] = lambda _elapsed: None,
    ) -> tuple[int, int]:
        """Publish everything at `rate` events/s, the poison at seeded positions.

        `tick(elapsed)` runs between batches (the fault schedule). Return (events, poison)
        the broker acknowledged.
        """
        slots = sorted(rng.sample(range(len(events) + 1), len(poison)))
        batch = max(1, int(rate / 10))
        started = time.monotonic()
        published = poisoned = 0
        next_poison = 0
        for first in range(0, len(events), batch):
            chunk = events[first : first + batch]
            report = self._events.publish_all(chunk)
            report.raise_for_failures()
            published += report.delivered
            while next_poison < len(poison) and slots[next_poison] < first + len(chunk):
                self._send_poison(poison[next_poison])
                poisoned += 1
                next_poison += 1
            tick(time.monotonic() - started)
            delay = started + (first + len(chunk)) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for item in poison[next_poison:]:
            self._send_poison(item)
            poisoned += 1
        if self._raw.flush(120) != 0:
            raise RuntimeError("poison records still unacknowledged after 120 s")
        return published, poisoned

    def _send_poison(self, item: Poison) -> None:
        topic = topic_name(item.event_type, self._prefix)
        self._raw.produce(topic, key=item.key, value=item.value, headers=list(item.headers))
        self._raw.poll(0)

    def close(self) -> None:
        """Flush and close the producers."""
        self._events.close()
        self._raw.flush(30)
