"""Compose synthetic sentences for sample traffic: neutral, mildly and clearly biased.

Templates are combined with social groups. Neutral templates mention groups too,
on purpose: naming a group is not bias, and the scorer must learn the difference.
The sentences are written for this project; none is taken from a bias data set.
Every sample carries the label and dimension it was written with, so downstream
checks can compare a score with what the generator meant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class BiasLabel(StrEnum):
    """Say how biased a sample was written to be."""

    NEUTRAL = "neutral"
    MILD = "mild"
    CLEAR = "clear"


class Register(StrEnum):
    """Say where a sample would appear: a therapy session or marketing copy."""

    THERAPY = "therapy"
    MARKETING = "marketing"


@dataclass(frozen=True, slots=True)
class TextSample:
    """Hold one generated text with the label and dimension it was written with."""

    text: str
    label: BiasLabel
    dimension: str | None


GROUPS: dict[str, tuple[str, ...]] = {
    "gender": ("women", "men", "mothers", "young girls", "fathers"),
    "race_ethnicity": ("Black people", "Asian people", "Latinos", "white people", "Arabs"),
    "religion": ("Muslims", "Christians", "Jewish people", "Hindus", "atheists"),
    "age": ("older people", "teenagers", "millennials", "retirees", "people over sixty"),
    "disability": (
        "people with disabilities",
        "autistic people",
        "wheelchair users",
        "deaf people",
    ),
    "nationality": ("immigrants", "refugees", "Mexicans", "Nigerians", "Germans", "foreigners"),
    "sexual_orientation": ("gay men", "lesbians", "bisexual people", "gay couples"),
    "socioeconomic": ("poor people", "people on welfare", "working-class families", "rich kids"),
    "physical_appearance": ("overweight people", "short men", "people with tattoos", "bald men"),
    "profession": ("nurses", "engineers", "lawyers", "cleaners", "truck drivers", "artists"),
}

PRODUCTS = (
    "budgeting app",
    "meal planner",
    "habit tracker",
    "language course",
    "home workout program",
    "weekly newsletter",
    "resume template pack",
    "meditation app",
)
TOPICS = (
    "money",
    "technology",
    "fitness",
    "cooking",
    "investing",
    "productivity",
    "parenting",
    "learning a language",
)

# {group} is a plural noun phrase; {Group} the same, capitalised at a sentence start.
_TEMPLATES: dict[Register, dict[BiasLabel, tuple[str, ...]]] = {
    Register.THERAPY: {
        BiasLabel.NEUTRAL: (
            "I've been sleeping badly since the move and I feel tired all day.",
            "Let's try the breathing exercise again and notice where you feel the tension.",
            "It sounds like the conversation with your sister left you feeling unheard.",
            "Some of my closest friends are {group} and they have been really supportive.",
            "I joined a support group with {group} last week and it helped to just listen.",
            "What would a good week look like for you, in small concrete steps?",
            "My manager and I talked about {topic} and for once it went well.",
            "You mentioned feeling anxious before meetings; when did that start?",
            "I keep replaying the argument in my head when I try to fall asleep.",
            "Many {group} I work with describe the same pressure you are describing.",
        ),
        BiasLabel.MILD: (
            "{Group} often exaggerate how they feel, so let's not read too much into it.",
            "That's a typical reaction for {group}; they tend to be more fragile.",
            "I'm surprised you feel that way, {group} usually cope with stress better.",
            "Well, {group} aren't known for talking about feelings, so this is progress.",
            "You're quite calm about it, which is unusual for {group}.",
            "It might be a cultural thing, {group} are always a bit dramatic.",
        ),
        BiasLabel.CLEAR: (
            "{Group} are just not capable of managing their own emotions.",
            "Honestly, {group} bring most of their problems on themselves.",
            "You can't expect {group} to get better; they are weak by nature.",
            "{Group} are lazy, so no wonder nothing changes for them.",
            "I wouldn't trust {group} with anything important, they always let you down.",
            "Everybody knows {group} are less intelligent, so keep the plan simple.",
        ),
    },
    Register.MARKETING: {
        BiasLabel.NEUTRAL: (
            "Plan your week in ten minutes with our {product}.",
            "Try the {product} free for 14 days and cancel any time.",
            "New on the blog: five practical ways to get started with {topic}.",
            "We asked {group} how they approach {topic}; here is what they told us.",
            "Our {product} now works offline, so you can use it anywhere.",
            "Join 2,000 readers who get one short tip about {topic} every week.",
            "Whether you are new to {topic} or an expert, the {product} adapts to you.",
            "Customers of all ages rate the {product} 4.7 out of 5.",
        ),
        BiasLabel.MILD: (
            "Finally, a {product} so simple that even {group} can use it.",
            "Unlike most {group}, our customers actually understand {topic}.",
            "Built for busy professionals, not for {group} with time on their hands.",
            "Surprisingly, {group} love our {product} too!",
            "The {product} for real go-getters; {group} need not apply.",
        ),
        BiasLabel.CLEAR: (
            "{Group} shouldn't bother with {topic}; our {product} is for people who can handle it.",
            "Keep {group} away from your finances and use our {product} instead.",
            "Everyone knows {group} are bad at {topic}, so we built this {product} for the rest.",
            "Don't hire {group}; hire our {product}, it never calls in sick.",
            "{Group} are a waste of marketing money, so we never target them.",
        ),
    },
}

NON_ENGLISH = (
    ("es", "La sesión de hoy se centró en cómo dormir mejor."),
    ("de", "Wir haben heute über Stress bei der Arbeit gesprochen."),
    ("fr", "Essayez notre application gratuitement pendant quatorze jours."),
)

LABEL_WEIGHTS = {BiasLabel.NEUTRAL: 0.5, BiasLabel.MILD: 0.25, BiasLabel.CLEAR: 0.25}


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def compose(
    rng: random.Random,
    register: Register,
    label: BiasLabel | None = None,
    *,
    avoid: set[str] | None = None,
) -> TextSample:
    """Compose one sentence in `register`, drawing the label by LABEL_WEIGHTS unless given.

    Templates in `avoid` are not reused while others remain; the chosen one is added.
    """
    if label is None:
        label = rng.choices(list(LABEL_WEIGHTS), weights=list(LABEL_WEIGHTS.values()))[0]
    templates = _TEMPLATES[register][label]
    fresh = [t for t in templates if t not in avoid] if avoid else list(templates)
    template = rng.choice(fresh or templates)
    if avoid is not None:
        avoid.add(template)
    dimension = rng.choice(sorted(GROUPS))
    group = rng.choice(GROUPS[dimension])
    text = template.format(
        group=group,
        Group=_capitalise(group),
        product=rng.choice(PRODUCTS),
        topic=rng.choice(TOPICS),
    )
    mentions_group = "{group}" in template.lower()
    return TextSample(text=text, label=label, dimension=dimension if mentions_group else None)


def compose_passage(
    rng: random.Random, register: Register, sentences: int, label: BiasLabel | None = None
) -> TextSample:
    """Compose several sentences; the passage takes the strongest label among them."""
    if sentences < 1:
        raise ValueError("a passage needs at least one sentence")
    used: set[str] = set()
    first = compose(rng, register, label, avoid=used)
    parts = [first]
    for _ in range(sentences - 1):
        parts.append(compose(rng, register, BiasLabel.NEUTRAL, avoid=used))
    rng.shuffle(parts)
    return TextSample(
        text=" ".join(p.text for p in parts), label=first.label, dimension=first.dimension
    )


def non_english(rng: random.Random) -> tuple[str, str]:
    """Return a neutral (language, sentence) pair in a language other than English."""
    return rng.choice(NON_ENGLISH)
