"""Turn source events into observations and closed windows into MetricWindowClosed records.

The processor's logic without Faust, in two steps that the Faust app runs as two agents:

1. `route`: decode an AnalyticsEventRecorded, ModelUsageRecorded or BiasScored record and
   re-key it as observations on the internal observations topic, keyed by
   `<family>/<group_by>=<group_value>` (undecodable records go to the source's DLQ).
   The three source topics are keyed by session, model and content; re-keying by the
   aggregation group puts every observation of a group on one partition, co-partitioned
   with the window table, whatever the source topic's key or partition count.
2. `aggregate`: apply one observation (or a clock tick) to the `WindowAggregator` and
   encode each window it closes as MetricWindowClosed.

Groups: analytics by `analytics_type`; model usage by `provider:model` (value
`<provider>:<model>`); bias by `all`, by `level` and by each `dimension` whose score
reaches the dimension floor (the medium threshold, as for BiasAlertRaised; score
figures are then that dimension's score). Alert counts are BiasScored levels high and
critical, the levels that raise BiasAlertRaised, so alerts are counted without reading
the alerts topic a second time. `tokens` is total_tokens (input + output when the
provider reports no total); the schema has no separate input/output fields.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field

from events.catalog import event_type_for_topic, topic_name
from events.codec import DecodeError, EventCodec, ValidationError
from events.exceptions import UnknownEventTypeError
from events.model import Envelope, Event
from processors.analytics.windows import (
    ALERT_LEVELS,
    ClosedWindow,
    Observation,
    StepOutcome,
    WindowAggregator,
    to_datetime,
    to_millis,
)
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter
from processors.mapping import decode_expected

SOURCE_EVENT_TYPES: tuple[str, ...] = (
    "AnalyticsEventRecorded",
    "ModelUsageRecorded",
    "BiasScored",
)
# Namespace of MetricWindowClosed ids: uuid5(window key) makes a re-emitted close the same event.
METRIC_WINDOW_NAMESPACE = uuid.UUID("8f7a2c1e-3b4d-5e6f-8a9b-0c1d2e3f4a5b")
TICK_KEY = b"__tick__"


def metric_event_id(window_key: str) -> uuid.UUID:
    """Derive MetricWindowClosed's event id from its window key."""
    return uuid.uuid5(METRIC_WINDOW_NAMESPACE, window_key)


def encode_observation(obs: Observation) -> OutgoingMessage:
    """Encode an observation for the internal topic (JSON; the topic is private to the app)."""
    return OutgoingMessage(
        topic="",
        key=obs.group_key.encode("utf-8"),
        value=json.dumps(obs.to_json(), separators=(",", ":")).encode("utf-8"),
    )


def encode_tick(wall_ms: int) -> bytes:
    """Encode a clock tick carrying the sender's wall clock."""
    return json.dumps({"tick": wall_ms}).encode("utf-8")


def observations_for(event: Event, *, dimension_floor: float = 0.3) -> list[Observation]:
    """Return what `event` contributes to each of its groups."""
    p = event.payload
    event_id = str(event.envelope.event_id)
    at = to_millis(event.envelope.occurred_at)
    if event.type == "AnalyticsEventRecorded":
        kind = str(p.get("analytics_type", "custom"))
        error = kind == "error"
        return [Observation("analytics", "analytics_type", kind, event_id, at, error=error)]
    if event.type == "ModelUsageRecorded":
        total = int(p.get("total_tokens") or 0)
        if total == 0:
            total = int(p.get("input_tokens") or 0) + int(p.get("output_tokens") or 0)
        return [
            Observation(
                "model_usage",
                "provider:model",
                f"{p.get('provider', 'other')}:{p['model']}",
                event_id,
                at,
                latency_ms=float(p["latency_ms"]),
                tokens=total,
                cost=float(p.get("cost") or 0.0),
                error=not bool(p.get("success", True)),
            )
        ]
    if event.type == "BiasScored":
        level = str(p["level"])
        alert = level if level in ALERT_LEVELS else None
        score = float(p["overall_score"])
        latency = float(p["latency_ms"])

        def obs(group_by: str, value: str, s: float) -> Observation:
            return Observation(
                "bias",
                group_by,
                value,
                event_id,
                at,
                score=s,
                latency_ms=latency,
                alert_level=alert,
            )

        out = [obs("all", "*", score), obs("level", level, score)]
        out += [
            obs("dimension", str(d["dimension"]), float(d["score"]))
            for d in p.get("dimensions", [])
            if float(d["score"]) >= dimension_floor
        ]
        return out
    raise ValueError(f"no observations for event type {event.type}")


