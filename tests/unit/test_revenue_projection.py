"""Revenue projection: the month-by-month model and defaults of domain.md section 3."""

from __future__ import annotations

from typing import Any

import pytest

from events.codec import EventCodec
from events.testing import example_event
from processors.deadletter import RawMessage
from processors.revenue.domain import (
    DEFAULT_TIERS,
    InvalidProjectionRequest,
    project_revenue,
    whole,
    yearly_price,
)
from processors.revenue.service import RevenueProjectionService, projected_event_id

PREFIX = "t-unit."


def request(**overrides: Any) -> dict[str, Any]:
    return {"projection_id": "p-1", "months": 3, **overrides}


def test_first_three_months_with_the_defaults_by_hand() -> None:
    # acquisition 50, growth 5%, conversion 20%, churn 5%, tiers 60/30/10 at 9.99/19.99/49.99
    # m1: users 0+50-0=50, conv int(50*.2)=10, paid 10 -> tiers 6/3/1
    # m2: users 50+int(52.5)-int(2.5)=100, conv int(90*.2)=18, paid 10+18-int(.5)=28 -> 16/8/2
    # m3: users 100+int(55.125)-int(5)=150, conv int(122*.2)=24, paid 28+24-int(1.4)=51 -> 30/15/5
    result = project_revenue(request())
    m1, m2, m3 = result["months"]
    assert (m1["users"], m1["free_users"], m1["paid_users"]) == (50, 40, 10)
    assert m1["revenue_by_tier"] == {"basic": 59.94, "pro": 59.97, "premium": 49.99}
    assert m1["revenue"] == 169.90
    assert (m2["users"], m2["free_users"], m2["paid_users"]) == (100, 72, 28)
    assert m2["revenue_by_tier"] == {"basic": 159.84, "pro": 159.92, "premium": 99.98}
    assert m2["revenue"] == 419.74
    assert (m3["users"], m3["free_users"], m3["paid_users"]) == (150, 99, 51)
    assert m3["revenue_by_tier"] == {"basic": 299.70, "pro": 299.85, "premium": 249.95}
    assert m3["revenue"] == 849.50
    assert [m["month"] for m in result["months"]] == [1, 2, 3]
    assert result["total_revenue"] == 1439.14
    assert (result["final_users"], result["final_paid_users"]) == (150, 51)
    assert result["arpu"] == 16.6569  # 849.50 / 51
    assert result["ltv"] == 333.14  # ARPU / churn = 16.6569 / 0.05
    assert result["business_model"] == "freemium" and result["currency"] == "USD"


def test_churn_hits_all_users_and_paid_users_separately() -> None:
    # m1: users 1000-100=900, conv 90, paid 90, revenue 90*10
    # m2: users 900-90=810, free 810-90=720, conv 72, paid 90+72-9=153, revenue 1530
    result = project_revenue(
        request(
            initial_users=1000,
            acquisition_per_month=0.0,
            conversion_rate=0.1,
            churn_rate=0.1,
            growth_rate=0.0,
            months=2,
            tiers=[{"name": "only", "price_monthly": 10.0, "share": 1.0}],
        )
    )
    m1, m2 = result["months"]
    assert (m1["users"], m1["paid_users"], m1["revenue"]) == (900, 90, 900.0)
    assert (m2["users"], m2["free_users"], m2["paid_users"], m2["revenue"]) == (
        810,
        657,
        153,
        1530.0,
    )


def test_defaults_fill_what_the_request_leaves_out() -> None:
    result = project_revenue({"projection_id": "p-2"})
    assert len(result["months"]) == 36
    assert result["months"][0]["users"] == 50
    assert set(result["months"][0]["revenue_by_tier"]) == {t["name"] for t in DEFAULT_TIERS}
    assert result["ltv"] == pytest.approx(result["arpu"] / 0.05, abs=0.01)
    assert result["total_revenue"] == pytest.approx(
        sum(m["revenue"] for m in result["months"]), abs=0.01
    )


def test_ltv_is_none_without_churn() -> None:
    result = project_revenue(request(churn_rate=0.0))
    assert result["ltv"] is None and result["arpu"] > 0


def test_zero_months_is_an_empty_projection() -> None:
    result = project_revenue(request(months=0, initial_users=7))
    assert result["months"] == [] and result["final_users"] == 7 and result["arpu"] == 0.0


def test_whole_is_not_fooled_by_binary_rounding() -> None:
    assert 100 * 0.29 < 29  # what int() alone would get wrong
    assert whole(100 * 0.29) == 29
    assert whole(2.999) == 2 and whole(0.0) == 0 and whole(-3.0) == 0


def test_yearly_price_defaults_to_ten_months() -> None:
    assert yearly_price({"price_monthly": 9.99, "price_yearly": None}) == 99.9
    assert yearly_price({"price_monthly": 19.99, "price_yearly": 199.0}) == 199.0


@pytest.mark.parametrize(
    "bad",
    [
        {"churn_rate": 1.5},
        {"conversion_rate": -0.1},
        {"conversion_rate": float("nan")},
        {"months": -1},
        {"initial_users": -5},
        {"tiers": [{"name": "a", "price_monthly": 1.0, "share": 0.8}] * 2},
        {"tiers": [{"name": "a", "price_monthly": -1.0, "share": 0.5}]},
    ],
)
def test_impossible_requests_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidProjectionRequest):
        project_revenue(request(**bad))


def _raw(codec: EventCodec, service: RevenueProjectionService, **overrides: Any) -> RawMessage:
    event = example_event("RevenueProjectionRequested", correlation_id="wf-9", **overrides)
    enc = codec.encode(event)
    return RawMessage(service.source_topic, 1, 3, enc.key, enc.value, list(enc.headers))


def test_service_projects_the_example_request() -> None:
    codec = EventCodec()
    service = RevenueProjectionService(codec, topic_prefix=PREFIX)
    raw = _raw(codec, service)
    request_event = codec.decode(raw.value or b"", raw.headers)
    outcome = service.handle_batch([raw])
    assert (outcome.projected, outcome.dead_lettered) == (1, 0)
    [out] = outcome.messages
    assert out.topic == PREFIX + "revenue.projected"
    event = codec.decode(out.value or b"", out.headers)
    assert event.envelope.event_id == projected_event_id(request_event.envelope.event_id)
    assert event.envelope.causation_id == str(request_event.envelope.event_id)
    assert event.envelope.correlation_id == "wf-9"
    assert [m["revenue"] for m in event.payload["months"]] == [169.90, 419.74, 849.50]
    assert event.payload["projection_id"] == "proj-stocksmith-1"


def test_service_dead_letters_undecodable_and_impossible_requests() -> None:
    codec = EventCodec()
    service = RevenueProjectionService(codec, topic_prefix=PREFIX)
    impossible = _raw(codec, service, churn_rate=2.0)
    garbage = RawMessage(service.source_topic, 0, 9, b"k", b"junk")
    outcome = service.handle_batch([impossible, garbage])
    assert (outcome.projected, outcome.dead_lettered) == (0, 2)
    reasons = [dict(m.headers)["dlq_reason"].decode() for m in outcome.messages]
    assert "churn_rate" in reasons[0]
    assert dict(outcome.messages[0].headers)["dlq_error_type"] == b"InvalidProjectionRequest"
    assert all(m.topic == service.source_topic + ".dlq" for m in outcome.messages)
