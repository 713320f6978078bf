"""Turn model outputs and text facts into BiasAssessment records (shared by both scorers)."""

from __future__ import annotations

from collections.abc import Sequence

from processors.bias.inspection import TextFacts
from processors.bias.scoring import (
    DIMENSIONS,
    BiasAssessment,
    DimensionScore,
    EvidenceSpan,
    Thresholds,
    level_for,
)

MAX_EVIDENCE = 8


def _weight(span: EvidenceSpan) -> float:
    return span.weight


def _score(dimension: DimensionScore) -> float:
    return dimension.score


def decisiveness(probability: float) -> float:
    """Return how far a probability is from a coin flip, 0 (p=0.5) to 1 (p=0 or 1)."""
    return abs(2.0 * probability - 1.0)


def unscorable(facts: TextFacts, name: str, version: str, latency_ms: float) -> BiasAssessment:
    """Return the assessment of a text no model can read: score 0, confidence 0, low."""
    return BiasAssessment(
        model_name=name,
        model_version=version,
        overall_score=0.0,
        confidence=0.0,
        level="low",
        dimensions=[DimensionScore(d, 0.0, 0.0, []) for d in DIMENSIONS],
        evidence=[],
        content_hash=facts.content_hash,
        text_length=facts.text_length,
        word_count=facts.word_count,
        language=facts.language,
        flags=list(facts.flags),
        latency_ms=latency_ms,
    )


def assemble(
    facts: TextFacts,
    *,
    name: str,
    version: str,
    stereotype_probability: float,
    dimension_probabilities: Sequence[float],
    dimension_classes: Sequence[str],
    evidence: Sequence[EvidenceSpan],
    thresholds: Thresholds,
    latency_ms: float,
) -> BiasAssessment:
    """Build an assessment: overall = P(stereotype); dimension d = P(stereotype) * P(d | text).

    Confidence is how decisive the calibrated probability is, lowered for flagged input
    (non-English, truncated). A dimension's confidence is how decisive the dimension
    head is about that dimension, times the overall confidence.
    """
    p = min(1.0, max(0.0, float(stereotype_probability)))
    confidence = decisiveness(p) * facts.confidence_factor()
    by_class = dict(zip(dimension_classes, dimension_probabilities, strict=True))
    spans = sorted(evidence, key=_weight, reverse=True)[:MAX_EVIDENCE]
    # Each dimension's distinct span texts in span order, gathered in one pass.
    terms: dict[str | None, list[str]] = {}
    for span in spans:
        seen = terms.setdefault(span.dimension, [])
        if span.text not in seen:
            seen.append(span.text)
    dimensions = []
    for dimension in DIMENSIONS:
        q = float(by_class.get(dimension, 0.0))
        dimensions.append(
            DimensionScore(
                dimension,
                round(p * q, 6),
                round(confidence * decisiveness(q), 6),
                terms.get(dimension) or [],
            )
        )
    # Stable, like sorting on -score: equal scores keep the DIMENSIONS order.
    dimensions.sort(key=_score, reverse=True)
    return BiasAssessment(
        model_name=name,
        model_version=version,
        overall_score=round(p, 6),
        confidence=round(confidence, 6),
        level=level_for(p, thresholds),
        dimensions=dimensions,
        evidence=spans,
        content_hash=facts.content_hash,
        text_length=facts.text_length,
        word_count=facts.word_count,
        language=facts.language,
        flags=list(facts.flags),
        latency_ms=latency_ms,
    )
