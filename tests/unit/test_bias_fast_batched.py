"""The fast scorer's batched paths agree with their per-text references."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

import numpy as np
import pytest
from numpy.typing import NDArray

from fairstream.settings import REPO_ROOT
from processors.bias.assessments import MAX_EVIDENCE
from processors.bias.fast import (
    CONTRIBUTIONS_OUTPUT,
    TEXT_INPUT,
    TOKEN_PATTERN,
    FastOnnxScorer,
    _tokens,
    ngram_spans,
    ngram_starts,
    token_positions,
    top_contributions,
)
from processors.bias.inspection import non_printable_share
from producers.generator import TrafficGenerator

PATTERN = re.compile(TOKEN_PATTERN)
TEXTS = [
    "All Muslims are terrorists.",
    "Old people are slow and old people are bad with phones.",
    "a old a people b old c people",
    "Women are \ud800 bad drivers\x00 and always emotional.",
    "KELVIN \u212a: women are bad drivers, İstanbul people too.",
    "Please schedule the meeting for Tuesday afternoon.",
    "",
    "x",
]


@pytest.fixture(scope="module")
def scorer() -> FastOnnxScorer:
    return FastOnnxScorer(REPO_ROOT / "models")


def _sample() -> list[str]:
    gen = TrafficGenerator(types=("ContentSubmitted",), seed=9)
    return TEXTS + [str(gen.make("ContentSubmitted").payload["text"]) for _ in range(120)]


def _per_row_top(row: NDArray[np.float32], limit: int) -> tuple[list[int], list[float]]:
    positive = np.flatnonzero(row > 0)
    top = positive[np.argsort(-row[positive], kind="stable")][:limit]
    return top.tolist(), row[top].tolist()


def test_top_contributions_matches_a_stable_sort_per_row() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(7, 50)).astype(np.float32)
    matrix[2] = -1.0  # a row with nothing positive
    matrix[3] = -1.0
    matrix[3, 10:16] = 0.5  # ties resolve in column order
    got = top_contributions(matrix, 4)
    assert got == [_per_row_top(row, 4) for row in matrix]
    assert got[2] == ([], [])
    assert got[3] == ([10, 11, 12, 13], [0.5] * 4)


def test_batched_evidence_equals_the_per_text_evidence(scorer: FastOnnxScorer) -> None:
    # What the model reads: the inspector's text (lone surrogates replaced).
    texts = [scorer._inspector.inspect(t).text for t in _sample() if t.strip()]
    (contributions,) = scorer.session.run(
        [CONTRIBUTIONS_OUTPUT], {TEXT_INPUT: np.array(texts, dtype=object)}
    )
    tops = top_contributions(contributions, MAX_EVIDENCE)
    for text, row, (columns, values) in zip(texts, contributions, tops, strict=True):
        reference = scorer._evidence(text, _tokens(text, scorer._pattern), row)
        assert scorer._spans(text, columns, values) == reference, text


def test_ngram_starts_agrees_with_ngram_spans() -> None:
    tokens = _tokens("old people are old people old old people", PATTERN)
    words = [t[0] for t in tokens]
    for ngram in [("old",), ("old", "people"), ("people", "old"), ("old", "old", "people")]:
        starts = ngram_starts(words, ngram)
        spans = ngram_spans(tokens, ngram, token_positions(tokens))
        assert [(tokens[i][1], tokens[i + len(ngram) - 1][2]) for i in starts] == spans
    assert ngram_starts(words, ("missing",)) == []


def test_score_batch_equals_its_three_steps(scorer: FastOnnxScorer) -> None:
    texts = _sample()
    whole = scorer.score_batch(texts)
    staged = scorer.assess(scorer.run_model(scorer.prepare(texts)))
    assert len(whole) == len(staged) == len(texts)
    for a, b in zip(whole, staged, strict=True):
        assert dataclasses.replace(a, latency_ms=0.0) == dataclasses.replace(b, latency_ms=0.0)


@pytest.mark.parametrize(
    "text", ["plain ascii\ttext\n", "bell\x07 and del\x7f", "\x00\x01\x02abc", "é\x00ü\ufffd"]
)
def test_ascii_binary_share_equals_the_unicode_category_count(text: str) -> None:
    bad = sum(
        1
        for ch in text
        if ch == "\ufffd"
        or (ch not in "\t\n\r" and unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"})
    )
    assert non_printable_share(text) == bad / len(text)
