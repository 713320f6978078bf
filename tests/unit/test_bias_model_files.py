"""The committed model files match MANIFEST.json; a slow test retrains and compares."""

from __future__ import annotations

import json

import pytest

from fairstream.settings import REPO_ROOT
from processors.bias.training.card import render_card
from processors.bias.training.pipeline import default_data_dir, sha256_file, verify

MODELS_DIR = REPO_ROOT / "models"


def test_manifest_lists_every_model_file_with_its_sha256() -> None:
    manifest = json.loads((MODELS_DIR / "MANIFEST.json").read_text())
    assert set(manifest["models"]) == {"fast", "quality"}
    for entry in manifest["models"].values():
        for name, info in entry["files"].items():
            assert sha256_file(MODELS_DIR / name) == info["sha256"]
            assert (MODELS_DIR / name).stat().st_size == info["bytes"]


def test_model_card_is_rendered_from_the_manifest() -> None:
    manifest = json.loads((MODELS_DIR / "MANIFEST.json").read_text())
    assert (MODELS_DIR / "README.md").read_text() == render_card(manifest)


def test_encoder_is_not_committed() -> None:
    assert not any(p.name == "model.onnx" for p in MODELS_DIR.iterdir())


@pytest.mark.slow
def test_fast_model_retrains_to_the_committed_files() -> None:
    if not (default_data_dir() / "bias").is_dir():
        pytest.skip("training data not available")
    checks = verify(["fast"], MODELS_DIR, log=lambda _m: None)
    assert {c.file: c.status for c in checks}["bias_fast.onnx"] in ("identical", "equivalent")
    assert all(c.status in ("identical", "equivalent") for c in checks), checks
