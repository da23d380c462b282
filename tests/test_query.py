"""The query language: what is a free word, what constrains, what is refused."""

import pytest

from search.errors import InvalidQuery
from search.query import All, Any, Phrase, Word, parse


def test_plain_words_are_free_words_and_the_text_is_embedded():
    plan = parse("Ever Given stuck in Suez Canal")
    assert plan.words == ("Ever", "Given", "stuck", "in", "Suez", "Canal")
    assert not plan.must and not plan.must_not and not plan.any_word
    assert plan.semantic_text == "Ever Given stuck in Suez Canal"


def test_phrase_and_not_constrain():
    plan = parse('"Will Smith" NOT slap')
    assert plan.words == () and plan.must == (Phrase("Will Smith"),) and plan.must_not == (Word("slap"),)
    assert plan.semantic_text == "Will Smith"


def test_fields_constrain_and_only_text_fields_are_embedded():
    plan = parse('topic:Sports super bowl provider:"The Verge" title:final')
    assert plan.words == ("super", "bowl")
    assert Word("Sports", "topic") in plan.must and Phrase("The Verge", "provider") in plan.must
    assert Word("final", "title") in plan.must
    assert plan.semantic_text == "super bowl final"


def test_signs_and_operators():
    plan = parse("+climate protest -riot")
    assert plan.must == (Word("climate"),) and plan.must_not == (Word("riot"),) and plan.words == ("protest",)
    plan = parse("biden OR trump")
    assert plan.any_word and plan.words == ("biden", "trump") and not plan.must
    plan = parse("ukraine weapons AND tanks")
    assert plan.words == ("ukraine",) and plan.must == (All((Word("weapons"), Word("tanks"))),)
    plan = parse("climate (protest OR strike)")
    assert plan.words == ("climate",) and plan.must == (Any((Word("protest"), Word("strike"))),)
    assert parse("NOT (a b)").must_not == (Any((Word("a"), Word("b"))),)
    plan = parse("a AND NOT b")
    assert plan.words == ("a",) and plan.must_not == (Word("b"),)


def test_hyphens_inside_words_are_not_negation():
    plan = parse("same-sex marriage covid-19")
    assert plan.words == ("same-sex", "marriage", "covid-19") and not plan.must_not


def test_prefixes_and_wildcards():
    assert parse("vaccin*").must == (Word("vaccin", prefix=True),)
    assert parse("va*cine").must == (Phrase("va cine"),)  # a wildcard inside a word cannot be bounded


@pytest.mark.parametrize("text", ['"unclosed', "((a", "a)", "AND", "a AND", "NOT", "+", "x" * 5000])
def test_malformed_syntax_reads_as_plain_words(text):
    plan = parse(text)
    assert not plan.must and not plan.must_not


def test_ranges_are_refused():
    for text in ("title:[a TO z]", "published:{2020 TO *}", "[a TO z] OR x"):
        with pytest.raises(InvalidQuery, match="since and until"):
            parse(text)
