"""Identify the language of a text with py3langid, whose wheel ships its model (no download)."""

from __future__ import annotations

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
        """Return the language (ISO 639-1 or "und") and whether English is implausible."""
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
