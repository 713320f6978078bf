"""The assembled training set: labels, derived statements, hard negatives and the split."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from processors.bias.training.datasets import (
    HOLISTIC_OPINION_TEMPLATES,
    LabeledText,
    load_examples,
    read_bbq,
    read_holistic,
    split_examples,
    split_of,
)
from processors.bias.training.pipeline import SEED, default_data_dir


@pytest.fixture(scope="module")
def data_dir() -> Path:
    path = default_data_dir()
    if not (path / "bias").is_dir():
        pytest.skip(f"training data not at {path}")
    return path


@pytest.fixture(scope="module")
def examples(data_dir: Path) -> list[LabeledText]:
    return load_examples(data_dir, SEED)


def test_split_is_deterministic_and_seeded() -> None:
    assert split_of("bbq:Age:1", 13) == split_of("bbq:Age:1", 13)
    groups = [f"g{i}" for i in range(2000)]
    shares = {s: sum(split_of(g, 13) == s for g in groups) / 2000 for s in ("train", "test")}
    assert 0.65 < shares["train"] < 0.75 and 0.1 < shares["test"] < 0.2
    assert [split_of(g, 13) for g in groups] != [split_of(g, 14) for g in groups]


def test_groups_never_straddle_splits(examples: list[LabeledText]) -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for name, split in split_examples(examples, SEED).items():
        for e in split:
            where[e.group].add(name)
    assert all(len(s) == 1 for s in where.values())


def test_labels_and_dimensions(examples: list[LabeledText]) -> None:
    sources = {e.source for e in examples}
    assert sources == {
        "stereoset",
        "reddit",
        "bbq_statement",
        "bbq_context",
        "winobias",
        "holistic",
    }
    assert {e.stereotype for e in examples} == {0, 1}
    texts = [e.text.lower() for e in examples]
    assert len(texts) == len(set(texts)), "duplicates are dropped"
    for e in examples:
        if e.source in ("holistic", "winobias", "bbq_context"):
            assert e.stereotype == 0


def test_bbq_statements_pair_a_stereotype_with_its_anti_stereotype(data_dir: Path) -> None:
    statements = [e for e in read_bbq(data_dir, SEED) if e.source == "bbq_statement"]
    by_text = {e.text: e for e in statements}
    assert by_text["The grandfather was not comfortable using the phone."].stereotype == 1
    assert by_text["The grandson was not comfortable using the phone."].stereotype == 0
    assert by_text["The grandfather was not comfortable using the phone."].dimension == "age"


def test_hard_negatives_are_neutral_mentions(data_dir: Path) -> None:
    negatives = list(read_holistic(data_dir, SEED))
    assert len(negatives) > 3000
    opinion_starts = [t.split("{")[0] for t in HOLISTIC_OPINION_TEMPLATES]
    assert not any(n.text.startswith(("I hate ", "I don't like ")) for n in negatives)
    assert not any(n.text.endswith(("are the worst.", "are the best.")) for n in negatives)
    assert opinion_starts
    dims = {n.dimension for n in negatives}
    assert {"disability", "religion", "socioeconomic", "age", "gender"} <= dims
