"""Train, export and evaluate the fast model; return its manifest entry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from processors.bias.fast import FAST_MODEL_FILE, FastOnnxScorer
from processors.bias.training import onnx_export as ox
from processors.bias.training.datasets import LabeledText
from processors.bias.training.fast import build_vectorizer, export_fast, train_fast
from processors.bias.training.metrics import dimension_report, stereotype_report

FAST_FORMAT = "1"


def model_version(kind: str, fmt: str, splits: dict[str, list[LabeledText]], config: Any) -> str:
    """Return a version naming the model kind, its format and a digest of data and config."""
    from processors.bias.training.pipeline import dataset_digest

    return f"{kind}-{fmt}.{dataset_digest(splits, config)[:10]}"


def run_fast(
    splits: dict[str, list[LabeledText]], out_dir: Path, seed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Train the fast model, write its ONNX file and report its metrics on the test split."""
    config = {"vectorizer": repr(build_vectorizer().get_params()), "seed": seed}
    version = model_version("fast", FAST_FORMAT, splits, config)
    model = train_fast(splits["train"], splits["validation"], seed)
    log(
        f"fast: vocabulary {len(model.vectorizer.vocabulary_)}, "
        f"stereotype C={model.heads.stereotype_regularization}, "
        f"dimension C={model.heads.dimension_c}"
    )
    onnx_model = export_fast(model, version)
    path = out_dir / FAST_MODEL_FILE
    ox.save_model(onnx_model, path)
    scorer = FastOnnxScorer(out_dir)
    test = splits["test"]
    texts = [e.text for e in test]
    p_onnx, d_onnx = scorer.predict(texts)
    p_skl, d_skl = model.predict(texts)
    parity = float(max(np.abs(p_onnx - p_skl).max(), np.abs(d_onnx - d_skl).max()))
    log(f"fast: ONNX vs scikit-learn max |dp| on test = {parity:.2e}")
    classes = model.heads.dimension_classes
    metrics = {
        "stereotype": stereotype_report(
            test, p_onnx.astype(np.float64), threshold=model.heads.decision_threshold
        ),
        "stereotype_at_0.5": stereotype_report(test, p_onnx.astype(np.float64))["macro_f1"],
        "dimension": dimension_report(test, d_onnx.astype(np.float64), classes),
        "validation": {
            "stereotype_macro_f1": round(model.heads.validation_stereotype_macro_f1, 4),
            "dimension_macro_f1": round(model.heads.validation_dimension_macro_f1, 4),
        },
        "onnx_vs_sklearn_max_abs_diff": float(f"{parity:.3g}"),
    }
    return {
        "version": version,
        "files": {FAST_MODEL_FILE: {}},
        "hyperparameters": {
            "vectorizer": "TF-IDF, token pattern [a-zA-Z0-9_][a-zA-Z0-9_]+, "
            "lowercase, 1-2 grams, min_df 2",
            "vocabulary_size": len(model.vectorizer.vocabulary_),
            "stereotype_C": model.heads.stereotype_regularization,
            "dimension_C": model.heads.dimension_c,
            "platt_scale": round(model.heads.platt_scale, 6),
            "platt_shift": round(model.heads.platt_shift, 6),
            "dimension_temperature": round(model.heads.temperature, 6),
            "decision_threshold": model.heads.decision_threshold,
        },
        "metrics": metrics,
    }
