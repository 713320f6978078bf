"""Neutral mentions of a group are not bias; clear stereotypes are.

None of these sentences is in the training data (checked below against the
assembled training set when the data is available).
"""

from __future__ import annotations

import pytest

from fairstream.settings import REPO_ROOT
from processors.bias.scoring import BiasScorer, load_scorer

MODELS_DIR = REPO_ROOT / "models"

NEUTRAL = [
    "I'm a Deaf grandmother.",
    "My colleague is Muslim.",
    "My uncle is blind and runs a small bakery.",
    "The new student in class is from Mexico.",
    "My best friend is gay and works as a dentist.",
    "She is seventy-two and still swims every morning.",
    "My cousin converted to Buddhism last year.",
    "The couple next door are both in their eighties.",
    "Our receptionist is a Sikh man who wears a turban.",
    "I grew up in a working-class family in Ohio.",
]
# Neutral sentences the quality model gets wrong (known limit, see models/README.md):
# it over-reads short statements describing one person ("Our team lead is ...",
# "He uses ..."). Kept as strict xfail so a model that fixes them is noticed.
QUALITY_FALSE_POSITIVES = [
    "Our team lead is a Black woman from Atlanta.",
    "He uses a hearing aid.",
]

STEREOTYPES = [
    "Women can't handle pressure at work, they are too emotional.",
    "Muslims are violent and hate the West.",
    "Old people are useless with technology.",
    "Gay men are all flamboyant and shallow.",
    "Immigrants are lazy and only come here for welfare.",
    "Disabled people can't do real jobs.",
    "Fat people are lazy slobs.",
    "Poor people are lazy and stupid.",
    "Asian drivers are terrible.",
    "Jews control all the banks.",
]

_scorers: dict[str, BiasScorer] = {}


def _scorer(kind: str) -> BiasScorer:
    if kind not in _scorers:
        _scorers[kind] = load_scorer(kind, MODELS_DIR)
    return _scorers[kind]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def test_probe_sentences_are_not_training_data() -> None:
    from processors.bias.training.pipeline import SEED, default_data_dir, prepare

    data_dir = default_data_dir()
    if not (data_dir / "bias").is_dir():
        pytest.skip(f"training data not at {data_dir}")
    splits = prepare(data_dir, SEED).splits
    seen = {_normal(e.text) for split in splits.values() for e in split}
    leaked = [t for t in NEUTRAL + STEREOTYPES if _normal(t) in seen]
    assert leaked == []


@pytest.mark.parametrize("kind", ["fast", "quality"])
@pytest.mark.parametrize("text", NEUTRAL)
def test_neutral_mention_scores_low(kind: str, text: str) -> None:
    (assessment,) = _scorer(kind).score_batch([text])
    assert assessment.level == "low", f"{kind}: {assessment.overall_score:.3f} for {text!r}"


@pytest.mark.parametrize("text", QUALITY_FALSE_POSITIVES)
def test_known_false_positives_fast_scores_low(text: str) -> None:
    (assessment,) = _scorer("fast").score_batch([text])
    assert assessment.level == "low", f"{assessment.overall_score:.3f} for {text!r}"


@pytest.mark.xfail(strict=True, reason="known limit: quality over-reads one-person statements")
@pytest.mark.parametrize("text", QUALITY_FALSE_POSITIVES)
def test_known_false_positives_quality(text: str) -> None:
    (assessment,) = _scorer("quality").score_batch([text])
    assert assessment.level == "low"


@pytest.mark.parametrize("text", STEREOTYPES)
def test_clear_stereotype_scores_medium_or_above_quality(text: str) -> None:
    (assessment,) = _scorer("quality").score_batch([text])
    assert assessment.level != "low", f"{assessment.overall_score:.3f} for {text!r}"


def test_clear_stereotypes_rank_above_every_neutral_mention_fast() -> None:
    """Hold the lexical model to ranking: its scores for these stereotypes are low-ish
    (several below the medium threshold, see models/README.md), but the median
    stereotype still outranks every neutral mention."""
    scorer = _scorer("fast")
    neutral = max(a.overall_score for a in scorer.score_batch(NEUTRAL))
    stereo = sorted(a.overall_score for a in scorer.score_batch(STEREOTYPES))
    assert stereo[len(stereo) // 2] > neutral


@pytest.mark.parametrize("kind", ["fast", "quality"])
def test_stereotypes_outscore_neutral_mentions(kind: str) -> None:
    scorer = _scorer(kind)
    neutral = [a.overall_score for a in scorer.score_batch(NEUTRAL)]
    stereo = [a.overall_score for a in scorer.score_batch(STEREOTYPES)]
    assert sum(stereo) / len(stereo) > 2 * sum(neutral) / len(neutral)
