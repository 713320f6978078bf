"""The fast scorer: one ONNX graph (TF-IDF + logistic regression heads) taking raw strings.

Evidence is exact for this model: the graph also emits each n-gram's contribution to
the stereotype logit (TF-IDF weight x coefficient); the top positive ones are mapped
back to character spans with the same token pattern the graph's tokenizer uses.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from processors.bias.assessments import MAX_EVIDENCE, assemble, unscorable
from processors.bias.inspection import TextFacts, TextInspector
from processors.bias.scoring import DEFAULT_THRESHOLDS, BiasAssessment, EvidenceSpan, Thresholds
from processors.bias.sessions import open_session

FAST_MODEL_FILE = "bias_fast.onnx"
FAST_MODEL_NAME = "fairstream-bias-fast"
# The model's window: texts longer than this many tokens are cut and flagged `truncated`.
FAST_MAX_TOKENS = 4096
TOKEN_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9_]+"
TEXT_INPUT = "text"
STEREOTYPE_OUTPUT = "stereotype_probabilities"
DIMENSION_OUTPUT = "dimension_probabilities"
FEATURES_OUTPUT = "features"
CONTRIBUTIONS_OUTPUT = "stereotype_contributions"

Token = tuple[str, int, int]


def _window(text: str, pattern: re.Pattern[str], max_tokens: int) -> tuple[str, list[Token], bool]:
    """Return the part of the text inside the window, its tokens, and whether it was cut."""
    tokens = [
        (m.group().lower(), m.start(), m.end())
        for m in islice(pattern.finditer(text), max_tokens + 1)
    ]
    if len(tokens) <= max_tokens:
        return text, tokens, False
    tokens = tokens[:max_tokens]
    return text[: tokens[-1][2]], tokens, True


def token_positions(tokens: Sequence[Token]) -> dict[str, list[int]]:
    """Return where each token occurs, so n-gram look-ups only visit candidate starts."""
    positions: dict[str, list[int]] = {}
    for i, (token, _, _) in enumerate(tokens):
        positions.setdefault(token, []).append(i)
    return positions


def ngram_spans(
    tokens: Sequence[Token],
    ngram: Sequence[str],
    positions: dict[str, list[int]] | None = None,
) -> list[tuple[int, int]]:
    """Return the character spans where the n-gram occurs in the token sequence.

    `positions` (from `token_positions`) makes this proportional to the occurrences of
    the n-gram's first token instead of the text's length.
    """
    n = len(ngram)
    last = len(tokens) - n
    starts = (positions or token_positions(tokens)).get(ngram[0], ())
    spans = []
    for i in starts:
        if i > last:
            break
        if all(tokens[i + k][0] == ngram[k] for k in range(1, n)):
            spans.append((tokens[i][1], tokens[i + n - 1][2]))
    return spans


@dataclass(slots=True)
class FastBatch:
    """Hold one batch between `prepare`, `run_model` and `assess`."""

    started: float
    facts: list[TextFacts]
    rows: list[int]  # indices of the scorable texts, one per window
    windows: list[str]
    outputs: list[Any] = field(default_factory=list)


class FastOnnxScorer:
    """Score texts with the fast ONNX model; load once, then call `score_batch` per micro-batch."""

    def __init__(
        self,
        models_dir: Path,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        intra_op_threads: int | None = None,
        inspector: TextInspector | None = None,
    ) -> None:
        path = Path(models_dir) / FAST_MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"fast bias model not found: {path} (run `fairstream model train`)"
            )
        self.session: ort.InferenceSession = open_session(path, intra_op_threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.name: str = meta["fairstream.model_name"]
        self.version: str = meta["fairstream.model_version"]
        self.max_tokens: int = int(meta["fairstream.max_tokens"])
        self.dimension_classes: list[str] = json.loads(meta["fairstream.dimensions"])
        self._ngrams: list[tuple[str, ...]] = [
            tuple(term.split(" ")) for term in json.loads(meta["fairstream.vocabulary"])
        ]
        self._token_dimensions: list[int] = json.loads(meta["fairstream.token_dimensions"])
        self._pattern = re.compile(meta["fairstream.token_pattern"])
        self._split = re.compile(f"({self._pattern.pattern})")
        self.thresholds = thresholds
        self._inspector = inspector or TextInspector()
        # With TOKEN_PATTERN a token is 2+ characters and tokens are apart, so n tokens
        # need 3n - 1 characters: shorter texts fit the window without being tokenized.
        self._always_fits = 3 * self.max_tokens + 2 if self._pattern.pattern == TOKEN_PATTERN else 0

    def prepare_inputs(self, texts: Sequence[str]) -> dict[str, NDArray[Any]]:
        """Return the session feeds for the texts (windowed), for raw-inference benchmarks."""
        windows = [self._window_text(t)[0] for t in texts]
        return {TEXT_INPUT: np.array(windows, dtype=object)}

    def prepare_batches(self, texts: Sequence[str]) -> list[dict[str, NDArray[Any]]]:
        """Return the feeds a batch of texts is scored with: one run, for raw benchmarks."""
        return [self.prepare_inputs(texts)]

    def run_raw(self, feeds: dict[str, NDArray[Any]]) -> list[Any]:
        """Run only onnxruntime on prepared feeds (what `score_batch` adds on top is Python)."""
        return list(self.session.run([STEREOTYPE_OUTPUT, DIMENSION_OUTPUT], feeds))

    def predict(self, texts: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Return the ONNX stereotype probabilities and dimension probabilities of the texts."""
        stereotype, dimension = self.run_raw(self.prepare_inputs(texts))
        return np.asarray(stereotype)[:, 1], np.asarray(dimension)

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        """Score a batch in one session run; latency_ms is each text's share of the batch time."""
        return self.assess(self.run_model(self.prepare(texts)))

    def prepare(self, texts: Sequence[str]) -> FastBatch:
        """Inspect the texts and cut the scorable ones to the model's window."""
        started = time.perf_counter()
        facts = [self._inspector.inspect(t) for t in texts]
        rows: list[int] = []
        windows: list[str] = []
        for i, fact in enumerate(facts):
            if not fact.scorable:
                continue
            window, truncated = self._window_text(fact.text)
            if truncated:
                fact.flags.append("truncated")
            rows.append(i)
            windows.append(window)
        return FastBatch(started, facts, rows, windows)

    def run_model(self, prepared: FastBatch) -> FastBatch:
        """Run the session on the batch's windows (no Python work: safe on another thread)."""
        if prepared.rows:
            prepared.outputs = self.session.run(
                [STEREOTYPE_OUTPUT, DIMENSION_OUTPUT, CONTRIBUTIONS_OUTPUT],
                {TEXT_INPUT: np.array(prepared.windows, dtype=object)},
            )
        return prepared

    def assess(self, prepared: FastBatch) -> list[BiasAssessment]:
        """Build the assessments: scores, batched evidence, flags and facts."""
        results: dict[int, tuple[float, list[float], list[EvidenceSpan]]] = {}
        if prepared.rows:
            stereotype, dimension, contributions = prepared.outputs
            probabilities: list[float] = stereotype[:, 1].tolist()
            dimensions: list[list[float]] = dimension.tolist()
            tops = top_contributions(contributions, MAX_EVIDENCE)
            for k, i in enumerate(prepared.rows):
                columns, values = tops[k]
                window = prepared.windows[k]
                evidence = self._spans(window, columns, values) if columns else []
                results[i] = (probabilities[k], dimensions[k], evidence)
        facts = prepared.facts
        latency = (time.perf_counter() - prepared.started) * 1000.0 / max(1, len(facts))
        return [self._assessment(fact, results.get(i), latency) for i, fact in enumerate(facts)]

    def _window_text(self, text: str) -> tuple[str, bool]:
        """Return the part of the text inside the model's window and whether it was cut."""
        if len(text) < self._always_fits:
            return text, False
        window, _, truncated = _window(text, self._pattern, self.max_tokens)
        return window, truncated

    def _assessment(
        self,
        fact: TextFacts,
        result: tuple[float, list[float], list[EvidenceSpan]] | None,
        latency: float,
    ) -> BiasAssessment:
        if result is None:
            return unscorable(fact, self.name, self.version, latency)
        probability, dimension, evidence = result
        return assemble(
            fact,
            name=self.name,
            version=self.version,
            stereotype_probability=probability,
            dimension_probabilities=dimension,
            dimension_classes=self.dimension_classes,
            evidence=evidence,
            thresholds=self.thresholds,
            latency_ms=latency,
        )

    def _evidence(
        self, text: str, tokens: Sequence[Token], contributions: NDArray[np.float32]
    ) -> list[EvidenceSpan]:
        """Map the n-grams with the largest positive contributions back to spans.

        The per-text reference (the tests hold `score_batch` to it): `score_batch` does
        the same for a whole batch with `top_contributions` and `_spans`.
        """
        positive = np.flatnonzero(contributions > 0)
        if positive.size == 0:
            return []
        top = positive[np.argsort(-contributions[positive], kind="stable")][:MAX_EVIDENCE]
        positions = token_positions(tokens)
        spans: list[EvidenceSpan] = []
        for j in top.tolist():
            spots = ngram_spans(tokens, self._ngrams[j], positions)
            if not spots:
                continue
            weight = float(contributions[j]) / len(spots)
            d = self._token_dimensions[j]
            dimension = self.dimension_classes[d] if d >= 0 else None
            for start, end in spots:
                spans.append(EvidenceSpan(text[start:end], start, end, round(weight, 6), dimension))
        return spans

    def _spans(
        self, text: str, columns: Sequence[int], values: Sequence[float]
    ) -> list[EvidenceSpan]:
        """Return the spans of the given n-gram columns, each sharing its contribution."""
        words, starts, ends = _token_table(text, self._pattern, self._split)
        spans: list[EvidenceSpan] = []
        for j, contribution in zip(columns, values, strict=True):
            ngram = self._ngrams[j]
            spots = ngram_starts(words, ngram)
            if not spots:
                continue
            weight = round(contribution / len(spots), 6)
            d = self._token_dimensions[j]
            dimension = self.dimension_classes[d] if d >= 0 else None
            last = len(ngram) - 1
            for i in spots:
                start, end = starts[i], ends[i + last]
                spans.append(EvidenceSpan(text[start:end], start, end, weight, dimension))
        return spans


