"""The bias processor's logic without Kafka: scoring, deterministic ids, alerts, dead letters."""

from __future__ import annotations

import os
from collections.abc import Sequence

from events.codec import EventCodec
from events.jsonform import event_from_json
from processors.bias.scoring import BiasAssessment, DimensionScore, EvidenceSpan, level_for
from processors.bias.service import BiasScoringService, scored_event_id
from processors.deadletter import RawMessage


class FixedScorer:
    """Score every text with the same overall score: an in-memory adapter of the port."""

    name = "fixed"
    max_tokens = 128

    def __init__(self, score: float, version: str = "fixed-1") -> None:
        self.score = score
        self.version = version

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        return [
            BiasAssessment(
                model_name=self.name,
                model_version=self.version,
                overall_score=self.score,
                confidence=0.9,
                level=level_for(self.score),
                dimensions=[DimensionScore("gender", self.score, 0.9, ["emotional"])],
                evidence=[EvidenceSpan("emotional", 0, 9, 0.5, "gender")],
                content_hash="0" * 64,
                text_length=len(text),
                word_count=len(text.split()),
                language="en",
                flags=[],
                latency_ms=0.1,
            )
            for text in texts
        ]


CODEC = EventCodec()


def _submitted(content_id: str, offset: int = 0) -> RawMessage:
    event = event_from_json(
        "ContentSubmitted",
        {"content_id": content_id, "text": "Women are too emotional.", "campaign_id": "camp-1"},
        source="test",
    )
    encoded = CODEC.encode(event)
    return RawMessage("content.submitted", 0, offset, encoded.key, encoded.value, encoded.headers)


def test_scores_a_batch_into_bias_scored_events() -> None:
    service = BiasScoringService(FixedScorer(0.2), CODEC)
    outcome = service.handle_batch([_submitted("c1"), _submitted("c2", 1)])
    assert (outcome.scored, outcome.alerts, outcome.dead_lettered) == (2, 0, 0)
    assert [m.topic for m in outcome.messages] == ["bias.scored", "bias.scored"]
    decoded = [CODEC.decode(m.value or b"", m.headers) for m in outcome.messages]
    assert [e.payload["content_id"] for e in decoded] == ["c1", "c2"]
    assert decoded[0].payload["campaign_id"] == "camp-1"
    assert decoded[0].payload["level"] == "low"
    assert decoded[0].envelope.subject == "c1"


def test_bias_scored_id_is_derived_from_input_id_and_model_version() -> None:
    message = _submitted("c1")
    submitted = CODEC.decode(message.value or b"")
    first = BiasScoringService(FixedScorer(0.2), CODEC).handle_batch([message])
    again = BiasScoringService(FixedScorer(0.2), CODEC).handle_batch([message])
    other = BiasScoringService(FixedScorer(0.2, version="fixed-2"), CODEC).handle_batch([message])
    ids = [
        CODEC.decode(o.messages[0].value or b"").envelope.event_id for o in (first, again, other)
    ]
    assert ids[0] == ids[1] == scored_event_id(submitted.envelope.event_id, "fixed-1")
    assert ids[2] != ids[0]
    scored = CODEC.decode(first.messages[0].value or b"")
    assert scored.envelope.causation_id == str(submitted.envelope.event_id)


def test_high_and_critical_scores_raise_an_alert_with_the_reason() -> None:
    for score, level in ((0.65, "high"), (0.95, "critical")):
        outcome = BiasScoringService(FixedScorer(score), CODEC).handle_batch([_submitted("c1")])
        assert outcome.alerts == 1
        alert = CODEC.decode(outcome.messages[1].value or b"")
        assert alert.type == "BiasAlertRaised"
        assert alert.payload["level"] == level
        assert "gender" in alert.payload["reason"] and "emotional" in alert.payload["reason"]
        assert alert.payload["escalate_after_seconds"] == (60 if level == "critical" else 300)
    medium = BiasScoringService(FixedScorer(0.45), CODEC).handle_batch([_submitted("c1")])
    assert medium.alerts == 0


def test_undecodable_and_wrong_type_go_to_the_dead_letter_topic_and_the_rest_is_scored() -> None:
    garbage = RawMessage("content.submitted", 2, 7, b"k", os.urandom(40), [("x", b"y")])
    alert_event = BiasScoringService(FixedScorer(0.9), CODEC).handle_batch([_submitted("c0")])
    wrong = RawMessage("content.submitted", 2, 8, b"k", alert_event.messages[1].value)
    tombstone = RawMessage("content.submitted", 2, 9, b"k", None)
    outcome = BiasScoringService(FixedScorer(0.1), CODEC).handle_batch(
        [garbage, _submitted("c1", 10), wrong, tombstone]
    )
    assert (outcome.scored, outcome.dead_lettered) == (1, 3)
    dead = [m for m in outcome.messages if m.topic == "content.submitted.dlq"]
    assert len(dead) == 3
    assert dead[0].value == garbage.value and dead[0].key == b"k"
    headers = dict(dead[0].headers)
    assert headers["dlq_source_offset"] == b"7" and headers["dlq_source_partition"] == b"2"
    assert headers["dlq_reason"] and headers["x"] == b"y"
    assert b"expected ContentSubmitted, got BiasAlertRaised" in dict(dead[1].headers)["dlq_reason"]
    assert b"tombstone" in dict(dead[2].headers)["dlq_reason"]


def test_payload_fields_match_asdict_of_the_assessment() -> None:
    import dataclasses

    from processors.bias.service import _assessment_fields

    (assessment,) = FixedScorer(0.9).score_batch(["some text"])
    assert _assessment_fields(assessment) == dataclasses.asdict(assessment)
