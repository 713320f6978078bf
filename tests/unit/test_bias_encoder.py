"""The MiniLM encoder from site-packages: pooling, truncation and int8 vs fp32 agreement."""

from __future__ import annotations

import numpy as np
import pytest

from processors.bias.encoder import (
    ENCODER_MAX_TOKENS,
    MiniLmEncoder,
    encoder_model_path,
    mean_pool,
    tokenizer_path,
)


def test_encoder_files_come_from_installed_wheels() -> None:
    assert "site-packages" in str(encoder_model_path())
    assert encoder_model_path().is_file() and tokenizer_path().is_file()


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    pooled = mean_pool(hidden, mask)
    assert pooled == pytest.approx(np.array([[1.0, 0.0]]))


def test_embeddings_are_unit_length_and_long_text_is_truncated() -> None:
    encoder = MiniLmEncoder()
    batch = encoder.encode(["short", "word " * 1000])
    assert batch.feeds["input_ids"].shape[1] == ENCODER_MAX_TOKENS
    assert batch.truncated == [False, True]
    emb = encoder.embed(["A sentence.", "Another, longer sentence about something."])
    assert np.linalg.norm(emb, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_int8_encoder_agrees_with_fp32_weights() -> None:
    from processors.bias.training.fp32_reference import Fp32MiniLm

    texts = [
        "Women are too emotional to be good leaders.",
        "I'm a Deaf grandmother.",
        "The developer argued with the designer because she did not like the design.",
    ]
    fp32 = Fp32MiniLm().embed(texts)
    int8 = MiniLmEncoder().embed(texts)
    cosine = (fp32 * int8).sum(axis=1)
    assert cosine.min() > 0.995
