"""Read the public data sets into one labelled, split training set.

Every example carries two labels: `stereotype` (1 = the text states or implies a
stereotype about a group, 0 = it does not) and `dimension` (which group the text is
about, or None when the source does not say). Splits are assigned per `group` by a
seeded hash, so items built from one template (a BBQ question, a HolisticBias
descriptor) never straddle train and test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
TRAIN_SHARE = 0.70
VALIDATION_SHARE = 0.15

STEREOSET_DIMENSIONS = {"0": "race_ethnicity", "1": "profession", "2": "gender", "3": "religion"}
BBQ_DIMENSIONS = {
    "Age": "age",
    "Disability_status": "disability",
    "Nationality": "nationality",
    "Physical_appearance": "physical_appearance",
    "Religion": "religion",
    "Sexual_orientation": "sexual_orientation",
}
HOLISTIC_DIMENSIONS: dict[str, str | None] = {
    "ability": "disability",
    "age": "age",
    "body_type": "physical_appearance",
    "characteristics": None,
    "cultural": None,
    "gender_and_sex": "gender",
    "nationality": "nationality",
    "nonce": None,
    "political_ideologies": None,
    "race_ethnicity": "race_ethnicity",
    "religion": "religion",
    "sexual_orientation": "sexual_orientation",
    "socioeconomic_class": "socioeconomic",
}
# HolisticBias templates that voice a feeling about a whole group are not neutral
# mentions, so they are not used as hard negatives.
HOLISTIC_OPINION_TEMPLATES = frozenset(
    {
        "I hate {plural_noun_phrase}.",
        "I don't like {plural_noun_phrase}.",
        "I think {plural_noun_phrase} are the worst.",
        "I think {plural_noun_phrase} are the best.",
    }
)
# Third-person frames in the same descriptor x noun scheme. HolisticBias' own templates
# are all first person ("I'm ..."), which would teach a lexical model that "X is/are
# <group>" signals a stereotype; these neutral frames counter that.
THIRD_PERSON_TEMPLATES = (
    "My neighbor is {noun_phrase}.",
    "Our new coworker is {noun_phrase}.",
    "The person sitting next to me on the bus was {noun_phrase}.",
    "The new tenant is {noun_phrase} and works as an accountant.",
    "The speaker at the conference was {noun_phrase}.",
    "My doctor is {noun_phrase}.",
    "There are {plural_noun_phrase} in my book club.",
    "Many of my classmates are {plural_noun_phrase}.",
    "{plural_noun_phrase} came to the community meeting last night.",
    "The customer on the phone was {noun_phrase}.",
)
# The descriptor as a predicate adjective of a person ("My sister is Deaf.").
PREDICATE_TEMPLATES = (
    "My {noun} is {descriptor}.",
    "Her {noun} is {descriptor} and lives nearby.",
    "The {noun} who called yesterday is {descriptor}.",
    "Both of their {plural_noun} are {descriptor}.",
)
HOLISTIC_PER_DESCRIPTOR = 6
THIRD_PERSON_PER_DESCRIPTOR = 4
PREDICATE_PER_DESCRIPTOR = 2
HOLISTIC_PER_NOUN_PHRASE = 3
# Share of WinoBias sentence pairs and BBQ ambiguous contexts kept (keeps the easy
# negatives from swamping the set); chosen per group by the seeded hash.
WINOBIAS_KEEP = 1.0
BBQ_CONTEXT_KEEP = 1.0

_WINOBIAS_LINE = re.compile(r"^\d+\s+(?P<text>.*)$")


@dataclass(frozen=True, slots=True)
class LabeledText:
    """Hold one training example: text, both labels, where it came from and its split unit."""

    text: str
    stereotype: int
    dimension: str | None
    source: str
    group: str


def unit_hash(seed: int, key: str) -> float:
    """Map a key to [0, 1) deterministically for the given seed."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(group: str, seed: int) -> str:
    """Return the split ("train", "validation" or "test") a group belongs to."""
    h = unit_hash(seed, "split:" + group)
    if h < TRAIN_SHARE:
        return "train"
    if h < TRAIN_SHARE + VALIDATION_SHARE:
        return "validation"
    return "test"


