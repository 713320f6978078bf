"""Compute the numbers the model card reports: per-class P/R/F1 and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from processors.bias.training.datasets import LabeledText

RELIABILITY_BINS = 10
STEREOTYPE_CLASSES = ("no_stereotype", "stereotype")


def _round(value: float) -> float:
    return round(float(value), 4)


def per_class_table(
    y_true: Sequence[Any] | NDArray[Any],
    y_pred: Sequence[Any] | NDArray[Any],
    labels: Sequence[Any],
    names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Return precision, recall, F1 and support for each class."""
    p, r, f, s = precision_recall_fscore_support(
        list(y_true), list(y_pred), labels=list(labels), zero_division=0
    )
    return {
        name: {
            "precision": _round(p[i]),
            "recall": _round(r[i]),
            "f1": _round(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(names)
    }


def reliability(y_true: NDArray[np.int64], prob: NDArray[np.float64]) -> dict[str, Any]:
    """Return the Brier score, expected calibration error and a 10-bin reliability table."""
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    bins = np.clip(np.digitize(prob, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    table = []
    ece = 0.0
    for b in range(RELIABILITY_BINS):
        mask = bins == b
        count = int(mask.sum())
        if count == 0:
            continue
        mean_pred = float(prob[mask].mean())
        observed = float(y_true[mask].mean())
        ece += count / len(prob) * abs(mean_pred - observed)
        table.append(
            {
                "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                "count": count,
                "mean_predicted": _round(mean_pred),
                "observed_rate": _round(observed),
            }
        )
    brier = float(np.mean((prob - y_true) ** 2))
    return {"brier": _round(brier), "ece": _round(ece), "table": table}


def stereotype_report(
    examples: Sequence[LabeledText], prob: NDArray[np.float64], threshold: float = 0.5
) -> dict[str, Any]:
    """Return stereotype yes/no metrics overall and per source."""
    y_true = np.array([e.stereotype for e in examples], dtype=np.int64)
    y_pred = (prob >= threshold).astype(np.int64)
    by_source: dict[str, Any] = {}
    for source in sorted({e.source for e in examples}):
        rows = np.array([e.source == source for e in examples])
        entry: dict[str, Any] = {
            "n": int(rows.sum()),
            "accuracy": _round(accuracy_score(y_true[rows], y_pred[rows])),
        }
        if len(set(y_true[rows].tolist())) > 1:
            entry["macro_f1"] = _round(f1_score(y_true[rows], y_pred[rows], average="macro"))
        by_source[source] = entry
    return {
        "n": len(examples),
        "threshold": threshold,
        "macro_f1": _round(f1_score(y_true, y_pred, average="macro")),
        "accuracy": _round(accuracy_score(y_true, y_pred)),
        "per_class": per_class_table(y_true, y_pred, [0, 1], STEREOTYPE_CLASSES),
        "by_source": by_source,
        "calibration": reliability(y_true, prob),
    }


def dimension_report(
    examples: Sequence[LabeledText], prob: NDArray[np.float64], classes: Sequence[str]
) -> dict[str, Any]:
    """Return bias-type metrics on all labelled rows, on stereotypes only, and without templates."""
    rows = [i for i, e in enumerate(examples) if e.dimension is not None]
    y_true = [examples[i].dimension for i in rows]
    y_pred = [classes[int(j)] for j in prob[rows].argmax(axis=1)]

    def subset(keep: Sequence[bool]) -> dict[str, Any]:
        t = [y for y, k in zip(y_true, keep, strict=True) if k]
        p = [y for y, k in zip(y_pred, keep, strict=True) if k]
        present = [c for c in classes if c in set(t)]
        return {
            "n": len(t),
            "macro_f1": _round(f1_score(t, p, labels=present, average="macro")),
            "accuracy": _round(accuracy_score(t, p)),
            "per_class": per_class_table(t, p, present, present),
        }

    return {
        "all_labelled": subset([True] * len(rows)),
        "stereotypes_only": subset([examples[i].stereotype == 1 for i in rows]),
        "without_holistic": subset([examples[i].source != "holistic" for i in rows]),
    }
