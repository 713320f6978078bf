"""Opportunity scoring: factor values, the weighted formula and bands (domain.md section 3)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from events.codec import EventCodec
from events.testing import example_event
from processors.deadletter import RawMessage
from processors.opportunity.domain import (
    WEIGHTS,
    band_for,
    factors_for,
    overall_score,
    problem_severity,
    score_niche,
)
from processors.opportunity.service import OpportunityScoringService, scored_event_id

PREFIX = "t-unit."


def niche(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "niche_id": "n-1",
        "market_size": "unknown",
        "growth_rate": "unknown",
        "competition": "unknown",
        "problems": [],
        "solution_feasibility": 0.0,
        "monetization_potential": 0.0,
    }
    return {**base, **overrides}


def test_weights_are_the_domain_weights_and_sum_to_one() -> None:
    assert dict(WEIGHTS) == {
        "market_size": 0.20,
        "growth_rate": 0.15,
        "competition": 0.15,
        "problem_severity": 0.20,
        "solution_feasibility": 0.15,
        "monetization_potential": 0.15,
    }
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("market_size", "large", 0.9),
        ("market_size", "medium", 0.6),
        ("market_size", "small", 0.3),
        ("market_size", "unknown", 0.5),
        ("growth_rate", "high", 0.9),
        ("growth_rate", "medium", 0.6),
        ("growth_rate", "low", 0.3),
        ("growth_rate", "unknown", 0.5),
        ("competition", "low", 0.9),
        ("competition", "medium", 0.5),
        ("competition", "high", 0.2),
        ("competition", "unknown", 0.5),
    ],
)
def test_factor_values(field: str, value: str, expected: float) -> None:
    assert factors_for(niche(**{field: value}))[field] == expected


def test_problem_severity_is_the_mean_and_zero_without_problems() -> None:
    assert problem_severity([]) == 0.0
    assert problem_severity(["low"]) == 0.3
    assert problem_severity(["high", "medium"]) == 0.8
    assert problem_severity(["high", "medium", "low"]) == pytest.approx(1.9 / 3, abs=1e-6)


def test_example_niche_by_hand() -> None:
    # medium 0.6, high growth 0.9, low competition 0.9, problems high+medium -> 0.8,
    # feasibility 0.8, monetization 0.7:
    # 0.2*0.6 + 0.15*0.9 + 0.15*0.9 + 0.2*0.8 + 0.15*0.8 + 0.15*0.7 = 0.775
    payload = example_event("NicheResearched").payload
    result = score_niche(payload, "opp-x")
    assert result["factors"] == {
        "market_size": 0.6,
        "growth_rate": 0.9,
        "competition": 0.9,
        "problem_severity": 0.8,
        "solution_feasibility": 0.8,
        "monetization_potential": 0.7,
    }
    assert result["overall_score"] == 0.775
    assert result["band"] == "very_good"
    assert result["niche_id"] == payload["niche_id"] and result["opportunity_id"] == "opp-x"


def test_everything_unknown_is_fair() -> None:
    # 0.2*0.5 + 0.15*0.5 + 0.15*0.5 + 0 + 0 + 0 = 0.25
    factors = factors_for(niche())
    assert overall_score(factors) == 0.25
    assert band_for(overall_score(factors)) == "fair"


def test_exact_boundary_from_the_formula_is_excellent() -> None:
    # 0.18 + 0.135 + 0.135 + 0.2 + 0.15*0.5 + 0.15*0.5 = 0.8 (floats give 0.7999999...)
    best = niche(
        market_size="large",
        growth_rate="high",
        competition="low",
        problems=[{"title": "p", "severity": "high"}],
        solution_feasibility=0.5,
        monetization_potential=0.5,
    )
    assert overall_score(factors_for(best)) == 0.8
    assert score_niche(best, "o")["band"] == "excellent"


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (1.0, "excellent"),
        (0.8, "excellent"),
        (0.799999, "very_good"),
        (0.6, "very_good"),
        (0.599999, "good"),
        (0.4, "good"),
        (0.399999, "fair"),
        (0.2, "fair"),
        (0.199999, "limited"),
        (0.0, "limited"),
    ],
)
def test_bands_at_their_boundaries(score: float, band: str) -> None:
    assert band_for(score) == band


def test_researched_values_are_clamped_into_unit_range() -> None:
    factors = factors_for(niche(solution_feasibility=1.7, monetization_potential=-0.2))
    assert factors["solution_feasibility"] == 1.0
    assert factors["monetization_potential"] == 0.0


def test_service_scores_with_deterministic_ids_and_carries_the_correlation() -> None:
    codec = EventCodec()
    service = OpportunityScoringService(codec, topic_prefix=PREFIX)
    event = example_event("NicheResearched", correlation_id="wf-1")
    enc = codec.encode(event)
    raw = RawMessage(service.source_topic, 0, 7, enc.key, enc.value, list(enc.headers))
    first = service.handle_batch([raw])
    again = service.handle_batch([raw])
    assert (first.scored, first.dead_lettered) == (1, 0)
    [out] = first.messages
    assert out.topic == PREFIX + "opportunity.scored"
    assert out.key == event.payload["niche_id"].encode()
    scored = codec.decode(out.value or b"", out.headers)
    assert scored.type == "OpportunityScored"
    assert scored.envelope.event_id == scored_event_id(event.envelope.event_id)
    assert scored.envelope.causation_id == str(event.envelope.event_id)
    assert scored.envelope.correlation_id == "wf-1"
    assert scored.payload["overall_score"] == 0.775
    assert scored.payload["band"] == "very_good"
    assert scored.payload["weights"]["problem_severity"] == 0.2
    assert again.messages[0].value == out.value  # a duplicate is recognisably the same


def test_service_dead_letters_what_it_cannot_decode() -> None:
    service = OpportunityScoringService(EventCodec(), topic_prefix=PREFIX)
    garbage = RawMessage(service.source_topic, 2, 41, b"k", b"\x00not avro", [("x", b"1")])
    outcome = service.handle_batch([garbage])
    assert (outcome.scored, outcome.dead_lettered) == (0, 1)
    [dlq] = outcome.messages
    headers = dict(dlq.headers)
    assert dlq.topic == service.source_topic + ".dlq"
    assert dlq.value == garbage.value and dlq.key == b"k"
    assert headers["dlq_source_offset"] == b"41" and headers["dlq_reason"]
    assert headers["dlq_processor"] == b"opportunity-scorer"


def test_ids_differ_per_input() -> None:
    assert scored_event_id(uuid.uuid4()) != scored_event_id(uuid.uuid4())
