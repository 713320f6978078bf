"""Score a researched niche as a business opportunity (domain reference, section 3).

overall = sum(factor x weight) over six factors in 0..1; the band follows from the
overall score. Pure functions: no Kafka, no Faust.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

FACTOR_VALUES: Mapping[str, Mapping[str, float]] = {
    "market_size": {"large": 0.9, "medium": 0.6, "small": 0.3, "unknown": 0.5},
    "growth_rate": {"high": 0.9, "medium": 0.6, "low": 0.3, "unknown": 0.5},
    "competition": {"low": 0.9, "medium": 0.5, "high": 0.2, "unknown": 0.5},
}
SEVERITY: Mapping[str, float] = {"high": 1.0, "medium": 0.6, "low": 0.3}
WEIGHTS: Mapping[str, float] = {
    "market_size": 0.20,
    "growth_rate": 0.15,
    "competition": 0.15,
    "problem_severity": 0.20,
    "solution_feasibility": 0.15,
    "monetization_potential": 0.15,
}
# Lower bound of each band, best first; a score below every bound is "limited".
BANDS: Sequence[tuple[float, str]] = (
    (0.8, "excellent"),
    (0.6, "very_good"),
    (0.4, "good"),
    (0.2, "fair"),
)
# Scores are rounded before banding so 0.8 computed as 0.7999999999999999 is still excellent.
PRECISION = 6


def unit(value: float) -> float:
    """Clamp a researched value into 0..1 (NaN counts as 0)."""
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def problem_severity(severities: Sequence[str]) -> float:
    """Return the mean severity of the problems (high 1.0, medium 0.6, low 0.3); 0 when none."""
    if not severities:
        return 0.0
    return round(sum(SEVERITY[s] for s in severities) / len(severities), PRECISION)


def factors_for(niche: Mapping[str, Any]) -> dict[str, float]:
    """Return the six factor values of a NicheResearched payload."""
    return {
        "market_size": FACTOR_VALUES["market_size"][niche.get("market_size") or "unknown"],
        "growth_rate": FACTOR_VALUES["growth_rate"][niche.get("growth_rate") or "unknown"],
        "competition": FACTOR_VALUES["competition"][niche.get("competition") or "unknown"],
        "problem_severity": problem_severity(
            [str(p.get("severity") or "medium") for p in niche.get("problems") or ()]
        ),
        "solution_feasibility": unit(float(niche["solution_feasibility"])),
        "monetization_potential": unit(float(niche["monetization_potential"])),
    }


def overall_score(factors: Mapping[str, float], weights: Mapping[str, float] = WEIGHTS) -> float:
    """Return the weighted sum of the factors, rounded to PRECISION decimals."""
    return round(sum(factors[name] * weight for name, weight in weights.items()), PRECISION)


def band_for(score: float) -> str:
    """Return the band of an overall score: excellent, very_good, good, fair or limited."""
    for bound, band in BANDS:
        if score >= bound:
            return band
    return "limited"


def score_niche(niche: Mapping[str, Any], opportunity_id: str) -> dict[str, Any]:
    """Return the OpportunityScored payload for a NicheResearched payload."""
    factors = factors_for(niche)
    score = overall_score(factors)
    return {
        "niche_id": niche["niche_id"],
        "opportunity_id": opportunity_id,
        "factors": factors,
        "weights": dict(WEIGHTS),
        "overall_score": score,
        "band": band_for(score),
    }
