"""Re-score past ContentSubmitted with another bias model and emit BiasScored for its version.

The live scorer is left alone: the processor's logic (BiasScoringService) runs here with the
chosen scorer under its own consumer group `<bias_processor_group>-replay-<model version>`
(the lag dashboard shows it as replaying), over a planned range of content.submitted, and
stops at the planned end offsets. BiasScored ids are uuid5(input id, model version), so a
re-run or a resumed run produces the same ids and the projections apply each result once.

Only BiasScored is produced: alerts for old content would page someone for history, and
records the live scorer could not decode were already dead-lettered once; both are counted.
Offsets are committed to the group after the produced records are acknowledged, so an
interrupted run resumes where it stopped; a finished run deletes its group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from events.catalog import topic_name
from fairstream.bootstrap import build_bias_service, build_scorer
from fairstream.kafka_security import librdkafka_security
from fairstream.settings import Settings
from operations.replay.exceptions import ReplayError
from operations.replay.groups import GroupActiveError, KafkaGroupOffsets
from operations.replay.offsets import KafkaOffsets, delete_group
from operations.replay.plan import (
    AtOffsets,
    AtTime,
    Bound,
    Partition,
    PartitionRange,
    ReplayPlan,
    build_plan,
    parse_bound,
)
from processors.deadletter import RawMessage

PLAN_NAME = "reprocess bias"
ProgressCallback = Callable[[Partition, int], None]


@dataclass(slots=True)
class ReprocessReport:
    """Say what a reprocessing run did."""

    model_version: str
    group_id: str
    events_read: int = 0
    scored: int = 0
    alerts_not_sent: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    finished: bool = False

    def render(self) -> str:
        """Render the final report."""
        state = "finished" if self.finished else "interrupted (run again to resume)"
        return (
            f"reprocess bias with {self.model_version}: {state} (group {self.group_id})\n"
            f"  events read {self.events_read}, BiasScored produced {self.scored},"
            f" alerts not sent {self.alerts_not_sent},"
            f" undecodable (not dead-lettered again) {self.dead_lettered},"
            f" duration {self.seconds:.1f}s"
        )


def reprocess_group(settings: Settings, model_version: str) -> str:
    """Return the consumer group of a reprocessing run with one model version."""
    return f"{settings.bias_processor_group}-replay-{model_version}"


def plan_reprocess(
    settings: Settings,
    start_text: str,
    end_text: str | None = None,
    *,
    rate_per_second: float = 500.0,
) -> ReplayPlan:
    """Plan the ContentSubmitted ranges from `--from` to `--to` (default: the end now)."""
    start = parse_bound(start_text)
    end: Bound | None = parse_bound(end_text, allow_earliest=False) if end_text else None
    topic = topic_name("ContentSubmitted", settings.topic_prefix)
    offsets = KafkaOffsets(settings.kafka_bootstrap)
    try:
        bounds = offsets.bounds([topic])
        parts = [(b.topic, b.partition) for b in bounds]
        start_by_time = (
            offsets.offsets_for_time(parts, start.epoch_ms) if isinstance(start, AtTime) else None
        )
        end_by_time = (
            offsets.offsets_for_time(parts, end.epoch_ms) if isinstance(end, AtTime) else None
        )
    finally:
        offsets.close()
    return build_plan(
        PLAN_NAME,
        bounds,
        start=start,
        start_by_time=start_by_time,
        end_offsets=dict(end.offsets) if isinstance(end, AtOffsets) else None,
        end_by_time=end_by_time,
        rate_per_second=rate_per_second,
    )


def execute_reprocess(
    settings: Settings,
    model: str,
    plan: ReplayPlan,
    *,
    stop: threading.Event | None = None,
    on_start: Callable[[list[PartitionRange], dict[Partition, int]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReprocessReport:
    """Score the planned ranges with `model` ("fast" or "quality") and produce BiasScored."""
    stop = stop or threading.Event()
    service = build_bias_service(settings, build_scorer(settings, model))
    version = service.scorer.version
    group = reprocess_group(settings, version)
    report = ReprocessReport(version, group)
    started = time.monotonic()
    groups = KafkaGroupOffsets(settings.kafka_bootstrap)
    if groups.active_members(group):
        raise GroupActiveError(f"group {group!r} has active members: a reprocess is running")
    ranges = [r for r in plan.ranges if r.events > 0]
    committed = groups.committed(group, [(r.topic, r.partition) for r in ranges])
    # Resume: continue after what an interrupted run committed, never before the plan's start.
    positions = {
        (r.topic, r.partition): max(r.start, committed.get((r.topic, r.partition)) or r.start)
        for r in ranges
    }
    ends = {(r.topic, r.partition): r.end for r in ranges}
    if on_start is not None:
        on_start(ranges, positions)
    pending = {k for k, pos in positions.items() if pos < ends[k]}
    scored_topic = topic_name("BiasScored", settings.topic_prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            **librdkafka_security(settings),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            **librdkafka_security(settings),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    try:
        consumer.assign([TopicPartition(t, p, positions[(t, p)]) for t, p in sorted(pending)])
        batch_max = max(1, settings.bias_batch_max)
        while pending and not stop.is_set():
            messages = consumer.consume(batch_max, timeout=0.5)
            raw: list[RawMessage] = []
            for m in messages:
                if m.error() is not None:
                    continue
                topic, partition, offset = m.topic(), m.partition(), m.offset()
                if topic is None or partition is None or offset is None:
                    continue
                key = (topic, partition)
                if key not in pending or offset >= ends[key]:
                    continue
                raw.append(
                    RawMessage(topic, partition, offset, _bytes(m.key()), m.value(), _headers(m))
                )
            if raw:
                outcome = service.handle_batch(raw)
                for out in outcome.messages:
                    if out.topic == scored_topic:
                        producer.produce(
                            out.topic,
                            key=out.key,
                            value=out.value,
                            headers=list(out.headers),
                            on_delivery=delivered,
                        )
                if producer.flush(60) != 0 or failures:
                    raise ReplayError(f"producing BiasScored failed: {failures or 'timeout'}")
                report.events_read += len(raw)
                report.scored += outcome.scored
                report.alerts_not_sent += outcome.alerts
                report.dead_lettered += outcome.dead_lettered
            pending = _advance(consumer, group, pending, positions, ends, on_progress)
        report.finished = not pending
    finally:
        consumer.close()
        producer.flush(60)
    if report.finished:
        # Its work is in bias.scored; a stale `-replay-` group would look replaying forever.
        delete_group(settings.kafka_bootstrap, group)
    report.seconds = time.monotonic() - started
    return report


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(message: Message) -> list[tuple[str, bytes]]:
    found = message.headers() or []
    items = list(found.items()) if isinstance(found, dict) else list(found)
    return [(str(k), _bytes(v) or b"") for k, v in items]


def _advance(
    consumer: Consumer,
    group: str,
    pending: set[Partition],
    positions: dict[Partition, int],
    ends: dict[Partition, int],
    on_progress: ProgressCallback | None,
) -> set[Partition]:
    """Commit what was produced, pause finished partitions; return those still pending."""
    # The consumer's position skips transaction markers, so it reaches the end even when the
    # last offsets of a range hold no record.
    now = consumer.position([TopicPartition(t, p) for t, p in sorted(pending)])
    commits = []
    for tp in now:
        key = (tp.topic, tp.partition)
        reached = min(tp.offset, ends[key]) if tp.offset >= 0 else positions[key]
        if reached > positions[key]:
            if on_progress is not None:
                on_progress(key, reached - positions[key])
            positions[key] = reached
            commits.append(TopicPartition(tp.topic, tp.partition, reached))
    if commits:
        try:
            consumer.commit(offsets=commits, asynchronous=False)
        except KafkaException as exc:
            raise ReplayError(f"committing offsets of {group!r} failed: {exc}") from exc
    left = {k for k in pending if positions[k] < ends[k]}
    done = [TopicPartition(t, p) for t, p in pending - left]
    if done:
        consumer.pause(done)
    return left
