"""Identify the language of a text with py3langid, whose wheel ships its model (no download)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

# English counts as plausible above this probability; below it the text is flagged
# non-English. (Short English texts often rank a close relative such as Nigerian
# Pidgin first, so "top language is not en" would flag too much.)
MIN_ENGLISH_PROBABILITY = 0.05
# The best ISO 639-1 language is reported only above this probability, else "und".
MIN_LANGUAGE_PROBABILITY = 0.1
UNDETERMINED = "und"
NO_LANGUAGE = "zxx"

# Common English words (mostly function words) that are not also common words of another
# language py3langid knows ("a", "in", "die", "was", "on", "me", "no", "to" are left out
# on purpose).
ENGLISH_FUNCTION_WORDS = frozenset(
    (
        "the",
        "and",
        "of",
        "is",
        "are",
        "that",
        "this",
        "these",
        "those",
        "with",
        "for",
        "they",
        "their",
        "them",
        "have",
        "has",
        "had",
        "not",
        "you",
        "your",
        "it",
        "its",
        "be",
        "been",
        "being",
        "were",
        "would",
        "should",
        "could",
        "which",
        "what",
        "who",
        "whom",
        "there",
        "from",
        "about",
        "because",
        "very",
        "than",
        "then",
        "when",
        "will",
        "our",
        "we",
        "he",
        "she",
        "his",
        "her",
        "him",
        "all",
        "can",
        "do",
        "does",
        "did",
        "just",
        "only",
        "more",
        "most",
        "some",
        "any",
        "every",
        "many",
        "much",
        "how",
        "why",
        "where",
        "into",
        "over",
        "after",
        "before",
        "by",
        "at",
        "or",
        "if",
        "but",
        "my",
        "myself",
        "also",
        "like",
        "know",
        "feel",
        "think",
        "people",
    )
)
# A plain-ASCII text is plainly English when at least this many of its words, and this
# share of them, are in ENGLISH_FUNCTION_WORDS. py3langid then always finds English
# plausible (tests/unit/test_bias_language.py checks this on generated and crafted
# text), so it is not asked: it costs ~100 us a text, more than the fast model itself.
PLAIN_ENGLISH_MIN_WORDS = 3
PLAIN_ENGLISH_SHARE = 0.2
_ASCII_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """Hold the ISO 639-1 code (or "und"), its probability and whether it is not English."""

    language: str
    probability: float
    non_english: bool


class LanguageDetector:
    """Detect languages with py3langid's bundled naive Bayes model, loaded once per process."""

    _shared: Any = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._identifier = self._load()

    @classmethod
    def _load(cls) -> Any:
        with cls._lock:
            if cls._shared is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                cls._shared = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            return cls._shared

    def detect(self, text: str) -> LanguageGuess:
        """Return the language (ISO 639-1 or "und") and whether English is implausible.

        Plainly English text (`plainly_english`) is answered without the model; its
        probability is then reported as 1.0.
        """
        if plainly_english(text):
            return LanguageGuess("en", 1.0, non_english=False)
        return self.identify(text)

    def identify(self, text: str) -> LanguageGuess:
        """Return what py3langid's model says, with no shortcut for plain English."""
        ranked: list[tuple[str, float]] = self._identifier.rank(text)
        if not ranked or ranked[0][0] == NO_LANGUAGE:
            return LanguageGuess(UNDETERMINED, 0.0, non_english=False)
        english = next((float(p) for code, p in ranked if code == "en"), 0.0)
        if english >= MIN_ENGLISH_PROBABILITY:
            return LanguageGuess("en", english, non_english=False)
        code, probability = next(
            ((c, float(p)) for c, p in ranked if len(c) == 2), (UNDETERMINED, 0.0)
        )
        if probability < MIN_LANGUAGE_PROBABILITY:
            # Too little text to name a language ("lol", "hi"): do not call it foreign either.
            return LanguageGuess(UNDETERMINED, probability, non_english=False)
        return LanguageGuess(code, probability, non_english=True)


def plainly_english(text: str) -> bool:
    """Return True if the text is ASCII and common English words make up enough of it."""
    if not text.isascii():
        return False
    words = _ASCII_WORD.findall(text.lower())
    if len(words) < PLAIN_ENGLISH_MIN_WORDS:
        return False
    hits = sum(1 for w in words if w in ENGLISH_FUNCTION_WORDS)
    return hits >= PLAIN_ENGLISH_MIN_WORDS and hits >= PLAIN_ENGLISH_SHARE * len(words)
