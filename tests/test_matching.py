"""What a query matches: minimum should match, typo corrections and suggestions (pure functions)."""

from collections import Counter

import pytest

from search.matching import TYPO_WEIGHT, required, resolve, suggestion
from search.query import parse
from search.vocabulary import Vocabulary

INDEXED = {"export", "control", "vaccin", "canal", "suez", "marriag"}
STEMS = {"controls": "control", "vaccine": "vaccin", "vaccines": "vaccin", "marriage": "marriag"}


def terms(text: str) -> list[str]:
    words = [w.lower() for w in text.replace("-", " ").split()]
    return [STEMS.get(w, w) for w in words if w not in ("the", "of", "in")]


def known(term: str) -> bool:
    return term in INDEXED


def vocabulary() -> Vocabulary:
    return Vocabulary(Counter({"export": 5, "controls": 3, "vaccine": 4, "canal": 2, "suez": 2, "marriage": 2}))


@pytest.mark.parametrize(
    ("n", "any_word", "expected"),
    [(0, False, 0), (1, False, 1), (2, False, 2), (3, False, 2), (4, False, 3), (5, False, 3), (10, False, 6)],
)
def test_minimum_should_match(n, any_word, expected):
    assert required(n, any_word, all_upto=2, fraction=0.6) == expected
    assert required(n, True, all_upto=2, fraction=0.6) == min(n, 1)


def test_known_words_resolve_to_their_terms():
    words = resolve(parse("export controls of the Suez"), terms, known, vocabulary)
    assert words.groups == [[("export", 1.0)], [("control", 1.0)], [("suez", 1.0)]]
    assert words.known and not words.corrections
    assert words.semantic_text == "export controls of the Suez"


def test_a_misspelled_word_stands_for_the_indexed_word():
    words = resolve(parse("monkeypox vacine"), terms, known, vocabulary)
    assert words.corrections == {"vacine": "vaccine"}
    assert words.groups[1] == [("vaccin", TYPO_WEIGHT)]
    assert words.semantic_text == "monkeypox vaccine"  # the meaning is searched as corrected


def test_short_and_unrelated_words_are_not_corrected():
    words = resolve(parse("xqzv vaccne vacin"), terms, known, vocabulary)  # 4 letters: no typo allowed
    assert words.groups[0] == [("xqzv", 1.0)]
    assert words.corrections == {"vaccne": "vaccine"}  # "vacin" is two typos away: too many for 5 letters
    nonsense = resolve(parse("qwrtzpl mnbvc"), terms, known, vocabulary)
    assert not nonsense.known and not nonsense.corrections


def test_suggestion_replaces_unknown_words_only():
    plan = parse('"Suez Canall" blocked')
    assert suggestion(plan, lambda w: w.lower() in {"suez", "canal", "blocked"}, vocabulary()) == '"Suez canal" blocked'
    assert suggestion(parse("suez canal"), lambda w: True, vocabulary()) is None