def read_stereoset(data_dir: Path) -> Iterator[LabeledText]:
    """Yield StereoSet intrasentence stereotype (1) and anti-stereotype (0) sentences."""
    path = data_dir / "bias" / "stereoset" / "stereoset_intrasentence.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = row["text"].strip()
            yield LabeledText(
                text=text,
                stereotype=int(row["label"]),
                dimension=STEREOSET_DIMENSIONS[row["stereotype_label"]],
                source="stereoset",
                group="stereoset:" + text.lower(),
            )


def read_reddit(data_dir: Path) -> Iterator[LabeledText]:
    """Yield the Reddit sentences annotated for explicit or implicit stereotypes."""
    path = data_dir / "bias" / "stereotype_reddit" / "stereotype.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = row["text"].strip()
            yield LabeledText(
                text=text,
                stereotype=int(row["label"]),
                dimension=None,
                source="reddit",
                group="reddit:" + text.lower(),
            )


def read_winobias(data_dir: Path, seed: int) -> Iterator[LabeledText]:
    """Yield WinoBias occupation sentences as neutral mentions (label 0).

    They narrate events involving occupations; the stereotype WinoBias probes lies in
    how a coreference system resolves the pronoun, not in what the sentence asserts.
    """
    folder = data_dir / "bias" / "winobias"
    for path in sorted(folder.glob("*_stereotyped_type*.txt.*")):
        kind = path.name.split("_stereotyped_")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _WINOBIAS_LINE.match(line.strip())
            if not match:
                continue
            number = line.split()[0]
            pair = f"winobias:{path.name.replace(kind + '_', '')}:{number}"
            if unit_hash(seed, "keep:" + pair) >= WINOBIAS_KEEP:
                continue
            text = match.group("text").replace("[", "").replace("]", "").strip()
            yield LabeledText(text, 0, None, "winobias", pair)


def _bbq_rows(data_dir: Path) -> Iterator[dict[str, Any]]:
    for category in BBQ_DIMENSIONS:
        path = data_dir / "bias" / "bbq" / f"{category}.jsonl"
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def _is_stereotyped(info: list[str], groups: list[str]) -> bool:
    wanted = {g.lower() for g in groups}
    return any(part.lower() in wanted for part in info)


def read_bbq(data_dir: Path, seed: int) -> Iterator[LabeledText]:
    """Yield BBQ-derived statements and neutral ambiguous contexts.

    A negative question ("Who was not comfortable using the phone?") answered with the
    stereotyped group gives a stereotype statement ("The grandfather was not
    comfortable using the phone.", label 1); answered with the other group it gives the
    anti-stereotype (label 0). Ambiguous contexts only mention both groups (label 0).
    """
    for row in _bbq_rows(data_dir):
        category = row["category"]
        dimension = BBQ_DIMENSIONS[category]
        group = f"bbq:{category}:{row['question_index']}"
        if row["context_condition"] == "ambig":
            context = row["context"].strip()
            if unit_hash(seed, "keep:" + context) < BBQ_CONTEXT_KEEP:
                yield LabeledText(context, 0, dimension, "bbq_context", group)
        question = row["question"].strip()
        if row["question_polarity"] != "neg" or not question.startswith("Who "):
            continue
        groups = row["additional_metadata"]["stereotyped_groups"]
        answers = []
        for key in ("ans0", "ans1", "ans2"):
            info = row["answer_info"][key]
            if info[-1].lower() == "unknown":
                continue
            answers.append((row[key].strip(), _is_stereotyped(info, groups)))
        if len(answers) != 2 or sum(flag for _, flag in answers) != 1:
            continue
        predicate = question[len("Who ") :].rstrip("?").strip()
        for answer, stereotyped in answers:
            subject = answer[0].upper() + answer[1:]
            yield LabeledText(
                f"{subject} {predicate}.", int(stereotyped), dimension, "bbq_statement", group
            )


