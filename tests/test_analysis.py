"""The project's analyzer gives exactly the keyword index's terms; BM25 weights and stored lengths."""

import json
import random

import pytest
from whoosh.analysis import StemmingAnalyzer
from whoosh.analysis.filters import STOP_WORDS
from whoosh.lang.porter import stem as whoosh_stem
from whoosh.util.numeric import byte_to_length, length_to_byte

from conftest import CORPUS, SEEDS, SHARED, shared_or_skip
from search import analysis

HUFFPOST = SHARED / "corpus" / "huffpost-10k" / "news_category_v3_first10k.jsonl"
WHOOSH = StemmingAnalyzer()


def whoosh_terms(text: str) -> list[str]:
    return [t.text for t in WHOOSH(text)]


def assert_same_terms(texts) -> int:
    checked = 0
    for text in texts:
        assert analysis.analyze(text) == whoosh_terms(text), text[:200]
        checked += 1
    return checked


def test_the_stop_words_are_whooshs():
    assert analysis.STOP_WORDS == STOP_WORDS


def test_terms_of_the_seed_articles_and_awkward_text():
    texts = [p.read_text(encoding="utf-8") for p in SEEDS.rglob("*.md")]
    texts += [
        "U.S. export controls, COVID-19 and the 2.5% rate",
        "Yearly yields: yelling, yodeling, flying and the lying spy's says",
        "F*** the café's naïve résumé — İstanbul, ﬁnance, ß, under_score, a.b.c..d",
        "hoping hopping filing filling agreed feed conditional relational generalization",
        "",
    ]
    assert assert_same_terms(texts) == len(texts)


def test_terms_equal_the_keyword_index_on_the_news_corpora():
    texts = [p.read_text(encoding="utf-8") for p in shared_or_skip(CORPUS).glob("*.md")]
    for line in shared_or_skip(HUFFPOST).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts += [record.get("headline") or "", record.get("short_description") or ""]
    assert assert_same_terms(texts) > 20_000


def test_stems_equal_whooshs_on_random_words():
    rng = random.Random(13)
    letters = "aeiouyybcdlmnstgrwxz"
    suffixes = ["", "ing", "ed", "eed", "ies", "sses", "ational", "ization", "ement", "sion", "tion", "ll", "e", "y"]
    for _ in range(20_000):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 10))) + rng.choice(suffixes)
        assert analysis.stem(word) == whoosh_stem(word), word


@pytest.mark.parametrize("length", [1, 2, 9, 10, 11, 12, 15, 100, 5_000, 106_373, 106_374, 10**6])
def test_stored_lengths_round_as_the_keyword_index_does(length):
    assert analysis.stored_length(length) == byte_to_length(length_to_byte(length))


def test_bm25_weight_saturates_and_normalises_by_length():
    assert analysis.bm25_weight(1, 10, 10) == pytest.approx(1.0)
    assert analysis.bm25_weight(2, 10, 10) > analysis.bm25_weight(1, 10, 10)
    assert analysis.bm25_weight(100, 10, 10) < analysis.K1 + 1
    assert analysis.bm25_weight(1, 5, 10) > analysis.bm25_weight(1, 20, 10)


def test_the_keyword_index_analyzes_with_the_projects_analyzer(tmp_path):
    from search.keyword import KeywordIndex

    index = KeywordIndex(tmp_path / "kw").create()
    try:
        text = "The U.S. export controls are hoping for yearly flying"
        assert index.analyze(text) == analysis.analyze(text) == whoosh_terms(text)
        assert index._ix.schema["title"].analyzer[-1].stemfn is analysis.stem
    finally:
        index.close()
