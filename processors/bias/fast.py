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
from itertools import islice
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
        self.thresholds = thresholds
        self._inspector = inspector or TextInspector()

    def prepare_inputs(self, texts: Sequence[str]) -> dict[str, NDArray[Any]]:
        """Return the session feeds for the texts (windowed), for raw-inference benchmarks."""
        windows = [_window(t, self._pattern, self.max_tokens)[0] for t in texts]
        return {TEXT_INPUT: np.array(windows, dtype=object)}

    def run_raw(self, feeds: dict[str, NDArray[Any]]) -> list[Any]:
        """Run only onnxruntime on prepared feeds (what `score_batch` adds on top is Python)."""
        return list(self.session.run([STEREOTYPE_OUTPUT, DIMENSION_OUTPUT], feeds))

    def predict(self, texts: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Return the ONNX stereotype probabilities and dimension probabilities of the texts."""
        stereotype, dimension = self.run_raw(self.prepare_inputs(texts))
        return np.asarray(stereotype)[:, 1], np.asarray(dimension)

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        """Score a batch in one session run; latency_ms is each text's share of the batch time."""
        started = time.perf_counter()
        facts = [self._inspector.inspect(t) for t in texts]
        rows: list[int] = []
        windows: list[str] = []
        tokens: list[list[Token]] = []
        for i, fact in enumerate(facts):
            if not fact.scorable:
                continue
            window, toks, truncated = _window(fact.text, self._pattern, self.max_tokens)
            if truncated:
                fact.flags.append("truncated")
            rows.append(i)
            windows.append(window)
            tokens.append(toks)
        results: dict[int, tuple[float, NDArray[np.float32], list[EvidenceSpan]]] = {}
        if rows:
            stereotype, dimension, contributions = self.session.run(
                [STEREOTYPE_OUTPUT, DIMENSION_OUTPUT, CONTRIBUTIONS_OUTPUT],
                {TEXT_INPUT: np.array(windows, dtype=object)},
            )
            for k, i in enumerate(rows):
                evidence = self._evidence(windows[k], tokens[k], contributions[k])
                results[i] = (float(stereotype[k, 1]), dimension[k], evidence)
        latency = (time.perf_counter() - started) * 1000.0 / max(1, len(texts))
        return [self._assessment(fact, results.get(i), latency) for i, fact in enumerate(facts)]

    def _assessment(
        self,
        fact: TextFacts,
        result: tuple[float, NDArray[np.float32], list[EvidenceSpan]] | None,
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
            dimension_probabilities=[float(v) for v in dimension],
            dimension_classes=self.dimension_classes,
            evidence=evidence,
            thresholds=self.thresholds,
            latency_ms=latency,
        )

    def _evidence(
        self, text: str, tokens: Sequence[Token], contributions: NDArray[np.float32]
    ) -> list[EvidenceSpan]:
        """Map the n-grams with the largest positive contributions back to spans."""
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
