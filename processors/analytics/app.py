"""The analytics aggregation processor as a Faust app: source events in, MetricWindowClosed out.

Topology (consumer group and app id `Settings.analytics_processor_group`):

* agent `route-observations` reads AnalyticsEventRecorded, ModelUsageRecorded and
  BiasScored, and writes observations to the internal topic
  `<app id>-observations` (6 partitions), keyed by aggregation group. The sources are
  keyed by session / model / content; this repartition step makes the group key the
  partition key, so one partition (and one table partition) owns each group's windows.
* agent `aggregate-windows` reads the internal topic and keeps every window in the
  table `windows` (changelog `<app id>-windows-changelog`, compacted, same partition
  count), so a restarted or rebalanced worker recovers open windows, closed markers
  and lane clocks. It emits MetricWindowClosed for each window that closes.
* a timer sends a clock tick (wall time) to every internal partition this worker owns,
  in band with the observations, so idle lanes still close their windows and every
  table write happens in the partition's own stream context.

Window rules (tumbling 1 minute / 1 hour / 1 day on envelope.occurred_at; watermark per
internal partition and family; grace `Settings.analytics_grace_seconds`; close once;
late rule; duplicates; p95) are documented in `processors.analytics.windows`. In short:
**an event is counted if its window is still open (its lane's clock has not reached
window end + grace); otherwise it is late: not counted, never reopening the window, and
reported as `late_count` on the next close of the same group and window kind.**

Delivery: records are produced with acks=all and awaited before the agent takes the
next record, so a source offset commits only after its output is written. After a
crash the uncommitted tail is re-delivered; repeated observations are dropped by the
source-position guard of each window and lane (see `processors.analytics.windows`),
and a window closed again (its marker not yet in the changelog) is re-emitted with the
same event id, so consumers dedupe by event id. The table also keeps, per observations
partition, the next offset to apply (`pos/<partition>`), and per source partition the
next offset to route (`route/<topic>:<partition>`): a record past it (records Faust
skipped while recovering, or an offset committed past the table) makes the agent seek
back to it, a record before it was handled already. Faust's committed offsets therefore
never decide what is counted. Measured by `fairstream faults` (kills scenario, 5,000
events): without the route positions a SIGKILLed and restarted worker lost 383 of 2,368
bias observations of one window while its group showed no lag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust

from events.codec import EventCodec
from events.topics import DAY_MS, TopicSpec
from fairstream.settings import Settings
from processors.analytics.recovery import SeekFirstTableManager
from processors.analytics.service import (
    TICK_KEY,
    AnalyticsAggregationService,
    encode_tick,
)
from processors.analytics.windows import WindowAggregator
from processors.deadletter import OutgoingMessage
from processors.faust_app import InternalTopicsFirstApp, new_app, raw_message, send_and_wait
from processors.metrics import DEAD_LETTERED, EVENTS_PROCESSED

log = logging.getLogger(__name__)

INTERNAL_PARTITIONS = 6
TABLE_NAME = "windows"
# Table key of the next observations offset to apply, per partition: the window state and
# its position are restored together from the changelog, whatever Faust committed.
POSITION_PREFIX = "pos/"
# The same for each source partition the route agent reads.
ROUTE_POSITION_PREFIX = "route/"


class FaustTableWindowStore:
    """Adapt a Faust table to the aggregator's `WindowStore`; writes go to its changelog."""

    def __init__(self, table: faust.types.TableT[str, Any]) -> None:
        self._table = table

    def get(self, key: str) -> Any:
        """Return the value of `key`, or None."""
        return self._table.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store `value` under `key` (one changelog record)."""
        self._table[key] = value

    def delete(self, key: str) -> None:
        """Remove `key` (a changelog tombstone) if present."""
        if key in self._table:
            del self._table[key]


def internal_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Return the observations topic and the window table's compacted changelog."""
    group = settings.analytics_processor_group
    return [
        TopicSpec(
            name=observations_topic_name(settings),
            partitions=INTERNAL_PARTITIONS,
            retention_ms=7 * DAY_MS,
        ),
        TopicSpec(
            name=f"{group}-{TABLE_NAME}-changelog",
            partitions=INTERNAL_PARTITIONS,
            retention_ms=-1,
            cleanup_policy="compact",
        ),
    ]


def observations_topic_name(settings: Settings) -> str:
    """Return the internal observations topic of this app."""
    return f"{settings.analytics_processor_group}-observations"


def tick_interval(grace_seconds: float) -> float:
    """Return how often idle lanes are ticked: a quarter of the grace, within 0.5-5 s."""
    return min(5.0, max(0.5, grace_seconds / 4.0))