def _descriptor_names(entries: Any) -> Iterator[tuple[str, str | None]]:
    for entry in entries:
        if isinstance(entry, str):
            yield entry, None
        else:
            yield entry["descriptor"], entry.get("gender")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def read_holistic(data_dir: Path, seed: int) -> Iterator[LabeledText]:
    """Yield neutral HolisticBias sentences (label 0): descriptor x noun x template.

    These are the hard negatives: they name an identity without saying anything about
    it ("I'm a Deaf grandmother."). A few combinations per descriptor are drawn by the
    seeded hash. The split unit is the template: every identity term is seen as a
    neutral mention in training, and test sentences use frames training never saw.
    """
    folder = data_dir / "bias" / "holistic_bias"
    templates = [
        t
        for t in json.loads((folder / "sentence_templates.json").read_text(encoding="utf-8"))
        if t not in HOLISTIC_OPINION_TEMPLATES
    ]
    nouns_by_gender: dict[str, list[list[str]]] = json.loads(
        (folder / "nouns.json").read_text(encoding="utf-8")
    )
    descriptors = json.loads((folder / "descriptors.json").read_text(encoding="utf-8"))
    for axis, buckets in descriptors.items():
        dimension = HOLISTIC_DIMENSIONS[axis]
        entries = [e for bucket in buckets.values() for e in bucket]
        for descriptor, gender in _descriptor_names(entries):
            key = f"holistic:{axis}:{descriptor}"
            for frames, count in (
                (templates, HOLISTIC_PER_DESCRIPTOR),
                (THIRD_PERSON_TEMPLATES, THIRD_PERSON_PER_DESCRIPTOR),
                (PREDICATE_TEMPLATES, PREDICATE_PER_DESCRIPTOR),
            ):
                candidates = []
                for noun_gender, nouns in nouns_by_gender.items():
                    if gender is not None and noun_gender not in (gender, "neutral"):
                        continue
                    for singular, plural in nouns:
                        phrase = f"{_article(descriptor)} {descriptor} {singular}"
                        for template in frames:
                            sentence = template.format(
                                noun_phrase=phrase,
                                plural_noun_phrase=f"{descriptor} {plural}",
                                noun=singular,
                                plural_noun=plural,
                                descriptor=descriptor,
                            )
                            candidates.append((sentence[0].upper() + sentence[1:], template))
                yield from _holistic_pick(candidates, count, key, dimension, seed)
    standalone = json.loads((folder / "standalone_noun_phrases.json").read_text(encoding="utf-8"))
    neutral_nouns = nouns_by_gender["neutral"]
    for axis, phrases in standalone.items():
        dimension = HOLISTIC_DIMENSIONS[axis]
        for entry in phrases:
            singular = str(entry if isinstance(entry, str) else entry["noun_phrase"])
            plural_phrase = None if isinstance(entry, str) else entry.get("plural_noun_phrase")
            key = f"holistic:{axis}:{singular}"
            candidates = []
            for noun, noun_plural in neutral_nouns:
                one = singular.format(article=_article(noun), noun=noun)
                many = (
                    plural_phrase.format(article="", noun=noun_plural).strip()
                    if plural_phrase
                    else None
                )
                for template in templates:
                    if "{plural_noun_phrase}" in template and many is None:
                        continue
                    sentence = template.format(noun_phrase=one, plural_noun_phrase=many)
                    candidates.append((sentence, template))
            yield from _holistic_pick(candidates, HOLISTIC_PER_NOUN_PHRASE, key, dimension, seed)


def _holistic_pick(
    candidates: list[tuple[str, str]], count: int, key: str, dimension: str | None, seed: int
) -> Iterator[LabeledText]:
    """Yield `count` candidates chosen by the seeded hash; the split unit is the template."""
    candidates.sort(key=lambda c: unit_hash(seed, key + c[0]))
    for sentence, template in candidates[:count]:
        yield LabeledText(sentence, 0, dimension, "holistic", "holistic-template:" + template)


def load_examples(data_dir: Path, seed: int) -> list[LabeledText]:
    """Read every source; drop exact duplicate texts (first label wins) and conflicting ones."""
    seen: dict[str, LabeledText] = {}
    conflicting: set[str] = set()
    sources = (
        read_stereoset(data_dir),
        read_reddit(data_dir),
        read_bbq(data_dir, seed),
        read_winobias(data_dir, seed),
        read_holistic(data_dir, seed),
    )
    for source in sources:
        for example in source:
            key = " ".join(example.text.lower().split())
            if not key:
                continue
            previous = seen.get(key)
            if previous is None:
                seen[key] = example
            elif previous.stereotype != example.stereotype:
                conflicting.add(key)
    return [example for key, example in seen.items() if key not in conflicting]


def split_examples(examples: list[LabeledText], seed: int) -> dict[str, list[LabeledText]]:
    """Partition examples into train, validation and test by their group."""
    splits: dict[str, list[LabeledText]] = {name: [] for name in SPLITS}
    for example in examples:
        splits[split_of(example.group, seed)].append(example)
    return splits
