"""Parity: each model's scikit-learn predictions and its ONNX predictions agree.

Trains small versions of both models with the real training code and exporters
(on a slice of the data) so the conversion path itself is what is tested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.bias.training.datasets import LabeledText
from processors.bias.training.pipeline import SEED, default_data_dir, prepare

TRICKY = [
    "",
    "UPPER CASE TEXT ABOUT WOMEN",
    "naïve café owners in São Paulo \u2013 façade",
    "tabs\tand\nnewlines and   spaces",
    "don't won't can't it's",
    "numbers 123 and under_scores a_b",
    "emoji 🙂 and CJK 我的同事",
    "a b c d e",
]


@pytest.fixture(scope="module")
def splits() -> dict[str, list[LabeledText]]:
    data_dir = default_data_dir()
    if not (data_dir / "bias").is_dir():
        pytest.skip(f"training data not at {data_dir}")
    return prepare(data_dir, SEED).splits


def _slice(examples: list[LabeledText], n: int) -> list[LabeledText]:
    return examples[:: max(1, len(examples) // n)][:n]


def test_fast_onnx_matches_sklearn(splits: dict[str, list[LabeledText]], tmp_path: Path) -> None:
    from processors.bias.fast import FAST_MODEL_FILE, FastOnnxScorer
    from processors.bias.training import onnx_export as ox
    from processors.bias.training.fast import export_fast, train_fast

    model = train_fast(_slice(splits["train"], 3000), _slice(splits["validation"], 800), SEED)
    ox.save_model(export_fast(model, "fast-test"), tmp_path / FAST_MODEL_FILE)
    texts = [e.text for e in _slice(splits["test"], 500)] + TRICKY
    p_onnx, d_onnx = FastOnnxScorer(tmp_path).predict(texts)
    p_skl, d_skl = model.predict(texts)
    assert np.abs(p_onnx - p_skl).max() < 1e-5
    assert np.abs(d_onnx - d_skl).max() < 1e-5


def test_fast_contributions_add_up_to_the_logit(
    splits: dict[str, list[LabeledText]], tmp_path: Path
) -> None:
    from processors.bias.fast import CONTRIBUTIONS_OUTPUT, FAST_MODEL_FILE, FastOnnxScorer
    from processors.bias.training import onnx_export as ox
    from processors.bias.training.fast import export_fast, train_fast

    model = train_fast(_slice(splits["train"], 2000), _slice(splits["validation"], 500), SEED)
    ox.save_model(export_fast(model, "fast-test"), tmp_path / FAST_MODEL_FILE)
    scorer = FastOnnxScorer(tmp_path)
    texts = ["Women are too emotional to be good leaders.", "The nurse was tired."]
    contributions, probabilities = scorer.session.run(
        [CONTRIBUTIONS_OUTPUT, "stereotype_probabilities"], scorer.prepare_inputs(texts)
    )
    logit = contributions.sum(axis=1) + model.heads.stereotype.intercept_[0]
    assert 1 / (1 + np.exp(-logit)) == pytest.approx(probabilities[:, 1], abs=1e-5)


def test_quality_head_onnx_matches_sklearn(
    splits: dict[str, list[LabeledText]], tmp_path: Path
) -> None:
    from processors.bias.encoder import MiniLmEncoder, encoder_model_path, file_sha256
    from processors.bias.quality import QUALITY_HEAD_FILE, QualityOnnxScorer
    from processors.bias.training import onnx_export as ox
    from processors.bias.training.quality import export_quality, train_quality

    train = _slice(splits["train"], 400)
    validation = _slice(splits["validation"], 200)
    test_texts = [e.text for e in _slice(splits["test"], 100)] + TRICKY[1:]
    encoder = MiniLmEncoder()
    head = train_quality(
        train,
        validation,
        encoder.embed([e.text for e in train]),
        encoder.embed([e.text for e in validation]),
        SEED,
    )
    ox.save_model(
        export_quality(head, "quality-test", file_sha256(encoder_model_path())),
        tmp_path / QUALITY_HEAD_FILE,
    )
    p_onnx, d_onnx = QualityOnnxScorer(tmp_path).predict(test_texts)
    p_skl, d_skl = head.predict(encoder.embed(test_texts))
    assert np.abs(p_onnx - p_skl).max() < 1e-4
    assert np.abs(d_onnx - d_skl).max() < 1e-4
