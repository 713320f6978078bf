"""Campaign screening: verdict rules, duplicates, timeout and the service's state steps."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from events.codec import EventCodec
from events.model import Event
from events.testing import example_event
from events.tracecontext import TraceContext
from processors.bias.scoring import Thresholds
from processors.campaign.domain import (
    MISSING_REASON,
    assess_score,
    complete_verdict,
    is_overdue,
    overdue_campaigns,
    planned_items,
    record_score,
    start_screening,
    timeout_verdict,
)
from processors.campaign.service import (
    CampaignScreeningService,
    Step,
    screened_event_id,
    submitted_event_id,
)
from processors.deadletter import RawMessage

PREFIX = "t-unit."
INTERNAL = PREFIX + "campaign-screening-by-campaign"
ITEMS = ("mk-2031-social-01", "mk-2031-ad-03", "mk-2031-email-01")


def campaign() -> dict[str, Any]:
    return dict(example_event("CampaignPlanned").payload)


def state(now: float = 1000.0) -> dict[str, Any]:
    return start_screening(
        campaign(), planned_event_id="plan-1", correlation_id="wf-1", occurred_at="t", now=now
    )


def score(content_id: str, overall: float, level: str, **extra: Any) -> dict[str, Any]:
    return {
        "content_id": content_id,
        "overall_score": overall,
        "level": level,
        "model_version": "fast-1",
        "dimensions": extra.get("dimensions", []),
        "evidence": extra.get("evidence", []),
    }


def test_planned_items_follow_the_channels() -> None:
    items = planned_items(campaign())
    assert [i.content_id for i in items] == list(ITEMS)
    assert [i.channel for i in items] == ["social_media", "social_media", "email"]
    assert [i.item_type for i in items] == ["social_media", "ad", "email"]
    assert items[0].publish_date == "2025-07-01" and items[1].text.startswith("Spreadsheets")


def test_a_repeated_content_id_is_screened_once() -> None:
    plan = campaign()
    plan["channels"][1]["items"].append(copy.deepcopy(plan["channels"][0]["items"][0]))
    assert [i.content_id for i in planned_items(plan)] == list(ITEMS)


def test_assessment_keeps_level_dimensions_and_evidence() -> None:
    assessed = assess_score(example_event("BiasScored").payload)
    assert assessed["level"] == "high"
    assert assessed["overall_score"] == 0.72
    assert assessed["dimensions"] == ["age"]  # profession 0.18 is under the medium threshold
    assert assessed["reasons"][0] == "overall bias score 0.72 is high"
    assert "too old to learn" in assessed["reasons"][1] and "age 0.72" in assessed["reasons"][1]


def test_level_is_the_more_severe_of_reported_and_thresholds() -> None:
    assert assess_score(score("c", 0.35, "low"))["level"] == "medium"
    assert assess_score(score("c", 0.1, "high"))["level"] == "high"
    strict = Thresholds(medium=0.2, high=0.5, critical=0.7)
    assert assess_score(score("c", 0.25, "low"), strict)["level"] == "medium"
    assert assess_score(score("c", 0.29, "low"))["level"] == "low"


def test_all_low_is_approved() -> None:
    s = state()
    for i, cid in enumerate(ITEMS):
        assert complete_verdict(s) is None
        assert record_score(s, cid, f"e{i}", assess_score(score(cid, 0.1, "low")))
    verdict = complete_verdict(s)
    assert verdict is not None
    assert verdict.verdict == "approved" and verdict.flagged_items == []
    assert (verdict.items_total, verdict.items_scored) == (3, 3)
    assert verdict.model_version == "fast-1"


def test_medium_or_above_needs_review_with_why() -> None:
    s = state()
    record_score(s, ITEMS[0], "e0", assess_score(score(ITEMS[0], 0.1, "low")))
    dims = [{"dimension": "age", "score": 0.72, "confidence": 0.8, "evidence": ["too old"]}]
    record_score(s, ITEMS[1], "e1", assess_score(score(ITEMS[1], 0.72, "high", dimensions=dims)))
    record_score(s, ITEMS[2], "e2", assess_score(score(ITEMS[2], 0.3, "medium")))
    verdict = complete_verdict(s)
    assert verdict is not None and verdict.verdict == "needs_review"
    flagged = {f["content_id"]: f for f in verdict.flagged_items}
    assert set(flagged) == {ITEMS[1], ITEMS[2]}  # 0.3 is medium: the boundary is flagged
    assert flagged[ITEMS[1]]["level"] == "high" and flagged[ITEMS[1]]["dimensions"] == ["age"]
    assert flagged[ITEMS[1]]["channel"] == "social_media"
    assert any("too old" in r for r in flagged[ITEMS[1]]["reasons"])
    assert flagged[ITEMS[2]]["channel"] == "email"
    assert verdict.payload()["items_flagged"] == 2


def test_duplicates_and_strangers_do_not_count() -> None:
    s = state()
    assessed = assess_score(score(ITEMS[0], 0.9, "critical"))
    assert record_score(s, ITEMS[0], "e0", assessed)
    assert not record_score(s, ITEMS[0], "e0", assessed)  # same event delivered twice
    assert not record_score(s, ITEMS[0], "e9", assess_score(score(ITEMS[0], 0.1, "low")))
    assert not record_score(s, "not-in-campaign", "e5", assessed)
    assert len(s["scores"]) == 1 and s["scores"][ITEMS[0]]["level"] == "critical"


@pytest.mark.parametrize(
    ("elapsed", "overdue"), [(0.0, False), (29.999, False), (30.0, True), (31.0, True)]
)
def test_overdue_at_the_timeout(elapsed: float, overdue: bool) -> None:
    assert is_overdue(state(now=100.0), 100.0 + elapsed, 30.0) is overdue


def test_a_screened_campaign_is_never_overdue() -> None:
    s = state(now=0.0)
    s["verdict"] = "approved"
    assert not is_overdue(s, 1e9, 30.0)
    assert overdue_campaigns([("a", s), ("b", state(now=0.0)), ("c", None)], 31.0, 30.0) == ["b"]


def test_timeout_is_incomplete_and_lists_the_missing_items() -> None:
    s = state(now=0.0)
    record_score(s, ITEMS[1], "e1", assess_score(score(ITEMS[1], 0.65, "high")))
    assert timeout_verdict(s, 10.0, 30.0) is None
    verdict = timeout_verdict(s, 30.0, 30.0)
    assert verdict is not None and verdict.verdict == "incomplete"
    assert verdict.missing == [ITEMS[0], ITEMS[2]]
    assert (verdict.items_total, verdict.items_scored) == (3, 1)
    by_id = {f["content_id"]: f for f in verdict.flagged_items}
    assert by_id[ITEMS[1]]["level"] == "high"
    assert by_id[ITEMS[0]]["reasons"] == [MISSING_REASON.format(timeout=30.0)]
    assert by_id[ITEMS[2]]["channel"] == "email"


def test_timeout_with_every_score_in_is_the_complete_verdict() -> None:
    s = state(now=0.0)
    for cid in ITEMS:
        record_score(s, cid, cid, assess_score(score(cid, 0.05, "low")))
    verdict = timeout_verdict(s, 99.0, 30.0)
    assert verdict is not None and verdict.verdict == "approved"


# -- the service: bytes in, records out, state stepped --------------------------------


@pytest.fixture
def codec() -> EventCodec:
    return EventCodec()


@pytest.fixture
def service(codec: EventCodec) -> CampaignScreeningService:
    return CampaignScreeningService(
        codec, topic_prefix=PREFIX, internal_topic=INTERNAL, timeout_seconds=30.0
    )


def raw(codec: EventCodec, event: Event, topic: str, offset: int = 0) -> RawMessage:
    enc = codec.encode(event)
    return RawMessage(topic, 0, offset, enc.key, enc.value, list(enc.headers))


def bias_scored(content_id: str, overall: float, level: str) -> Event:
    return example_event(
        "BiasScored",
        content_id=content_id,
        campaign_id="mk-2031",
        overall_score=overall,
        level=level,
    )


def test_plan_submits_every_item_then_scores_screen_it(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    plan = example_event("CampaignPlanned", correlation_id="wf-7")
    routed = service.route(raw(codec, plan, service.planned_topic))
    assert routed is not None and routed.topic == INTERNAL and routed.key == b"mk-2031"
    internal = RawMessage(INTERNAL, 0, 0, routed.key, routed.value, list(routed.headers))

    step = service.step(internal, None, now=50.0)
    assert step.changed and step.outcome == "started" and step.state is not None
    submitted = [codec.decode(m.value or b"", m.headers) for m in step.messages]
    assert [m.topic for m in step.messages] == [PREFIX + "content.submitted"] * 3
    assert [e.payload["content_id"] for e in submitted] == list(ITEMS)
    plan_id = str(plan.envelope.event_id)
    for e in submitted:
        assert e.type == "ContentSubmitted"
        assert e.payload["campaign_id"] == "mk-2031"
        assert e.envelope.causation_id == plan_id and e.envelope.correlation_id == "wf-7"
        assert e.envelope.event_id == submitted_event_id(plan_id, e.payload["content_id"])
    assert [e.payload["content_type"] for e in submitted] == ["social_media", "ad", "email"]
    assert submitted[2].payload["metadata"]["channel"] == "email"

    current: dict[str, Any] | None = step.state
    levels = {ITEMS[0]: (0.1, "low"), ITEMS[1]: (0.72, "high"), ITEMS[2]: (0.2, "low")}
    scored_events = {cid: bias_scored(cid, *lv) for cid, lv in levels.items()}
    for i, cid in enumerate(ITEMS[:2]):
        routed = service.route(raw(codec, scored_events[cid], service.scored_topic, i))
        assert routed is not None and routed.key == b"mk-2031"
        msg = RawMessage(INTERNAL, 0, i + 1, routed.key, routed.value, list(routed.headers))
        step = service.step(msg, current, now=60.0)
        assert step.outcome == "scored" and not step.messages
        current = step.state
        again = service.step(msg, current, now=61.0)  # the same BiasScored once more
        assert again.outcome == "duplicate" and not again.changed and not again.messages
    assert current is not None and len(current["scores"]) == 2

    last = service.route(raw(codec, scored_events[ITEMS[2]], service.scored_topic, 9))
    assert last is not None
    step = service.step(
        RawMessage(INTERNAL, 0, 9, last.key, last.value, last.headers), current, 70.0
    )
    assert step.outcome == "needs_review"
    [out] = step.messages
    assert out.topic == PREFIX + "campaign.screened"
    screened = codec.decode(out.value or b"", out.headers)
    assert screened.envelope.event_id == screened_event_id(plan_id)
    assert screened.envelope.causation_id == plan_id
    assert screened.envelope.correlation_id == "wf-7"
    assert screened.payload["verdict"] == "needs_review"
    assert [f["content_id"] for f in screened.payload["flagged_items"]] == [ITEMS[1]]
    assert screened.payload["items_scored"] == 3 and screened.payload["items_flagged"] == 1

    # After the verdict: the plan delivered again, a late score and a deadline check are no-ops.
    done = step.state
    assert done is not None and done["verdict"] == "needs_review"
    for message in (internal, service.deadline_check("mk-2031")):
        message = RawMessage(INTERNAL, 0, 99, message.key, message.value, list(message.headers))
        after = service.step(message, done, now=1e6)
        assert not after.messages and not after.changed


def test_deadline_check_screens_an_open_campaign_incomplete(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    plan = example_event("CampaignPlanned")
    routed = service.route(raw(codec, plan, service.planned_topic))
    assert routed is not None
    started = service.step(
        RawMessage(INTERNAL, 0, 0, routed.key, routed.value, routed.headers), None, now=0.0
    ).state
    check = service.deadline_check("mk-2031")
    check_msg = RawMessage(INTERNAL, 0, 1, check.key, check.value, check.headers)
    early = service.step(check_msg, started, now=29.0)
    assert not early.messages and not early.changed
    late = service.step(check_msg, started, now=30.0)
    assert late.outcome == "incomplete"
    screened = codec.decode(late.messages[0].value or b"", late.messages[0].headers)
    assert screened.payload["verdict"] == "incomplete"
    assert screened.payload["items_scored"] == 0
    assert sorted(f["content_id"] for f in screened.payload["flagged_items"]) == sorted(ITEMS)


def test_redelivered_open_plan_changes_nothing(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    plan = example_event("CampaignPlanned")
    routed = service.route(raw(codec, plan, service.planned_topic))
    assert routed is not None
    msg = RawMessage(INTERNAL, 0, 0, routed.key, routed.value, routed.headers)
    current = service.step(msg, None, now=0.0).state
    assert current is not None
    again = service.step(msg, current, now=1.0)
    assert again.outcome == "duplicate" and not again.changed and not again.messages


def test_a_replanned_campaign_starts_a_new_screening(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    first = example_event("CampaignPlanned")
    second = example_event("CampaignPlanned", channels=[])
    started = service.step(_internal(codec, service, first), None, now=0.0).state
    replanned = service.step(_internal(codec, service, second), started, now=1.0)
    assert replanned.outcome == "approved"  # the new plan has no items
    assert replanned.state is not None
    assert replanned.state["planned_event_id"] == str(second.envelope.event_id)


def _internal(codec: EventCodec, service: CampaignScreeningService, event: Event) -> RawMessage:
    routed = service.route(raw(codec, event, service.planned_topic))
    assert routed is not None
    return RawMessage(INTERNAL, 0, 0, routed.key, routed.value, routed.headers)


def test_campaign_without_items_is_approved_at_once(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    plan = example_event("CampaignPlanned", channels=[])
    routed = service.route(raw(codec, plan, service.planned_topic))
    assert routed is not None
    step = service.step(RawMessage(INTERNAL, 0, 0, routed.key, routed.value, []), None, 0.0)
    [out] = step.messages
    assert codec.decode(out.value or b"").payload["verdict"] == "approved"


def test_routing_skips_scores_outside_campaigns_and_dead_letters_garbage(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    loose = example_event("BiasScored", campaign_id=None)
    assert service.route(raw(codec, loose, service.scored_topic)) is None
    dlq = service.route(RawMessage(service.scored_topic, 4, 12, b"c-1", b"\xc3\x01garbage"))
    assert dlq is not None and dlq.topic == service.scored_topic + ".dlq"
    headers = dict(dlq.headers)
    assert headers["dlq_source_partition"] == b"4" and headers["dlq_reason"]
    wrong = service.route(raw(codec, loose, service.planned_topic))
    assert wrong is not None and wrong.topic == service.planned_topic + ".dlq"
    assert b"expected CampaignPlanned" in dict(wrong.headers)["dlq_reason"]


def test_unknown_campaign_scores_are_ignored(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    routed = service.route(raw(codec, bias_scored(ITEMS[0], 0.9, "critical"), service.scored_topic))
    assert routed is not None
    step = service.step(RawMessage(INTERNAL, 0, 0, routed.key, routed.value, []), None, 0.0)
    assert step.state is None and not step.messages and step.outcome == "unknown_campaign"


def start(codec: EventCodec, service: CampaignScreeningService, plan: Event) -> Step:
    """Route a CampaignPlanned to the internal topic and take the first step on it."""
    routed = service.route(raw(codec, plan, service.planned_topic))
    assert routed is not None
    internal = RawMessage(INTERNAL, 0, 0, routed.key, routed.value, list(routed.headers))
    started = service.step(internal, None, now=50.0)
    assert started.state is not None and started.messages
    return started


def verdict_at_deadline(
    codec: EventCodec, service: CampaignScreeningService, started: Step
) -> TraceContext | None:
    """Screen the campaign at its deadline (from the state alone); return the verdict's trace."""
    check = service.deadline_check("mk-2031")
    check_msg = RawMessage(INTERNAL, 0, 1, check.key, check.value, list(check.headers))
    [out] = service.step(check_msg, started.state, now=50.0 + 31.0).messages
    return codec.decode(out.value or b"", out.headers).envelope.trace


def test_submissions_and_the_verdict_continue_the_plans_trace(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    plan = example_event("CampaignPlanned")
    plan_span = TraceContext.new()
    plan = Event(plan.type, dataclasses.replace(plan.envelope, trace=plan_span), plan.payload)
    started = start(codec, service, plan)
    for message in started.messages:
        trace = codec.decode(message.value or b"", message.headers).envelope.trace
        assert trace is not None
        assert trace.trace_id == plan_span.trace_id and trace.span_id != plan_span.span_id

    # The verdict comes from the state alone, long after the plan. On the wire a span names
    # its trace and itself; its parent is the hop before it.
    trace = verdict_at_deadline(codec, service, started)
    assert trace is not None
    assert trace.trace_id == plan_span.trace_id and trace.span_id != plan_span.span_id


def test_a_plan_without_trace_gets_a_new_one_for_its_verdict(
    codec: EventCodec, service: CampaignScreeningService
) -> None:
    started = start(codec, service, example_event("CampaignPlanned"))
    assert started.state is not None and "traceparent" not in started.state
    trace = verdict_at_deadline(codec, service, started)
    assert trace is not None and trace.trace_id != "0" * 32