def create_app(settings: Settings) -> faust.App:
    """Create the Faust app that aggregates analytics, model usage and bias scores in windows."""
    app = cast(
        InternalTopicsFirstApp,
        new_app(
            settings,
            settings.analytics_processor_group,
            app_class=InternalTopicsFirstApp,
            topic_allow_declare=True,
            topic_partitions=INTERNAL_PARTITIONS,
            TableManager=SeekFirstTableManager,
        ),
    )
    app.internal_topics = internal_topic_specs(settings)
    app.bootstrap = settings.kafka_bootstrap
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=INTERNAL_PARTITIONS,
    )  # keys and values are JSON in the changelog (Faust's default for untyped tables)
    grace_ms = int(settings.analytics_grace_seconds * 1000)
    codec = EventCodec.from_url(settings.schema_registry_url, topic_prefix=settings.topic_prefix)
    internal_name = observations_topic_name(settings)
    service = AnalyticsAggregationService(
        codec,
        WindowAggregator(FaustTableWindowStore(table), grace_ms=grace_ms),
        observations_topic=internal_name,
        topic_prefix=settings.topic_prefix,
        dimension_floor=settings.bias_threshold_medium,
    )
    sources = app.topic(
        *service.source_topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    observations = app.topic(
        internal_name,
        internal=True,
        partitions=INTERNAL_PARTITIONS,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def send_all(messages: list[OutgoingMessage]) -> None:
        await send_and_wait(app, messages)

    async def in_sequence(message: Any, position_key: str) -> bool:
        """Tell whether `message` is the next record of its partition per the table.

        A record past the table's position means Faust skipped records (see recovery.py) or
        resumed at an offset committed past the table: seek back to the position. A record
        before it was handled already.
        """
        expected = table.get(position_key)
        if expected is None or message.offset == expected:
            return True
        if message.offset > expected:
            log.warning(
                "%s[%d]: got offset %d, table is at %d; seeking back",
                message.topic,
                message.partition,
                message.offset,
                expected,
            )
            await app.consumer.seek(message.tp, expected)
        return False

    @app.agent(sources, name="route-observations")
    async def route_observations(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(faust.Stream[bytes], stream).events():
            message = event.message
            # Sources have as many partitions as the table: this key's changelog partition
            # is the source partition's, restored on the worker that owns it.
            position_key = f"{ROUTE_POSITION_PREFIX}{message.topic}:{message.partition}"
            if not await in_sequence(message, position_key):
                continue
            outcome = service.route(raw_message(message))
            await send_all(outcome.messages)
            table[position_key] = message.offset + 1
            if outcome.dead_lettered:
                log.warning(
                    "dead-lettered %s:%d:%d", message.topic, message.partition, message.offset
                )
                DEAD_LETTERED.labels(service.name, "undecodable").inc()
                EVENTS_PROCESSED.labels(service.name, "unknown", "dead_lettered").inc()
            else:
                EVENTS_PROCESSED.labels(service.name, str(outcome.event_type), "routed").inc()

    @app.agent(observations, name="aggregate-windows")
    async def aggregate_windows(stream: faust.StreamT[bytes]) -> None:
        async for event in cast(faust.Stream[bytes], stream).events():
            message = event.message
            position_key = f"{POSITION_PREFIX}{message.partition}"
            if not await in_sequence(message, position_key):
                continue
            if message.value is None:
                table[position_key] = message.offset + 1
                continue
            result = service.aggregate(message.partition, message.key, message.value)
            await send_all(result.messages)
            table[position_key] = message.offset + 1
            step = result.step
            for name, n in (("late", step.late), ("duplicate", step.duplicates)):
                if n:
                    EVENTS_PROCESSED.labels(service.name, "observation", name).inc(n)
            for closed in step.closed:
                EVENTS_PROCESSED.labels(service.name, "MetricWindowClosed", "emitted").inc()
                log.info(
                    "closed %s count=%d late=%d", closed.window_key, closed.count, closed.late_count
                )

    async def tick_idle_lanes() -> None:
        now = int(time.time() * 1000)
        owned = sorted(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == internal_name
        )
        pending = [
            await observations.send(key=TICK_KEY, value=encode_tick(now), partition=p, force=True)
            for p in owned
        ]
        await asyncio.gather(*pending)

    # app.timer is untyped; register the tick without decorating a typed function.
    app.timer(tick_interval(settings.analytics_grace_seconds), name="tick-idle-lanes")(
        tick_idle_lanes
    )
    return app
