"""The keyword index: the score matrix gives exactly Whoosh's own BM25F scores, and Whoosh answers phrases."""

import numpy as np
import pytest
from whoosh import query

from conftest import CORPUS, SEEDS, fake_settings
from search import generations as gen
from search.indexer import Indexer
from search.keyword import SEARCH_FIELDS, WEIGHTING, KeywordIndex

QUERIES = [
    "export controls",
    "facial recognition ban police",
    "self-driving car lawsuit",
    "U.S. covid-19 vaccine",
    "chip shortage",
    "the of and",
    "Zürich café",
    "robot taxi night rides",
]


@pytest.fixture(scope="module")
def keyword(tmp_path_factory, embedder):
    corpus = CORPUS if CORPUS.exists() else SEEDS
    settings = fake_settings(tmp_path_factory.mktemp("kw"))
    Indexer(settings, embedder).index([corpus])
    path = gen.require_current(settings.index_path)
    index = KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open()
    assert index.matrix is not None
    yield index
    index.close()


def whoosh_scores(index: KeywordIndex, q: query.Query) -> dict[str, float]:
    with index._ix.searcher(weighting=WEIGHTING) as searcher:
        return {hit["id"]: float(hit.score) for hit in searcher.search(q, limit=None)}


def matrix_scores(index: KeywordIndex, weighted: list[tuple[str, str, float]]) -> dict[str, float]:
    m = index.matrix
    scores = m.scores([(m.key(f, t), w) for f, t, w in weighted])
    return {m.ids[r]: float(scores[r]) for r in np.flatnonzero(scores > 0)}


@pytest.mark.parametrize("text", QUERIES)
def test_matrix_scores_equal_whoosh_scores(keyword, text):
    terms = keyword.analyze(text)
    q = query.Or([query.Term(f, t) for t in terms for f in SEARCH_FIELDS]) if terms else query.NullQuery
    slow = whoosh_scores(keyword, q) if terms else {}
    fast = matrix_scores(keyword, [(f, t, 1.0) for t in terms for f in SEARCH_FIELDS])
    assert fast.keys() == slow.keys()
    assert all(fast[d] == pytest.approx(slow[d], rel=1e-5) for d in slow)


def test_key_terms_score_alike_in_both(keyword):
    weighted = keyword.key_terms("Portland votes to ban facial recognition in shops and restaurants")
    assert weighted and all(f in SEARCH_FIELDS and w > 0 for f, _, w in weighted)
    q = query.Or([query.Term(f, t, boost=w) for f, t, w in weighted])
    slow, fast = whoosh_scores(keyword, q), matrix_scores(keyword, weighted)
    assert fast.keys() == slow.keys() and all(fast[d] == pytest.approx(slow[d], rel=1e-4) for d in slow)


@pytest.mark.parametrize("phrase", ["facial recognition", "self-driving cars", "export controls"])
def test_phrases_match_whoosh(keyword, phrase):
    terms = keyword.analyze(phrase)
    rows = keyword.matrix.rows_of_docnums(keyword.phrase_docnums(terms, SEARCH_FIELDS))
    expected = whoosh_scores(keyword, query.Or([query.Phrase(f, terms) for f in SEARCH_FIELDS]))
    assert {keyword.matrix.ids[r] for r in rows} == set(expected)


def test_analyze_stems_and_drops_stop_words(keyword):
    assert keyword.analyze("The vaccines of Zürich") == ["vaccin", "zürich"]


def test_updates_keep_at_most_two_segments(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    for n in range(6):
        (article_dir / f"new-{n}.md").write_text(
            f'---\ntitle: "Zorbulate update {n}"\nwebUrl: "https://x.org/{n}"\n---\n'
        )
        Indexer(settings, embedder).index([article_dir])
        path = gen.require_current(settings.index_path)
        keyword = KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open()
        with keyword._ix.searcher() as s:
            assert len(s.reader().leaf_readers()) <= 2
        m = keyword.matrix
        assert int(m.presence([m.key("title", "zorbul")]).sum()) == n + 1
        keyword.close()
