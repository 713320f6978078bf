"""The stereotype-head comparison: validation-only scoring and ranking."""

from __future__ import annotations

import numpy as np

from processors.bias.training.variants import best_macro_f1, compare, variants


def _features(rng: np.random.Generator, n: int, signal: str) -> tuple[dict, np.ndarray]:
    y = rng.integers(0, 2, n)
    noise = {k: rng.normal(size=(n, 8)).astype(np.float32) for k in ("mean", "max", "cls")}
    noise[signal][:, 0] += 3.0 * y  # only this pooling carries the label
    return noise, y


def test_best_macro_f1_picks_the_threshold_that_separates_the_classes() -> None:
    y = np.array([0, 0, 1, 1])
    f1, threshold = best_macro_f1(y, np.array([0.1, 0.2, 0.45, 0.9]))
    assert f1 == 1.0
    assert 0.2 < threshold <= 0.45


def test_a_variant_that_sees_the_informative_pooling_ranks_first() -> None:
    rng = np.random.default_rng(0)
    train, y_train = _features(rng, 400, "max")
    validation, y_val = _features(rng, 200, "max")
    chosen = [
        v
        for v in variants()
        if v[0].startswith(("mean MLP[256] alpha=0.01", "mean+max MLP[256] alpha=0.01"))
    ]
    assert len(chosen) == 2
    results = compare(train, y_train, validation, y_val, seed=13, only=chosen)
    assert results[0].name.startswith("mean+max")
    assert results[0].validation_macro_f1 > 0.9
    assert results[1].validation_macro_f1 < 0.7
