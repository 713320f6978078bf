"""Score a batch of ContentSubmitted records into BiasScored and BiasAlertRaised records.

This is the processor's logic without Faust: bytes in, records out, so it can be
unit-tested with an in-memory scorer and driven by any consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from events.catalog import topic_name
from events.codec import DecodeError, EventCodec, ValidationError
from events.model import Envelope, Event
from processors.bias.scoring import BiasAssessment, BiasScorer, StagedScorer
from processors.deadletter import OutgoingMessage, RawMessage, dead_letter
from processors.mapping import decode_expected, derived_envelope

# Namespace for BiasScored ids: uuid5(input event id + model version) makes a
# re-delivered or re-scored input recognisable downstream as the same result.
BIAS_SCORED_NAMESPACE = uuid.UUID("5d0c3f7e-4a8b-5e0f-9c2d-6b1a7e3f9d40")
ALERT_LEVELS = frozenset({"high", "critical"})
ESCALATE_AFTER_SECONDS = {"high": 300, "critical": 60}


def scored_event_id(input_event_id: uuid.UUID, model_version: str) -> uuid.UUID:
    """Derive BiasScored's event id from the input event id and the model version."""
    return uuid.uuid5(BIAS_SCORED_NAMESPACE, f"{input_event_id}/{model_version}")


