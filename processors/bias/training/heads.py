"""Fit the two linear heads both models share: stereotype yes/no and bias dimension.

Hyperparameters are picked on the validation split; calibration is fitted on the
validation split too and folded into the heads' weights, so the exported ONNX
classifiers already emit calibrated probabilities. The test split is never seen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.neural_network import MLPClassifier

STEREOTYPE_C_GRID = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DIMENSION_C_GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
TEMPERATURE_GRID = tuple(float(t) for t in np.geomspace(0.25, 4.0, 49))
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(2, 15))
MAX_ITER = 5000
MLP_ALPHA_GRID = (1e-4, 1e-3, 1e-2)
MLP_HIDDEN = (256,)
MLP_MAX_ITER = 300
StereotypeModel: TypeAlias = "LogisticRegression | MLPClassifier"


@dataclass(slots=True)
class TrainedHeads:
    """Hold the calibrated heads and how they were chosen."""

    stereotype: StereotypeModel
    dimension: LogisticRegression
    stereotype_regularization: float  # C (linear) or alpha (MLP)
    dimension_c: float
    platt_scale: float
    platt_shift: float
    temperature: float
    decision_threshold: float
    validation_stereotype_macro_f1: float
    validation_dimension_macro_f1: float

    @property
    def dimension_classes(self) -> list[str]:
        """Return the dimension head's class names in output order."""
        return [str(c) for c in self.dimension.classes_]


def _logistic(c: float, seed: int, balanced: bool = True) -> LogisticRegression:
    return LogisticRegression(
        C=c,
        class_weight="balanced" if balanced else None,
        max_iter=MAX_ITER,
        random_state=seed,
        solver="lbfgs",
    )


def _logit(model: StereotypeModel, x: Any) -> NDArray[np.float64]:
    """Return the pre-sigmoid output of a binary logistic regression or MLP."""
    if isinstance(model, LogisticRegression):
        return np.asarray(model.decision_function(x), dtype=np.float64)
    p = np.clip(model.predict_proba(x)[:, 1], 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


def _fold_platt(model: StereotypeModel, scale: float, shift: float) -> None:
    """Fold sigmoid(scale * logit + shift) into the model's output layer."""
    if isinstance(model, LogisticRegression):
        model.coef_ = (model.coef_ * scale).astype(np.float64)
        model.intercept_ = model.intercept_ * scale + shift
    else:
        model.coefs_[-1] = model.coefs_[-1] * scale
        model.intercepts_[-1] = model.intercepts_[-1] * scale + shift


def _candidates(kind: str, seed: int) -> list[tuple[float, StereotypeModel]]:
    if kind == "linear":
        return [(c, _logistic(c, seed)) for c in STEREOTYPE_C_GRID]
    return [
        (
            alpha,
            MLPClassifier(
                hidden_layer_sizes=MLP_HIDDEN,
                alpha=alpha,
                early_stopping=True,
                max_iter=MLP_MAX_ITER,
                random_state=seed,
            ),
        )
        for alpha in MLP_ALPHA_GRID
    ]


def fit_stereotype_head(
    x_train: Any,
    y_train: NDArray[np.int64],
    x_val: Any,
    y_val: NDArray[np.int64],
    seed: int,
    kind: str = "linear",
) -> tuple[StereotypeModel, float, float, float, float, float]:
    """Pick the regularisation by validation macro-F1, Platt-scale on validation, fold it in.

    `kind` is "linear" (logistic regression, C grid) or "mlp" (one hidden layer, alpha
    grid). Also return the probability threshold that maximises validation macro-F1
    (calibrated probabilities follow the data's base rate, so 0.5 under-calls the
    minority class); the card reports test metrics at that threshold.
    """
    best: tuple[float, float, StereotypeModel] | None = None
    for strength, candidate in _candidates(kind, seed):
        model = candidate.fit(x_train, y_train)
        prob = model.predict_proba(x_val)[:, 1]
        score = max(
            float(f1_score(y_val, (prob >= t).astype(np.int64), average="macro"))
            for t in THRESHOLD_GRID
        )
        if best is None or score > best[0] + 1e-9:
            best = (score, strength, model)
    assert best is not None
    score, c, model = best
    decision = _logit(model, x_val).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, max_iter=MAX_ITER).fit(decision, y_val)
    scale = float(platt.coef_[0, 0])
    shift = float(platt.intercept_[0])
    _fold_platt(model, scale, shift)
    calibrated = model.predict_proba(x_val)[:, 1]
    f1s = [
        float(f1_score(y_val, (calibrated >= t).astype(np.int64), average="macro"))
        for t in THRESHOLD_GRID
    ]
    threshold = THRESHOLD_GRID[int(np.argmax(f1s))]
    return model, c, scale, shift, threshold, max(f1s)


def fit_dimension_head(
    x_train: Any, y_train: Sequence[str], x_val: Any, y_val: Sequence[str], seed: int
) -> tuple[LogisticRegression, float, float, float]:
    """Pick C by validation macro-F1, then temperature-scale on validation and fold it in."""
    best: tuple[float, float, LogisticRegression] | None = None
    for c in DIMENSION_C_GRID:
        model = _logistic(c, seed).fit(x_train, list(y_train))
        score = float(f1_score(list(y_val), model.predict(x_val), average="macro"))
        if best is None or score > best[0] + 1e-9:
            best = (score, c, model)
    assert best is not None
    score, c, model = best
    logits = model.decision_function(x_val)
    labels = list(model.classes_)
    targets = [labels.index(y) for y in y_val]
    losses = []
    for temperature in TEMPERATURE_GRID:
        scaled = logits / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        probs = np.exp(scaled)
        probs /= probs.sum(axis=1, keepdims=True)
        losses.append(log_loss(targets, probs, labels=list(range(len(labels)))))
    temperature = TEMPERATURE_GRID[int(np.argmin(losses))]
    model.coef_ = model.coef_ / temperature
    model.intercept_ = model.intercept_ / temperature
    return model, c, temperature, score


def fit_heads(
    x_train: Any,
    stereotype_train: NDArray[np.int64],
    dimension_rows_train: NDArray[np.intp],
    dimension_train: Sequence[str],
    x_val: Any,
    stereotype_val: NDArray[np.int64],
    dimension_rows_val: NDArray[np.intp],
    dimension_val: Sequence[str],
    seed: int,
    stereotype_kind: str = "linear",
) -> TrainedHeads:
    """Fit both heads on features; the dimension head sees only rows with a dimension label."""
    stereotype, s_c, scale, shift, threshold, s_score = fit_stereotype_head(
        x_train, stereotype_train, x_val, stereotype_val, seed, kind=stereotype_kind
    )
    dimension, d_c, temperature, d_score = fit_dimension_head(
        x_train[dimension_rows_train],
        dimension_train,
        x_val[dimension_rows_val],
        dimension_val,
        seed,
    )
    return TrainedHeads(
        stereotype=stereotype,
        dimension=dimension,
        stereotype_regularization=s_c,
        dimension_c=d_c,
        platt_scale=scale,
        platt_shift=shift,
        temperature=temperature,
        decision_threshold=threshold,
        validation_stereotype_macro_f1=s_score,
        validation_dimension_macro_f1=d_score,
    )
