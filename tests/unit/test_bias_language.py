"""The plain-English shortcut of language identification agrees with py3langid."""

from __future__ import annotations

import pytest

from processors.bias.language import LanguageDetector, plainly_english
from producers.generator import TrafficGenerator

NOT_ENGLISH = [
    "Ma collègue est musulmane et elle est très gentille avec tout le monde.",
    "Das ist mein Haus und die Katze ist in dem Garten.",
    "El perro es muy bonito y la casa es grande.",
    "De kat is in het huis en de hond is buiten.",
    "Il gatto e il cane sono nella casa per tutti.",
    "Hond en kat is vir die mense baie lief.",
    "Jeg har en hund og en katt som er veldig snill.",
]
TOO_SHORT = ["lol", "hi there", "the end", ""]


def _generated(count: int) -> list[str]:
    gen = TrafficGenerator(types=("ContentSubmitted",), seed=5)
    return [str(gen.make("ContentSubmitted").payload["text"]) for _ in range(count)]


def test_py3langid_finds_english_plausible_wherever_the_shortcut_answers() -> None:
    detector = LanguageDetector()
    texts = [
        *_generated(1500),
        "They say the old people are not able to do the work.",
        "All of them were there and we did not know why.",
    ]
    shortcut = [t for t in texts if plainly_english(t)]
    assert len(shortcut) > 0.8 * len(texts)  # the shortcut is the common path
    for text in shortcut:
        guess = detector.identify(text)
        assert (guess.language, guess.non_english) == ("en", False), text


@pytest.mark.parametrize("text", NOT_ENGLISH + TOO_SHORT)
def test_the_shortcut_leaves_other_text_to_py3langid(text: str) -> None:
    assert not plainly_english(text)


@pytest.mark.parametrize("text", NOT_ENGLISH)
def test_non_english_is_still_flagged(text: str) -> None:
    guess = LanguageDetector().detect(text)
    assert guess.non_english and guess.language != "en"


def test_detect_answers_plain_english_without_the_model() -> None:
    guess = LanguageDetector().detect("We think that they are all the same as us.")
    assert (guess.language, guess.probability, guess.non_english) == ("en", 1.0, False)
