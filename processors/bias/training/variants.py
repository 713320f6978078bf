"""Compare stereotype heads on the quality model's frozen encoder, on the validation split.

`fairstream model compare-heads` runs this: it pools the int8 encoder's token states
three ways (mean, as the model does; max; the [CLS] token), fits each head variant on
the training split and reports its best validation macro-F1 over the decision-threshold
grid. The test split is never read: this informs the choice of head, it does not
replace the model card's held-out numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from processors.bias.encoder import EMBEDDING_DIM, MiniLmEncoder, mean_pool
from processors.bias.training.datasets import LabeledText
from processors.bias.training.heads import THRESHOLD_GRID

POOLINGS = ("mean", "max", "cls")
ENSEMBLE_SEEDS = 5
Features = dict[str, NDArray[np.float32]]
Fit = Callable[[NDArray[np.float32], NDArray[np.int64], int], Any]


@dataclass(frozen=True, slots=True)
class VariantResult:
    """Hold one head variant's best validation macro-F1 and the threshold that gave it."""

    name: str
    validation_macro_f1: float
    threshold: float


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None))


def pooled_features(encoder: MiniLmEncoder, texts: Sequence[str], batch_size: int = 64) -> Features:
    """Return L2-normalised mean, max and [CLS] poolings of the encoder's token states."""
    out = {k: np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32) for k in POOLINGS}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = encoder.encode([texts[i] for i in rows])
        hidden = encoder.hidden_states(batch.feeds)
        mask = batch.feeds["attention_mask"]
        out["mean"][rows] = mean_pool(hidden, mask)
        out["max"][rows] = _unit(np.where(mask[:, :, None] > 0, hidden, -np.inf).max(axis=1))
        out["cls"][rows] = _unit(hidden[:, 0, :])
    return out


def best_macro_f1(y: NDArray[np.int64], probability: NDArray[np.float64]) -> tuple[float, float]:
    """Return the best macro-F1 over the threshold grid and its threshold."""
    scored = [
        (float(f1_score(y, (probability >= t).astype(np.int64), average="macro")), t)
        for t in THRESHOLD_GRID
    ]
    return max(scored)


def _mlp(hidden: tuple[int, ...], alpha: float) -> Fit:
    def fit(x: NDArray[np.float32], y: NDArray[np.int64], seed: int) -> Any:
        return MLPClassifier(
            hidden_layer_sizes=hidden,
            alpha=alpha,
            early_stopping=True,
            max_iter=300,
            random_state=seed,
        ).fit(x, y)

    return fit


def _svc(c: float) -> Fit:
    def fit(x: NDArray[np.float32], y: NDArray[np.int64], seed: int) -> Any:
        return SVC(C=c, kernel="rbf", class_weight="balanced", random_state=seed).fit(x, y)

    return fit


def _probability(model: Any, x: NDArray[np.float32]) -> NDArray[np.float64]:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-model.decision_function(x))), dtype=np.float64)


def variants() -> list[tuple[str, tuple[str, ...], Fit, int]]:
    """Return (name, poolings, fit, seeds) for every variant compared."""
    rows: list[tuple[str, tuple[str, ...], Fit, int]] = []
    for pooling in (("mean",), ("mean", "max"), ("mean", "cls"), ("mean", "max", "cls")):
        for hidden in ((256,), (512,), (256, 128)):
            for alpha in (1e-4, 1e-3, 1e-2):
                name = f"{'+'.join(pooling)} MLP{list(hidden)} alpha={alpha:g}"
                rows.append((name, pooling, _mlp(hidden, alpha), 1))
    rows.append(
        (
            f"mean MLP[512] alpha=0.001, {ENSEMBLE_SEEDS} seeds averaged",
            ("mean",),
            _mlp((512,), 1e-3),
            ENSEMBLE_SEEDS,
        )
    )
    for c in (1.0, 4.0, 16.0):
        rows.append((f"mean SVC rbf C={c:g}", ("mean",), _svc(c), 1))
    return rows


def compare(
    train: Features,
    y_train: NDArray[np.int64],
    validation: Features,
    y_validation: NDArray[np.int64],
    seed: int,
    log: Callable[[str], None] = lambda _: None,
    only: Sequence[tuple[str, tuple[str, ...], Fit, int]] | None = None,
) -> list[VariantResult]:
    """Fit every variant on train; return its validation macro-F1, best first."""
    results = []
    for name, pooling, fit, seeds in only if only is not None else variants():
        x_train = np.hstack([train[p] for p in pooling])
        x_val = np.hstack([validation[p] for p in pooling])
        probability = np.mean(
            [_probability(fit(x_train, y_train, seed + k), x_val) for k in range(seeds)], axis=0
        )
        f1, threshold = best_macro_f1(y_validation, probability)
        log(f"compare-heads: {name}: validation macro-F1 {f1:.4f} at {threshold}")
        results.append(VariantResult(name, f1, threshold))
    return sorted(results, key=lambda r: -r.validation_macro_f1)


def compare_on_splits(
    splits: dict[str, list[LabeledText]], seed: int, log: Callable[[str], None]
) -> list[VariantResult]:
    """Pool the train and validation texts with the int8 encoder and compare the variants."""
    encoder = MiniLmEncoder()
    features = {}
    labels = {}
    for name in ("train", "validation"):
        log(f"compare-heads: pooling {len(splits[name])} {name} texts")
        features[name] = pooled_features(encoder, [e.text for e in splits[name]])
        labels[name] = np.array([e.stereotype for e in splits[name]], dtype=np.int64)
    return compare(
        features["train"], labels["train"], features["validation"], labels["validation"], seed, log
    )