@dataclass(slots=True)
class RouteOutcome:
    """Hold what routing one source record produced."""

    messages: list[OutgoingMessage] = field(default_factory=list)
    event_type: str | None = None
    dead_lettered: bool = False


@dataclass(slots=True)
class AggregateOutcome:
    """Hold the MetricWindowClosed records one step produced and what the step did."""

    messages: list[OutgoingMessage]
    step: StepOutcome


class AnalyticsAggregationService:
    """Route source events to observations and aggregate them into closed windows."""

    name = "analytics-aggregator"

    def __init__(
        self,
        codec: EventCodec,
        aggregator: WindowAggregator,
        *,
        observations_topic: str,
        topic_prefix: str = "",
        dimension_floor: float = 0.3,
    ) -> None:
        self._codec = codec
        self.aggregator = aggregator
        self.observations_topic = observations_topic
        self._prefix = topic_prefix
        self._dimension_floor = dimension_floor
        self._metrics_topic = topic_name("MetricWindowClosed", topic_prefix)
        self.source_topics = [topic_name(t, topic_prefix) for t in SOURCE_EVENT_TYPES]

    def route(self, message: RawMessage) -> RouteOutcome:
        """Decode one source record into observation records, or dead-letter it."""
        try:
            event = decode_expected(self._codec, message, self._expected_type(message.topic))
            observations = observations_for(event, dimension_floor=self._dimension_floor)
        except (DecodeError, ValidationError, KeyError, TypeError, ValueError) as exc:
            letter = dead_letter(
                message, reason=str(exc), error_type=type(exc).__name__, processor=self.name
            )
            return RouteOutcome([letter], None, True)
        source = f"{message.topic}:{message.partition}"
        positioned = [
            dataclasses.replace(obs, source=source, position=(message.offset, index))
            for index, obs in enumerate(observations)
        ]
        out = [
            OutgoingMessage(self.observations_topic, m.key, m.value)
            for m in map(encode_observation, positioned)
        ]
        return RouteOutcome(out, event.type, False)

    def aggregate(
        self, partition: int, key: bytes | None, value: bytes, wall_ms: int | None = None
    ) -> AggregateOutcome:
        """Apply one internal record (observation or tick) and encode the windows it closed."""
        now = int(time.time() * 1000) if wall_ms is None else wall_ms
        obj = json.loads(value)
        if key == TICK_KEY or "tick" in obj:
            # The tick is only a trigger: idle time is measured on this worker's clock, so a
            # stale tick left by a stopped worker cannot make a lane look idle for too long.
            step = self.aggregator.tick(partition, now)
        else:
            step = self.aggregator.observe(partition, Observation.from_json(obj), now)
        return AggregateOutcome([self.encode(c) for c in step.closed], step)

    def metric_event(self, closed: ClosedWindow) -> Event:
        """Build MetricWindowClosed for one closed window; its id derives from the window key."""
        envelope = Envelope(
            event_id=metric_event_id(closed.window_key),
            occurred_at=to_datetime(closed.window_end_ms),
            source=self.name,
            subject=closed.window_key,
        )
        return Event(type="MetricWindowClosed", envelope=envelope, payload=closed.payload())

    def encode(self, closed: ClosedWindow) -> OutgoingMessage:
        """Encode the MetricWindowClosed record of one closed window."""
        encoded = self._codec.encode(self.metric_event(closed))
        return OutgoingMessage(
            self._metrics_topic, encoded.key, encoded.value, list(encoded.headers)
        )

    def _expected_type(self, topic: str) -> str:
        try:
            return event_type_for_topic(topic, self._prefix)
        except UnknownEventTypeError:
            raise DecodeError(f"topic {topic} is not an analytics source") from None