@dataclass(slots=True)
class ScoringRound:
    """Hold one batch between `begin`, `run_model` and `finish`.

    `state` is the scorer's prepared batch (StagedScorer), or the texts and then the
    assessments for a scorer that only has `score_batch`.
    """

    events: list[Event]
    dead: list[OutgoingMessage]
    state: Any
    staged: bool


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Hold what one batch produced: records to send and counts per outcome."""

    messages: list[OutgoingMessage]
    scored: int
    alerts: int
    dead_lettered: int


class BiasScoringService:
    """Turn ContentSubmitted records into BiasScored (and alert) records with one scorer."""

    name = "bias-scorer"

    def __init__(
        self,
        scorer: BiasScorer,
        codec: EventCodec,
        *,
        topic_prefix: str = "",
        dimension_floor: float = 0.3,
    ) -> None:
        self._scorer = scorer
        self._dimension_floor = dimension_floor
        self._codec = codec
        self._scored_topic = topic_name("BiasScored", topic_prefix)
        self._alert_topic = topic_name("BiasAlertRaised", topic_prefix)

    @property
    def scorer(self) -> BiasScorer:
        """Return the scorer this service uses."""
        return self._scorer

    def handle_batch(self, batch: Sequence[RawMessage]) -> BatchOutcome:
        """Decode, score and encode one batch; dead-letter what cannot be decoded."""
        return self.finish(self.run_model(self.begin(batch)))

    def begin(self, batch: Sequence[RawMessage]) -> ScoringRound:
        """Decode a batch, dead-letter what cannot be decoded, prepare the rest for the model."""
        dead: list[OutgoingMessage] = []
        accepted: list[Event] = []
        for message in batch:
            try:
                event = decode_expected(self._codec, message, "ContentSubmitted")
            except (DecodeError, ValidationError) as exc:
                dead.append(
                    dead_letter(
                        message,
                        reason=str(exc),
                        error_type=type(exc).__name__,
                        processor=self.name,
                    )
                )
                continue
            accepted.append(event)
        texts = [str(e.payload["text"]) for e in accepted]
        staged = isinstance(self._scorer, StagedScorer)
        prepared = cast(StagedScorer, self._scorer).prepare(texts) if staged and texts else texts
        return ScoringRound(accepted, dead, prepared, staged)

    def run_model(self, scoring: ScoringRound) -> ScoringRound:
        """Run the model step of a round; the one step that may run on a worker thread.

        A scorer that is not a StagedScorer does all its work here (`score_batch`).
        """
        if scoring.events:
            if scoring.staged:
                scoring.state = cast(StagedScorer, self._scorer).run_model(scoring.state)
            else:
                scoring.state = self._scorer.score_batch(scoring.state)
        return scoring

    def finish(self, scoring: ScoringRound) -> BatchOutcome:
        """Assess a round that went through the model; build and encode its records."""
        out = scoring.dead
        dead = len(out)
        if not scoring.events:
            return BatchOutcome(out, 0, 0, dead)
        assessments: list[BiasAssessment] = (
            cast(StagedScorer, self._scorer).assess(scoring.state)
            if scoring.staged
            else scoring.state
        )
        alerts = 0
        for event, assessment in zip(scoring.events, assessments, strict=True):
            scored = self.scored_event(event, assessment)
            out.append(self._encode(self._scored_topic, scored))
            if assessment.level in ALERT_LEVELS:
                out.append(self._encode(self._alert_topic, self.alert_event(scored)))
                alerts += 1
        return BatchOutcome(out, len(scoring.events), alerts, dead)

    def scored_event(self, submitted: Event, assessment: BiasAssessment) -> Event:
        """Build the BiasScored event for one submitted content and its assessment."""
        env = submitted.envelope
        payload: dict[str, Any] = _assessment_fields(assessment)
        payload.update(
            content_id=submitted.payload["content_id"],
            campaign_id=submitted.payload.get("campaign_id"),
            content_type=submitted.payload.get("content_type", "other"),
        )
        envelope = derived_envelope(
            env,
            event_id=scored_event_id(env.event_id, assessment.model_version),
            source=self.name,
            subject=env.subject,
        )
        return Event(type="BiasScored", envelope=envelope, payload=payload)

    def alert_event(self, scored: Event) -> Event:
        """Build BiasAlertRaised for a high or critical BiasScored."""
        p = scored.payload
        level = str(p["level"])
        flagged = sorted(
            (d for d in p["dimensions"] if d["score"] >= self._dimension_floor),
            key=lambda d: -float(d["score"]),
        )
        names = [d["dimension"] for d in flagged]
        terms = ", ".join(dict.fromkeys(s["text"] for s in p["evidence"][:5]))
        reason = (
            f"overall bias score {float(p['overall_score']):.2f} is {level}"
            + (f"; dimensions: {', '.join(names)}" if names else "")
            + (f"; evidence: {terms}" if terms else "")
        )
        envelope = Envelope(
            event_id=uuid.uuid5(scored.envelope.event_id, "BiasAlertRaised"),
            occurred_at=scored.envelope.occurred_at,
            source=self.name,
            subject=scored.envelope.subject,
            correlation_id=scored.envelope.correlation_id,
            causation_id=str(scored.envelope.event_id),
            trace=scored.envelope.trace,  # same processing span as the BiasScored it raises
        )
        payload = {
            "content_id": p["content_id"],
            "level": level,
            "overall_score": p["overall_score"],
            "confidence": p["confidence"],
            "reason": reason,
            "dimensions": names,
            "model_version": p["model_version"],
            "escalate_after_seconds": ESCALATE_AFTER_SECONDS.get(level, 300),
        }
        return Event(type="BiasAlertRaised", envelope=envelope, payload=payload)

    def _encode(self, topic: str, event: Event) -> OutgoingMessage:
        # Records built here from a decoded input and a scorer's assessment: skip the
        # codec's deep per-field check (fastavro's writer still refuses wrong types).
        encoded = self._codec.encode(event, validate=False)
        return OutgoingMessage(topic, encoded.key, encoded.value, list(encoded.headers))


def _assessment_fields(assessment: BiasAssessment) -> dict[str, Any]:
    """Return the assessment as BiasScored payload fields.

    Written out field by field: `dataclasses.asdict` deep-copies every value and was a
    fifth of the processor's per-event cost. A field added to BiasAssessment must be
    added here too (the unit tests compare this with `asdict`).
    """
    a = assessment
    return {
        "model_name": a.model_name,
        "model_version": a.model_version,
        "overall_score": a.overall_score,
        "confidence": a.confidence,
        "level": a.level,
        "dimensions": [
            {
                "dimension": d.dimension,
                "score": d.score,
                "confidence": d.confidence,
                "evidence": list(d.evidence),
            }
            for d in a.dimensions
        ],
        "evidence": [
            {
                "text": e.text,
                "start": e.start,
                "end": e.end,
                "weight": e.weight,
                "dimension": e.dimension,
            }
            for e in a.evidence
        ],
        "content_hash": a.content_hash,
        "text_length": a.text_length,
        "word_count": a.word_count,
        "language": a.language,
        "flags": list(a.flags),
        "latency_ms": a.latency_ms,
    }
