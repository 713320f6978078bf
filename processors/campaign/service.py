"""Campaign screening without Faust: route inputs by campaign, step one campaign's state.

Two inputs are keyed differently: CampaignPlanned by campaign_id, BiasScored by
content_id. `route` re-keys both (and dead-letters what cannot be decoded) onto one
internal topic keyed by campaign_id, so `step` sees every event of a campaign on the
partition that also holds the campaign's table row.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events.catalog import topic_name
from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Envelope, Event
from events.tracecontext import TraceContext, parse_traceparent
from processors.bias.scoring import DEFAULT_THRESHOLDS, Thresholds
from processors.campaign.domain import (
    State,
    Verdict,
    assess_score,
    complete_verdict,
    planned_items,
    record_score,
    screened_state,
    start_screening,
    timeout_verdict,
)
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter
from processors.mapping import decode_expected, derived_trace

# uuid5 over the CampaignPlanned event id: a re-delivered plan re-submits the same
# ContentSubmitted ids and screens to the same CampaignScreened id.
CAMPAIGN_NAMESPACE = uuid.UUID("c41f7a3e-9b2d-5c60-8a1e-7f3b2d6e9c05")
CONTROL_HEADER = "fairstream_screening"
DEADLINE_CHECK = b"deadline-check"


def submitted_event_id(planned_event_id: str, content_id: str) -> uuid.UUID:
    """Derive the ContentSubmitted id of one item from the CampaignPlanned event id."""
    return uuid.uuid5(CAMPAIGN_NAMESPACE, f"{planned_event_id}/submit/{content_id}")


def screened_event_id(planned_event_id: str) -> uuid.UUID:
    """Derive the CampaignScreened id from the CampaignPlanned event id."""
    return uuid.uuid5(CAMPAIGN_NAMESPACE, f"{planned_event_id}/screened")


def _plan_trace(state: Mapping[str, Any]) -> TraceContext:
    """Return the span of the campaign's CampaignPlanned, or a new trace if it had none."""
    traceparent = state.get("traceparent")
    if not traceparent:
        return TraceContext.new()
    try:
        return parse_traceparent(traceparent, state.get("tracestate"))
    except ValueError:
        return TraceContext.new()


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


@dataclass(slots=True)
class Step:
    """Hold the result of one step: the campaign's new state and the records to send."""

    state: State | None
    messages: list[OutgoingMessage] = field(default_factory=list)
    changed: bool = False
    outcome: str = "ignored"


