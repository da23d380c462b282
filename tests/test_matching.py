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


def test_dotted_abbreviations_are_words_and_match_their_other_spelling():
    from search.analysis import analyze

    indexed = {analyze(w)[0] for w in ("U.S.", "FBI", "agents", "troops", "3.5", "huffpost.com")}

    def resolved(query: str) -> list[list[str]]:
        words = resolve(parse(query), analyze, indexed.__contains__, None)
        assert words.known
        return [[term for term, _ in group] for group in words.groups]

    # split at its dots, "U.S." was two one-letter words and matched nothing; the index holds it whole
    assert resolved("U.S. troops") == [[analyze("U.S.")[0]], ["troop"]]
    assert resolved("3.5 huffpost.com") == [["3.5"], ["huffpost.com"]]
    # outlets write both "F.B.I." and "FBI"; "US" in capitals is the country, not the stop word
    assert resolved("F.B.I. agents") == [["f.b.i", "fbi"], ["agent"]]
    assert resolved("FBI") == [["fbi"]]  # "F.B.I." is not indexed: no second spelling
    assert resolved("US troops") == [[analyze("U.S.")[0]], ["troop"]]
    assert resolved("troops with us") == [["troop"]]  # "us" in lower case is the stop word


def test_constraints_without_indexed_terms_restrict_nothing():
    from search.analysis import analyze
    from search.matching import nothing_to_match, searchable
    from search.query import Word

    plan = searchable(parse('hurricane -"the" +of'), analyze)
    assert not plan.must and not plan.must_not and plan.words == ("hurricane",)
    assert searchable(parse("topic:Politics -the"), analyze).must == (Word("Politics", "topic"),)
    for query in ('"to be or not to be"', "?!", "title:the", "the"):
        plan = searchable(parse(query), analyze)
        assert nothing_to_match(plan, resolve(plan, analyze, lambda t: True, None)), query
    for query in ("AT&T", "S&P", "-hurricane", "topic:Politics"):  # a name, an exclusion, a filter
        plan = searchable(parse(query), analyze)
        assert not nothing_to_match(plan, resolve(plan, analyze, lambda t: True, None)), query
