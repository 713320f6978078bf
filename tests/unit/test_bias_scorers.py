"""One contract test class run against both ONNX scorers (fast and quality)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from fairstream.settings import REPO_ROOT
from processors.bias.scoring import (
    DIMENSIONS,
    LEVELS,
    BiasAssessment,
    BiasScorer,
    Thresholds,
    load_scorer,
)

MODELS_DIR = REPO_ROOT / "models"
STEREOTYPE = "All Muslims are terrorists."
NEUTRAL = "Please schedule the meeting for Tuesday afternoon."

_cache: dict[str, BiasScorer] = {}


@pytest.fixture(params=["fast", "quality"], scope="module")
def scorer(request: pytest.FixtureRequest) -> Iterator[BiasScorer]:
    """Load each committed model once per module."""
    kind = str(request.param)
    if kind not in _cache:
        _cache[kind] = load_scorer(kind, MODELS_DIR)
    yield _cache[kind]


def _one(scorer: BiasScorer, text: str) -> BiasAssessment:
    (assessment,) = scorer.score_batch([text])
    return assessment


def _check_shape(a: BiasAssessment) -> None:
    assert 0.0 <= a.overall_score <= 1.0
    assert 0.0 <= a.confidence <= 1.0
    assert a.level in LEVELS
    assert [
        d.dimension for d in sorted(a.dimensions, key=lambda d: DIMENSIONS.index(d.dimension))
    ] == list(DIMENSIONS)
    for d in a.dimensions:
        assert 0.0 <= d.score <= a.overall_score + 1e-9
        assert 0.0 <= d.confidence <= 1.0
    assert a.latency_ms >= 0.0


class TestScorerContract:
    """Hold every scorer to the same behaviour."""

    def test_is_a_bias_scorer(self, scorer: BiasScorer) -> None:
        assert isinstance(scorer, BiasScorer)
        assert scorer.name.startswith("fairstream-bias-")
        assert scorer.version
        assert scorer.max_tokens > 0

    def test_batch_keeps_order_and_length(self, scorer: BiasScorer) -> None:
        texts = [STEREOTYPE, NEUTRAL, "", STEREOTYPE]
        out = scorer.score_batch(texts)
        assert len(out) == 4
        assert out[0].overall_score == pytest.approx(out[3].overall_score, abs=1e-5)
        assert out[0].overall_score > out[1].overall_score
        assert scorer.score_batch([]) == []

    def test_batch_matches_single(self, scorer: BiasScorer) -> None:
        batch = scorer.score_batch([NEUTRAL, STEREOTYPE, "The nurse said she was tired."])
        single = _one(scorer, STEREOTYPE)
        assert batch[1].overall_score == pytest.approx(single.overall_score, abs=1e-4)

    def test_facts_about_the_text(self, scorer: BiasScorer) -> None:
        a = _one(scorer, STEREOTYPE)
        _check_shape(a)
        assert a.content_hash == hashlib.sha256(STEREOTYPE.encode()).hexdigest()
        assert a.text_length == len(STEREOTYPE)
        assert a.word_count == 4
        assert a.language == "en"
        assert a.flags == []
        assert a.model_name == scorer.name and a.model_version == scorer.version

    def test_clear_stereotype_scores_above_neutral_text(self, scorer: BiasScorer) -> None:
        stereo, neutral = scorer.score_batch([STEREOTYPE, NEUTRAL])
        assert stereo.level in ("medium", "high", "critical")
        assert neutral.level == "low"
        top = max(stereo.dimensions, key=lambda d: d.score)
        assert top.dimension == "religion"

    def test_evidence_points_into_the_text(self, scorer: BiasScorer) -> None:
        text = "To be honest, " + STEREOTYPE + " Everyone knows it."
        a = _one(scorer, text)
        assert a.evidence, "a medium-or-above text should come with evidence"
        for span in a.evidence:
            assert text[span.start : span.end] == span.text
            assert span.weight > 0
            assert span.dimension is None or span.dimension in DIMENSIONS
        assert any("terrorist" in s.text.lower() or "muslim" in s.text.lower() for s in a.evidence)

    def test_thresholds_are_applied(self, scorer: BiasScorer) -> None:
        kind = "fast" if "fast" in scorer.name else "quality"
        strict = load_scorer(kind, MODELS_DIR, thresholds=Thresholds(0.0, 0.0, 0.0))
        assert _one(strict, NEUTRAL).level == "critical"

    def test_assessment_is_payload_material(self, scorer: BiasScorer) -> None:
        raw: dict[str, Any] = dataclasses.asdict(_one(scorer, STEREOTYPE))
        assert isinstance(raw["dimensions"][0]["evidence"], list)
        assert set(raw["evidence"][0]) == {"text", "start", "end", "weight", "dimension"}

    # Bad input: never a crash.

    def test_empty_text(self, scorer: BiasScorer) -> None:
        a = _one(scorer, "")
        _check_shape(a)
        assert a.flags == ["empty"]
        assert (a.overall_score, a.confidence, a.level) == (0.0, 0.0, "low")
        assert a.language == "und" and a.word_count == 0 and a.evidence == []

    def test_whitespace_only(self, scorer: BiasScorer) -> None:
        a = _one(scorer, " \n\t  ")
        assert a.flags == ["whitespace_only"]
        assert (a.overall_score, a.level) == (0.0, "low")

    def test_binary_garbage_is_flagged_and_not_scored(self, scorer: BiasScorer) -> None:
        garbage = (bytes(range(256)) * 8).decode("utf-8", errors="replace")
        a = _one(scorer, garbage)
        assert a.flags == ["binary"]
        assert (a.overall_score, a.confidence, a.level) == (0.0, 0.0, "low")

    def test_very_long_text_is_truncated(self, scorer: BiasScorer) -> None:
        text = " ".join([NEUTRAL] * 3000)
        a = _one(scorer, text)
        _check_shape(a)
        assert "truncated" in a.flags
        assert a.text_length == len(text)
        assert a.word_count == 7 * 3000
        short = _one(scorer, NEUTRAL)
        assert a.confidence <= short.confidence

    def test_non_english_is_scored_with_lower_confidence(self, scorer: BiasScorer) -> None:
        text = "Ma collègue est musulmane et elle est très gentille avec tout le monde."
        a = _one(scorer, text)
        _check_shape(a)
        assert "non_english" in a.flags
        assert a.language == "fr"
        assert a.confidence <= 0.5

    def test_mixed_batch_with_bad_input(self, scorer: BiasScorer) -> None:
        out = scorer.score_batch(["", STEREOTYPE, "\x00\x01\x02\x03", "   ", NEUTRAL])
        assert [a.flags for a in out] == [["empty"], [], ["binary"], ["whitespace_only"], []]
        assert out[1].overall_score > 0.3

    def test_raw_onnxruntime_matches_the_scorer(self, scorer: BiasScorer) -> None:
        texts = [STEREOTYPE, NEUTRAL]
        raw_scorer: Any = scorer
        stereotype, dimensions = raw_scorer.run_raw(raw_scorer.prepare_inputs(texts))
        scored = scorer.score_batch(texts)
        assert np.asarray(stereotype)[:, 1] == pytest.approx(
            [a.overall_score for a in scored], abs=1e-5
        )
        assert np.asarray(dimensions).shape == (2, len(DIMENSIONS))


def test_quality_evidence_can_be_turned_off() -> None:
    from processors.bias.quality import QualityOnnxScorer

    scorer = QualityOnnxScorer(MODELS_DIR, explain=False)
    (a,) = scorer.score_batch([STEREOTYPE])
    assert a.evidence == [] and a.level != "low"


@pytest.mark.parametrize("kind", ["fast", "quality"])
def test_lone_surrogates_and_control_characters_do_not_crash(kind: str) -> None:
    scorer = _cache.get(kind) or load_scorer(kind, MODELS_DIR)
    text = "Women are \ud800 bad drivers\x00 and always emotional."
    (a,) = scorer.score_batch([text])
    assert 0.0 <= a.overall_score <= 1.0
    assert a.text_length == len(text)
    assert a.content_hash == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    for span in a.evidence:
        assert text[span.start : span.end] == span.text


def test_the_worker_session_takes_its_thread_count_from_the_settings() -> None:
    from fairstream.bootstrap import build_scorer
    from fairstream.settings import Settings

    one: Any = build_scorer(Settings(bias_intra_op_threads=1), "fast")
    default: Any = build_scorer(Settings(bias_intra_op_threads=None), "fast")
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert default.session.get_session_options().intra_op_num_threads >= 1
    with pytest.raises(ValueError, match="bias_intra_op_threads"):
        Settings(bias_intra_op_threads=0)


def test_fewer_evidence_spans_give_runs_of_words_and_zero_turns_evidence_off() -> None:
    from fairstream.bootstrap import build_scorer
    from fairstream.settings import Settings

    text = "Honestly all of those lazy immigrants from that country are criminals and thieves."
    words = len(text.split())
    fine: Any = build_scorer(Settings(bias_evidence_spans=16), "quality")
    coarse: Any = build_scorer(Settings(bias_evidence_spans=3), "quality")
    off: Any = build_scorer(Settings(bias_evidence_spans=0), "quality")
    (a_fine,) = fine.score_batch([text])
    (a_coarse,) = coarse.score_batch([text])
    (a_off,) = off.score_batch([text])
    assert a_fine.level != "low", "the test needs a text the quality model explains"
    assert a_fine.overall_score == a_coarse.overall_score == a_off.overall_score
    assert a_fine.evidence and all(" " not in s.text for s in a_fine.evidence)  # words
    assert a_coarse.evidence and len(a_coarse.evidence) <= 3
    assert any(len(s.text.split()) >= words // 3 for s in a_coarse.evidence)  # runs
    for span in a_coarse.evidence:
        assert text[span.start : span.end] == span.text
    assert a_off.evidence == []
    with pytest.raises(ValueError, match="bias_evidence_spans"):
        Settings(bias_evidence_spans=-1)