class CampaignScreeningService:
    """Submit a campaign's items for bias scoring and screen it when the scores are in."""

    name = "campaign-screening"

    def __init__(
        self,
        codec: EventCodec,
        *,
        topic_prefix: str = "",
        internal_topic: str,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        timeout_seconds: float = 300.0,
    ) -> None:
        self._codec = codec
        self._thresholds = thresholds
        self.timeout_seconds = timeout_seconds
        self.planned_topic = topic_name("CampaignPlanned", topic_prefix)
        self.scored_topic = topic_name("BiasScored", topic_prefix)
        self.internal_topic = internal_topic
        self._submit_topic = topic_name("ContentSubmitted", topic_prefix)
        self._screened_topic = topic_name("CampaignScreened", topic_prefix)

    # -- routing: source topics -> internal topic keyed by campaign_id ----------------

    def route(self, message: RawMessage) -> OutgoingMessage | None:
        """Re-key a CampaignPlanned or BiasScored record by campaign_id.

        Return the dead-letter record for what cannot be decoded, and None for a
        BiasScored that belongs to no campaign.
        """
        expected = "CampaignPlanned" if message.topic == self.planned_topic else "BiasScored"
        try:
            event = self._decode(message, expected)
        except (DecodeError, ValidationError) as exc:
            return dead_letter(
                message, reason=str(exc), error_type=type(exc).__name__, processor=self.name
            )
        campaign_id = event.payload.get("campaign_id")
        if not campaign_id:
            return None
        return OutgoingMessage(
            self.internal_topic,
            str(campaign_id).encode("utf-8"),
            message.value,
            [(k, v) for k, v in message.headers if k != CONTROL_HEADER],
        )

    def deadline_check(self, campaign_id: str) -> OutgoingMessage:
        """Build the internal record asking the campaign's owner to check its deadline."""
        return OutgoingMessage(
            self.internal_topic,
            campaign_id.encode("utf-8"),
            b"",
            [(CONTROL_HEADER, DEADLINE_CHECK)],
        )

    # -- one campaign's state machine ------------------------------------------------

    def step(self, message: RawMessage, state: State | None, now: float) -> Step:
        """Apply one internal record to its campaign's state (never mutates `state`)."""
        work = copy.deepcopy(state) if state is not None else None
        if dict(message.headers).get(CONTROL_HEADER) == DEADLINE_CHECK:
            return self._check_deadline(work, now)
        try:
            if message.value is None:
                raise DecodeError("message has no value (tombstone)")
            event = self._codec.decode(message.value, message.headers)
        except (DecodeError, ValidationError):
            # `route` only forwards what it decoded; anything else is not ours to judge.
            return Step(state, outcome="undecodable")
        if event.type == "CampaignPlanned":
            return self._planned(event, work, now)
        if event.type == "BiasScored":
            return self._scored(event, work, now)
        return Step(state)

    def _planned(self, event: Event, state: State | None, now: float) -> Step:
        event_id = str(event.envelope.event_id)
        if state is not None and state["planned_event_id"] == event_id:
            # The adapter stores a state only once its ContentSubmitted were acknowledged,
            # so a plan seen again has nothing left to submit.
            return Step(state, outcome="duplicate")
        env = event.envelope
        fresh = start_screening(
            event.payload,
            planned_event_id=event_id,
            correlation_id=env.correlation_id or event_id,
            occurred_at=env.occurred_at.isoformat(),
            now=now,
        )
        if env.trace is not None:
            # The plan's span: the screening it causes, however late, continues its trace.
            fresh["traceparent"] = env.trace.traceparent
            fresh["tracestate"] = env.trace.tracestate
        messages = self._submissions(event, fresh, planned_items(event.payload))
        verdict = complete_verdict(fresh)  # a campaign without items is approved at once
        if verdict is not None:
            return self._screened(fresh, verdict, now, messages)
        return Step(fresh, messages, changed=True, outcome="started")

    def _scored(self, event: Event, state: State | None, now: float) -> Step:
        if state is None:
            return Step(None, outcome="unknown_campaign")
        assessed = assess_score(event.payload, self._thresholds)
        content_id = str(event.payload["content_id"])
        if not record_score(state, content_id, str(event.envelope.event_id), assessed):
            return Step(state, outcome="duplicate")
        verdict = complete_verdict(state)
        if verdict is None:
            return Step(state, changed=True, outcome="scored")
        return self._screened(state, verdict, now)

    def _check_deadline(self, state: State | None, now: float) -> Step:
        if state is None:
            return Step(None)
        verdict = timeout_verdict(state, now, self.timeout_seconds)
        if verdict is None:
            return Step(state)
        return self._screened(state, verdict, now)

    def _screened(
        self, state: State, verdict: Verdict, now: float, before: Sequence[OutgoingMessage] = ()
    ) -> Step:
        event = self.screened_event(state, verdict, now)
        encoded = self._codec.encode(event)
        out = OutgoingMessage(self._screened_topic, encoded.key, encoded.value, encoded.headers)
        return Step(
            screened_state(state, verdict, now),
            [*before, out],
            changed=True,
            outcome=verdict.verdict,
        )

    # -- events ---------------------------------------------------------------------

    def screened_event(self, state: Mapping[str, Any], verdict: Verdict, now: float) -> Event:
        """Build CampaignScreened: caused by the CampaignPlanned, in its correlation and trace."""
        envelope = Envelope(
            trace=_plan_trace(state).child(),
            event_id=screened_event_id(state["planned_event_id"]),
            occurred_at=_millis(datetime.fromtimestamp(now, UTC)),
            source=self.name,
            subject=state["campaign_id"],
            correlation_id=state["correlation_id"],
            causation_id=state["planned_event_id"],
        )
        return Event(type="CampaignScreened", envelope=envelope, payload=verdict.payload())

    def submitted_events(self, planned: Event, state: Mapping[str, Any]) -> list[Event]:
        """Build one ContentSubmitted per content item of a CampaignPlanned."""
        return [self._submitted(planned, state, item) for item in planned_items(planned.payload)]

    def _submissions(
        self, planned: Event, state: Mapping[str, Any], items: Sequence[Any]
    ) -> list[OutgoingMessage]:
        out = []
        for item in items:
            encoded = self._codec.encode(self._submitted(planned, state, item))
            out.append(
                OutgoingMessage(self._submit_topic, encoded.key, encoded.value, encoded.headers)
            )
        return out

    def _submitted(self, planned: Event, state: Mapping[str, Any], item: Any) -> Event:
        planned_id = str(planned.envelope.event_id)
        envelope = Envelope(
            event_id=submitted_event_id(planned_id, item.content_id),
            occurred_at=planned.envelope.occurred_at,
            source=self.name,
            subject=item.content_id,
            correlation_id=state["correlation_id"],
            causation_id=planned_id,
            trace=derived_trace(planned.envelope),
        )
        payload = {
            "content_id": item.content_id,
            "text": item.text,
            "content_type": item.item_type,
            "language": None,
            "speaker": None,
            "scenario_type": None,
            "session_id": None,
            "campaign_id": state["campaign_id"],
            "demographics": None,
            "metadata": {"channel": item.channel, "publish_date": item.publish_date},
        }
        return Event(type="ContentSubmitted", envelope=envelope, payload=payload)

    def _decode(self, message: RawMessage, expected: str) -> Event:
        return decode_expected(self._codec, message, expected)