def ngram_starts(words: list[str], ngram: Sequence[str]) -> list[int]:
    """Return the token indices at which the n-gram occurs (overlaps included)."""
    first, rest = ngram[0], list(ngram[1:])
    n = len(ngram)
    last = len(words) - n
    found: list[int] = []
    i = -1
    for _ in range(words.count(first)):
        i = words.index(first, i + 1)
        if i > last:
            break
        if not rest or words[i + 1 : i + n] == rest:
            found.append(i)
    return found


def _token_table(
    text: str, pattern: re.Pattern[str], split: re.Pattern[str]
) -> tuple[list[str], list[int], list[int]]:
    """Return the text's lower-cased tokens with their start and end offsets.

    For ASCII text (lower-casing keeps every offset) the work is done by `re.split` on
    the capturing pattern and a running sum of the pieces' lengths, with no Python loop.
    """
    if split.groups == 1 and text.isascii():
        pieces = split.split(text.lower())
        bounds = list(accumulate(map(len, pieces)))
        return pieces[1::2], bounds[0:-1:2], bounds[1::2]
    tokens = _tokens(text, pattern)
    return [t[0] for t in tokens], [t[1] for t in tokens], [t[2] for t in tokens]


def _tokens(text: str, pattern: re.Pattern[str]) -> list[Token]:
    """Return every token of the text, lower-cased, with its character span."""
    return [(m.group().lower(), m.start(), m.end()) for m in pattern.finditer(text)]


def top_contributions(
    contributions: NDArray[np.float32], limit: int
) -> list[tuple[list[int], list[float]]]:
    """Return per row the columns and values of its `limit` largest positive entries.

    Largest first, ties in column order: what a stable argsort per row gives, done for
    the whole batch at once (one scan of the matrix, one sort of its positive entries).
    """
    n_rows, n_columns = contributions.shape
    flat = np.ascontiguousarray(contributions).reshape(-1)
    positive = np.flatnonzero(flat > 0)
    rows, columns = np.divmod(positive, n_columns)
    values = flat[positive]
    order = np.lexsort((columns, -values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    first = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(rows.size) - first[rows]
    keep = rank < limit
    rows, columns, values = rows[keep], columns[keep], values[keep]
    bounds = np.searchsorted(rows, np.arange(n_rows + 1)).tolist()
    column_list: list[int] = columns.tolist()
    value_list: list[float] = values.tolist()
    return [
        (column_list[bounds[r] : bounds[r + 1]], value_list[bounds[r] : bounds[r + 1]])
        for r in range(n_rows)
    ]
