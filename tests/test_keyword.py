"""The keyword index: the score matrix answers OR-ed terms exactly as Whoosh's BM25F does."""

import pytest

from conftest import CORPUS, SEEDS, fake_settings
from search import generations as gen
from search.indexer import Indexer
from search.keyword import KeywordIndex

QUERIES = [
    "export controls",
    "facial recognition ban police",
    "self-driving car lawsuit",
    "U.S. covid-19 vaccine",
    "chip chip shortage",
    "word^3 export",
    "the of and",
    "Zürich café",
    "robot taxi night rides",
]


@pytest.fixture(scope="module")
def both(tmp_path_factory, embedder):
    corpus = CORPUS if CORPUS.exists() else SEEDS
    settings = fake_settings(tmp_path_factory.mktemp("kw"))
    Indexer(settings, embedder).index([corpus])
    path = gen.require_current(settings.index_path)
    whoosh_only = KeywordIndex(path / gen.KEYWORD_DIR).open()
    with_matrix = KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open()
    assert with_matrix.matrix is not None and whoosh_only.matrix is None
    yield whoosh_only, with_matrix
    whoosh_only.close()
    with_matrix.close()


@pytest.mark.parametrize("text", QUERIES)
def test_matrix_scores_equal_whoosh_scores(both, text):
    whoosh_only, with_matrix = both
    slow, slow_total = whoosh_only.search(text, 50)
    fast, fast_total = with_matrix.search(text, 50)
    assert fast_total == slow_total
    slow_scores, fast_scores = dict(slow), dict(fast)
    for doc in slow_scores.keys() & fast_scores.keys():
        assert fast_scores[doc] == pytest.approx(slow_scores[doc], rel=1e-5)
    assert [s for _, s in fast] == pytest.approx([s for _, s in slow], rel=1e-5)


def test_score_ids_and_more_like_this_agree(both):
    whoosh_only, with_matrix = both
    ids = [doc for doc, _ in whoosh_only.search("facial recognition", 30)[0]]
    slow = whoosh_only.score_ids("facial recognition police", ids)
    fast = with_matrix.score_ids("facial recognition police", ids)
    assert fast.keys() == slow.keys() and all(fast[k] == pytest.approx(slow[k], rel=1e-5) for k in slow)
    q = whoosh_only.key_terms_query("Portland votes to ban facial recognition in shops and restaurants")
    assert [d for d, _ in with_matrix.run(q, 10)[0]] == [d for d, _ in whoosh_only.run(q, 10)[0]]


@pytest.mark.parametrize("text", ['"facial recognition"', "facial AND police", "provider:Reuters", "facial NOT ban"])
def test_syntax_queries_go_to_whoosh(both, text):
    whoosh_only, with_matrix = both
    assert with_matrix.search(text, 20) == whoosh_only.search(text, 20)


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
        assert keyword.search("zorbulate", 20)[1] == n + 1
        keyword.close()
