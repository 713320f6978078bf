"""Rebuild the model files in models/ from the data sets, and check committed ones.

`train` writes each model's ONNX file, `MANIFEST.json` (sha256 and size of every
file, the data set counts and all metrics) and the model card `README.md`, which is
rendered from the manifest. `verify` retrains into a temporary directory and
compares: identical bytes pass; otherwise the predictions on the test split must
agree within PREDICTION_TOLERANCE (scikit-learn's solvers are deterministic for a
fixed seed, but BLAS builds may differ in the last bits across machines).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from processors.bias.training.datasets import (
    LabeledText,
    load_examples,
    split_examples,
)

SEED = 13
MANIFEST_FILE = "MANIFEST.json"
CARD_FILE = "README.md"
PREDICTION_TOLERANCE = 1e-4
DATA_DIR_ENV = "FAIRSTREAM_DATA_DIR"
KINDS = ("fast", "quality")
# One BLAS thread: the machine is shared, and it keeps float summation order fixed.
TRAINING_BLAS_THREADS = 1

Log = Callable[[str], None]


def default_data_dir() -> Path:
    """Return the data directory: $FAIRSTREAM_DATA_DIR, else shared/data beside the repo."""
    from fairstream.settings import REPO_ROOT

    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_digest(splits: dict[str, list[LabeledText]], config: dict[str, Any]) -> str:
    """Return a digest of the assembled examples and the training configuration."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in sorted(splits):
        for e in splits[name]:
            digest.update(f"{name}\t{e.source}\t{e.stereotype}\t{e.dimension}\t{e.text}\n".encode())
    return digest.hexdigest()


def dataset_summary(splits: dict[str, list[LabeledText]]) -> dict[str, Any]:
    """Count examples per split, source and label."""
    summary: dict[str, Any] = {}
    for name, examples in splits.items():
        by_source: dict[str, dict[str, int]] = {}
        dims: dict[str, int] = {}
        for e in examples:
            entry = by_source.setdefault(e.source, {"stereotype": 0, "no_stereotype": 0})
            entry["stereotype" if e.stereotype else "no_stereotype"] += 1
            if e.dimension:
                dims[e.dimension] = dims.get(e.dimension, 0) + 1
        summary[name] = {
            "n": len(examples),
            "by_source": dict(sorted(by_source.items())),
            "dimensions": dict(sorted(dims.items())),
        }
    return summary


@dataclass(slots=True)
class Prepared:
    """Hold the assembled data: splits and where they came from."""

    data_dir: Path
    splits: dict[str, list[LabeledText]]


def prepare(data_dir: Path, seed: int = SEED) -> Prepared:
    """Load and split the examples."""
    if not (data_dir / "bias").is_dir():
        raise FileNotFoundError(
            f"training data not found under {data_dir} (set {DATA_DIR_ENV} to the data folder)"
        )
    return Prepared(data_dir, split_examples(load_examples(data_dir, seed), seed))


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST_FILE
    if path.is_file():
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return {}


def train(
    kinds: Sequence[str],
    out_dir: Path,
    data_dir: Path | None = None,
    *,
    seed: int = SEED,
    cache_dir: Path | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Train the given model kinds into out_dir and rewrite the manifest and model card."""
    from processors.bias.training.card import render_card

    data = prepare(data_dir or default_data_dir(), seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    manifest["seed"] = seed
    manifest["dataset"] = dataset_summary(data.splits)
    manifest.setdefault("models", {})
    for kind in kinds:
        log(f"training {kind} model")
        with threadpool_limits(limits=TRAINING_BLAS_THREADS):
            entry = _train_kind(kind, data, out_dir, seed, log, cache_dir)
        for name, info in entry["files"].items():
            info.update(sha256=sha256_file(out_dir / name), bytes=(out_dir / name).stat().st_size)
        manifest["models"][kind] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    (out_dir / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    # Render from the manifest as stored (sorted keys), so the card can be re-rendered from it.
    stored = json.loads((out_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    (out_dir / CARD_FILE).write_text(render_card(stored), encoding="utf-8")
    return manifest


def _train_kind(
    kind: str, data: Prepared, out_dir: Path, seed: int, log: Log, cache_dir: Path | None
) -> dict[str, Any]:
    if kind == "fast":
        from processors.bias.training.fast_run import run_fast

        return run_fast(data.splits, out_dir, seed, log)
    if kind == "quality":
        from processors.bias.training.quality_run import run_quality

        return run_quality(data.splits, out_dir, seed, log, cache_dir=cache_dir)
    raise ValueError(f"unknown model kind {kind!r}")


@dataclass(slots=True)
class Check:
    """Hold one verify finding."""

    file: str
    status: str  # identical | equivalent | different | missing
    detail: str = ""


def verify(
    kinds: Sequence[str],
    models_dir: Path,
    data_dir: Path | None = None,
    *,
    seed: int = SEED,
    cache_dir: Path | None = None,
    log: Log = print,
) -> list[Check]:
    """Retrain into a temporary directory and compare with the committed model files."""
    committed = _read_manifest(models_dir)
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="fairstream-verify-") as tmp:
        fresh_dir = Path(tmp)
        if (models_dir / MANIFEST_FILE).is_file():
            # Start from the committed manifest so kinds not retrained render the same card.
            (fresh_dir / MANIFEST_FILE).write_bytes((models_dir / MANIFEST_FILE).read_bytes())
        fresh = train(kinds, fresh_dir, data_dir, seed=seed, cache_dir=cache_dir, log=log)
        data = prepare(data_dir or default_data_dir(), seed)
        test_texts = [e.text for e in data.splits["test"]]
        for kind in kinds:
            entry = committed.get("models", {}).get(kind)
            if entry is None:
                checks.append(Check(kind, "missing", "not in the committed manifest"))
                continue
            for name, info in fresh["models"][kind]["files"].items():
                path = models_dir / name
                if not path.is_file():
                    checks.append(Check(name, "missing"))
                elif sha256_file(path) == info["sha256"]:
                    checks.append(Check(name, "identical"))
                else:
                    diff = _prediction_gap(kind, path.parent, fresh_dir, test_texts)
                    status = "equivalent" if diff <= PREDICTION_TOLERANCE else "different"
                    checks.append(Check(name, status, f"max |dp| on test split = {diff:.2e}"))
        for name in (MANIFEST_FILE, CARD_FILE):
            same = (models_dir / name).is_file() and (
                (models_dir / name).read_bytes() == (fresh_dir / name).read_bytes()
            )
            if same:
                checks.append(Check(name, "identical"))
            else:
                metrics_same = _metrics_of(committed, kinds) == _metrics_of(fresh, kinds)
                checks.append(
                    Check(
                        name,
                        "equivalent" if metrics_same else "different",
                        "metrics identical" if metrics_same else "metrics differ",
                    )
                )
    return checks


def _metrics_of(manifest: dict[str, Any], kinds: Sequence[str]) -> Any:
    return {k: manifest.get("models", {}).get(k, {}).get("metrics") for k in kinds}


def _prediction_gap(kind: str, committed_dir: Path, fresh_dir: Path, texts: list[str]) -> float:
    from processors.bias.scoring import load_scorer

    old = load_scorer(kind, committed_dir)
    new = load_scorer(kind, fresh_dir)
    p_old, d_old = old.predict(texts)  # type: ignore[attr-defined]
    p_new, d_new = new.predict(texts)  # type: ignore[attr-defined]
    return float(max(np.abs(p_old - p_new).max(), np.abs(d_old - d_new).max()))
