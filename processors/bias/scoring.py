"""The scorer port: what a bias assessment says and how a deployment gets its scorer.

`BiasAssessment` mirrors the BiasScored payload (docs/CONTRACTS.md) minus the
fields the processor fills from the submitted event (content_id, campaign_id,
content_type); `dataclasses.asdict` of it is valid payload material.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

# Order of the BiasDimension Avro enum; `unknown` is for spans no dimension claims.
DIMENSIONS: tuple[str, ...] = (
    "gender",
    "race_ethnicity",
    "religion",
    "age",
    "disability",
    "nationality",
    "sexual_orientation",
    "socioeconomic",
    "physical_appearance",
    "profession",
)
LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
ModelKind = Literal["fast", "quality"]
MODEL_KINDS: tuple[ModelKind, ...] = ("fast", "quality")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Hold the overall-score thresholds at which a level starts."""

    medium: float = 0.3
    high: float = 0.6
    critical: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium <= self.high <= self.critical <= 1.0:
            raise ValueError(
                "thresholds must satisfy 0 <= medium <= high <= critical <= 1, got "
                f"{self.medium}, {self.high}, {self.critical}"
            )


DEFAULT_THRESHOLDS = Thresholds()


def level_for(score: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> str:
    """Map an overall score to its level: low, medium, high or critical."""
    if score >= thresholds.critical:
        return "critical"
    if score >= thresholds.high:
        return "high"
    if score >= thresholds.medium:
        return "medium"
    return "low"


@dataclass(frozen=True, slots=True)
class EvidenceSpan:
    """Point at a span of the text that pushed the score up, with its weight."""

    text: str
    start: int
    end: int
    weight: float
    dimension: str | None = None


@dataclass(frozen=True, slots=True)
class DimensionScore:
    """Hold one dimension's score, confidence and the terms behind it."""

    dimension: str
    score: float
    confidence: float
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BiasAssessment:
    """Hold what the scorer says about one text (BiasScored fields minus the event's own)."""

    model_name: str
    model_version: str
    overall_score: float
    confidence: float
    level: str
    dimensions: list[DimensionScore]
    evidence: list[EvidenceSpan]
    content_hash: str
    text_length: int
    word_count: int
    language: str
    flags: list[str]
    latency_ms: float


@runtime_checkable
class BiasScorer(Protocol):
    """Score texts for social bias; one instance is loaded once and reused."""

    name: str
    version: str
    max_tokens: int

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        """Score every text of the batch, in order."""
        ...


@runtime_checkable
class StagedScorer(Protocol):
    """Score a batch in three steps so that the model step can run on another thread.

    `score_batch(texts)` equals `assess(run_model(prepare(texts)))`. Only `run_model`
    may run off the event loop's thread: it is the model session alone, which releases
    the GIL, so Python work on other batches proceeds meanwhile.
    """

    def prepare(self, texts: Sequence[str]) -> Any:
        """Inspect and window the texts; return the batch state the next steps use."""
        ...

    def run_model(self, prepared: Any) -> Any:
        """Run the model on a prepared batch; return the state `assess` takes."""
        ...

    def assess(self, prepared: Any) -> list[BiasAssessment]:
        """Turn a batch that went through the model into assessments, in order."""
        ...


def thresholds_from_settings(settings: object) -> Thresholds:
    """Read the bias_threshold_* fields of a Settings object."""
    return Thresholds(
        medium=float(getattr(settings, "bias_threshold_medium", DEFAULT_THRESHOLDS.medium)),
        high=float(getattr(settings, "bias_threshold_high", DEFAULT_THRESHOLDS.high)),
        critical=float(getattr(settings, "bias_threshold_critical", DEFAULT_THRESHOLDS.critical)),
    )


def load_scorer(
    kind: str,
    models_dir: Path | str,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    intra_op_threads: int | None = None,
    evidence_spans: int | None = None,
) -> BiasScorer:
    """Load the ONNX-backed scorer of the given kind ("fast" or "quality") from models_dir.

    `evidence_spans` (quality only: the fast model's evidence comes with its one run)
    caps the leave-one-out variants per explained text; 0 turns evidence off.
    """
    directory = Path(models_dir)
    if kind == "fast":
        from processors.bias.fast import FastOnnxScorer

        return FastOnnxScorer(directory, thresholds=thresholds, intra_op_threads=intra_op_threads)
    if kind == "quality":
        from processors.bias.quality import OCCLUSION_MAX_SPANS, QualityOnnxScorer

        spans = OCCLUSION_MAX_SPANS if evidence_spans is None else evidence_spans
        return QualityOnnxScorer(
            directory,
            thresholds=thresholds,
            intra_op_threads=intra_op_threads,
            explain=spans > 0,
            evidence_spans=max(1, spans),
        )
    raise ValueError(f"unknown bias model kind {kind!r}; expected one of {MODEL_KINDS}")
