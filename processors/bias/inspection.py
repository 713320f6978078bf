"""Look at a raw text before a model sees it: hash, counts, language and bad-input flags.

Bad input never raises. Empty, whitespace-only and binary texts are not run through
a model: they get score 0, confidence 0 and a flag, and the processor still emits
BiasScored for them (they decoded fine, so they are not dead-lettered); consumers
route on the flag.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from processors.bias.language import UNDETERMINED, LanguageDetector

# A text is binary garbage when more than this share of its characters are control,
# surrogate, private-use, unassigned or U+FFFD (what undecodable bytes become).
BINARY_SHARE = 0.3
# Confidence factor for text the models were not trained on (all training data is English).
NON_ENGLISH_CONFIDENCE_FACTOR = 0.5
# Confidence factor when only the start of the text fits the model's window.
TRUNCATED_CONFIDENCE_FACTOR = 0.9
# The language detector reads at most this many characters (its cost grows with length).
LANGUAGE_SAMPLE_CHARS = 2000

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The ASCII characters of category Cc other than tab, newline and carriage return.
_ASCII_NON_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NON_PRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
_ALLOWED_CONTROLS = frozenset("\t\n\r")


@dataclass(slots=True)
class TextFacts:
    """Hold what is known about a text before scoring; `scorable` says whether to run a model."""

    text: str
    content_hash: str
    text_length: int
    word_count: int
    language: str
    flags: list[str] = field(default_factory=list)

    @property
    def scorable(self) -> bool:
        """Return True unless the text is empty, blank or binary."""
        return not {"empty", "whitespace_only", "binary"} & set(self.flags)

    def confidence_factor(self) -> float:
        """Return the factor by which the flags lower the model's confidence."""
        factor = 1.0
        if "non_english" in self.flags:
            factor *= NON_ENGLISH_CONFIDENCE_FACTOR
        if "truncated" in self.flags:
            factor *= TRUNCATED_CONFIDENCE_FACTOR
        return factor


def content_hash(text: str) -> str:
    """Return the sha256 hex digest of the text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def non_printable_share(text: str) -> float:
    """Return the share of characters that are non-printable or replacement characters."""
    if not text:
        return 0.0
    if text.isascii():
        # Same answer as the loop below: in ASCII only Cc characters are non-printable.
        return len(_ASCII_NON_PRINTABLE.findall(text)) / len(text)
    bad = sum(
        1
        for ch in text
        if ch == "\ufffd"
        or (ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in _NON_PRINTABLE_CATEGORIES)
    )
    return bad / len(text)


class TextInspector:
    """Compute a text's facts and flags; one instance per scorer (the language model loads once)."""

    def __init__(self, detector: LanguageDetector | None = None) -> None:
        self._detector = detector or LanguageDetector()

    def inspect(self, text: str) -> TextFacts:
        """Return the facts about one text; flags cover empty, blank, binary and non-English.

        `facts.text` is what the models read: lone surrogates (not encodable as UTF-8)
        become U+FFFD, one character for one, so evidence offsets still fit the input.
        """
        facts = TextFacts(
            text=text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text),
            content_hash=content_hash(text),
            text_length=len(text),
            word_count=len(text.split()),
            language=UNDETERMINED,
        )
        if not text:
            facts.flags.append("empty")
        elif not text.strip():
            facts.flags.append("whitespace_only")
        elif non_printable_share(text) > BINARY_SHARE:
            facts.flags.append("binary")
        else:
            guess = self._detector.detect(text[:LANGUAGE_SAMPLE_CHARS])
            facts.language = guess.language
            if guess.non_english:
                facts.flags.append("non_english")
        return facts
