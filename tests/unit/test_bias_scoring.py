"""The scorer port: levels, thresholds, the assessment's shape and load_scorer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fairstream.settings import Settings
from processors.bias.scoring import (
    DIMENSIONS,
    BiasAssessment,
    Thresholds,
    level_for,
    load_scorer,
    thresholds_from_settings,
)

# BiasScored payload fields (docs/CONTRACTS.md) minus content_id, campaign_id, content_type.
PAYLOAD_FIELDS = {
    "model_name",
    "model_version",
    "overall_score",
    "confidence",
    "level",
    "dimensions",
    "evidence",
    "content_hash",
    "text_length",
    "word_count",
    "language",
    "flags",
    "latency_ms",
}


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, "low"),
        (0.2999, "low"),
        (0.3, "medium"),
        (0.5999, "medium"),
        (0.6, "high"),
        (0.7999, "high"),
        (0.8, "critical"),
        (1.0, "critical"),
    ],
)
def test_level_for_default_thresholds(score: float, level: str) -> None:
    assert level_for(score) == level


def test_level_for_uses_given_thresholds() -> None:
    thresholds = Thresholds(medium=0.1, high=0.2, critical=0.9)
    assert level_for(0.15, thresholds) == "medium"
    assert level_for(0.5, thresholds) == "high"
    assert level_for(0.95, thresholds) == "critical"


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Thresholds(medium=0.7, high=0.6, critical=0.8)


def test_thresholds_from_settings_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_MEDIUM", "0.25")
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_HIGH", "0.5")
    monkeypatch.setenv("FAIRSTREAM_BIAS_THRESHOLD_CRITICAL", "0.75")
    assert thresholds_from_settings(Settings()) == Thresholds(0.25, 0.5, 0.75)


def test_assessment_mirrors_bias_scored_payload() -> None:
    assert {f.name for f in dataclasses.fields(BiasAssessment)} == PAYLOAD_FIELDS


def test_dimensions_match_the_avro_enum_order() -> None:
    assert DIMENSIONS[0] == "gender"
    assert DIMENSIONS[-1] == "profession"
    assert len(set(DIMENSIONS)) == 10


def test_load_scorer_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown bias model kind"):
        load_scorer("huge", tmp_path)


@pytest.mark.parametrize("kind", ["fast", "quality"])
def test_load_scorer_says_what_is_missing(kind: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fairstream model train"):
        load_scorer(kind, tmp_path)


def test_ngram_spans_with_a_position_index_finds_every_occurrence() -> None:
    from processors.bias.fast import ngram_spans, token_positions

    tokens = [
        ("old", 0, 3),
        ("people", 4, 10),
        ("are", 11, 14),
        ("old", 15, 18),
        ("people", 19, 25),
    ]
    assert ngram_spans(tokens, ("old", "people")) == [(0, 10), (15, 25)]
    assert ngram_spans(tokens, ("people",), token_positions(tokens)) == [(4, 10), (19, 25)]
    assert ngram_spans(tokens, ("people", "old")) == []
    assert ngram_spans(tokens, ("old", "people", "are", "old", "people", "x")) == []
