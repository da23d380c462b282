import json
import math
import time
from pathlib import Path

import pytest

from search import metrics
from search.errors import ConfigError
from search.evaluation import (
    beir_records,
    corpus_articles,
    format_report,
    load_beir,
    related_truth,
    run_beir,
    run_related,
)
from search.service import SearchService
from search.urls import article_id
from tests.conftest import fake_settings

TOY = Path(__file__).parent / "data" / "toy_beir"


# -- metrics, against hand-computed figures ---------------------------------------------------
def test_ndcg_linear_gain_and_ideal_from_all_judged():
    # DCG = 2/log2(2) + 0 + 1/log2(4) = 2.5; the ideal ranks a, d (both 2) then c (1),
    # including d, which was not retrieved: 2 + 2/log2(3) + 1/2.
    ideal = 2 + 2 / math.log2(3) + 0.5
    assert metrics.ndcg(["a", "b", "c"], {"a": 2, "c": 1, "d": 2, "e": 0}) == pytest.approx(2.5 / ideal)
    assert 2.5 / ideal == pytest.approx(0.66457, abs=1e-5)  # exponential gain would give 0.649


def test_ndcg_cutoff_perfect_and_empty():
    assert metrics.ndcg(["x", "a"], {"a": 1}, k=1) == 0.0
    assert metrics.ndcg(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    assert metrics.ndcg(["a"], {"a": 0}) == 0.0
    assert metrics.ndcg([], {"a": 1}) == 0.0


def test_recall_counts_grades_above_zero():
    qrels = {"a": 2, "c": 1, "d": 2, "e": 0}
    assert metrics.recall(["a", "e", "c"], qrels, k=2) == pytest.approx(1 / 3)
    assert metrics.recall(["a", "e", "c"], qrels, k=3) == pytest.approx(2 / 3)
    assert metrics.recall(["a"], {"a": 0}) == 0.0


def test_reciprocal_rank_first_relevant_within_k():
    qrels = {"a": 1, "c": 0}
    assert metrics.reciprocal_rank(["b", "c", "a"], qrels, k=10) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(["b", "c", "a"], qrels, k=2) == 0.0
    assert metrics.reciprocal_rank(["a"], qrels) == 1.0


def test_repeated_ids_count_once():
    assert metrics.ndcg(["a", "a", "b"], {"a": 1, "b": 1}) == pytest.approx(1.0)
    assert metrics.mean([]) == 0.0
    assert metrics.mean([1.0, 0.0]) == 0.5


# -- BEIR loading -----------------------------------------------------------------------------
def test_load_beir_skips_unjudged_queries():
    c = load_beir(TOY)
    assert list(c.queries) == ["q1", "q2", "q3", "q4", "q5"]
    assert c.skipped == 1
    assert c.qrels["q1"] == {"d01": 2, "d03": 2, "d02": 1, "d04": 0}
    assert len(c.corpus) == 20


def test_ids_stay_distinct_through_url_canonicalisation():
    records, ids = beir_records(load_beir(TOY))
    assert len(records) == len(ids) == 20
    assert {
        "http://example.com/chess",
        "http://example.com/chess/",
        "HTTP://EXAMPLE.com/chess",
        "http://example.com/chess?utm_source=x",
        "d 13",
        "d13",
    } <= set(ids.values())
    assert all(ids[article_id(r.url)] for r in records)
    assert next(r for r in records if ids[article_id(r.url)] == "d08").fields["title"] == ""


def test_missing_files_and_bad_mode(tmp_path):
    with pytest.raises(ConfigError, match="not a BEIR collection"):
        load_beir(tmp_path)
    with pytest.raises(ConfigError, match="mode"):
        run_beir(TOY, fake_settings(tmp_path / "i"), ["bogus"])


# -- the harness end to end (hash embedder) -----------------------------------------------------
@pytest.fixture(scope="module")
def toy_result(tmp_path_factory, embedder):
    settings = fake_settings(tmp_path_factory.mktemp("toy-eval"))
    started = time.perf_counter()
    result = run_beir(TOY, settings, "all", embedder=embedder)
    result["wall"] = time.perf_counter() - started
    return result


def test_run_beir_reports_every_mode_and_query(toy_result):
    assert toy_result["documents"] == 20 and toy_result["queries"] == 5 and toy_result["skipped_queries"] == 1
    assert list(toy_result["modes"]) == ["keyword", "semantic", "hybrid"]
    for figures in toy_result["modes"].values():
        assert set(figures["per_query"]) == {"q1", "q2", "q3", "q4", "q5"}
        mean = figures["mean"]
        assert all(0.0 <= mean[k] <= 1.0 for k in ("ndcg@10", "recall@100", "mrr@10", "p@10", "p@10_newest"))
        assert mean["total_stable"] == 1.0 and mean["total"] >= 1 and mean["nonsense_results"] == 0
    json.dumps(toy_result)  # --json prints it as is
    assert toy_result["wall"] < 30


def test_keyword_mode_finds_the_lexical_matches(toy_result):
    keyword = toy_result["modes"]["keyword"]
    assert keyword["mean"]["ndcg@10"] > 0.9
    # all four URL-like ids of q3 come back as four distinct documents under their own _id
    assert keyword["per_query"]["q3"]["recall@100"] == 1.0


def test_format_report(toy_result):
    text = format_report(toy_result)
    assert "nDCG@10" in text and "hybrid" in text and "1 without judgements skipped" in text


# -- more like this -----------------------------------------------------------------------------
def _article(path: Path, title: str, url: str, related: list[tuple[str, str]]) -> None:
    lines = ["---", f'title: "{title}"', f'webUrl: "{url}"', f'excerpt: "{title} in detail."']
    if related:
        lines.append("related:")
        lines += [f'  - title: "{t}"\n    webUrl: "{u}"' for t, u in related]
    path.write_text("\n".join([*lines, "---", ""]), encoding="utf-8")


@pytest.fixture
def news(tmp_path) -> Path:
    root = tmp_path / "news"
    root.mkdir()
    _article(
        root / "a.md",
        "Robotaxi pilot expands",
        "https://n.example/a",
        [("Robotaxi fleet grows", "https://n.example/b"), ("Robotaxi stub story", "https://other.example/s")],
    )
    _article(root / "b.md", "Robotaxi fleet grows", "https://n.example/b", [])
    _article(root / "c.md", "Chip export rules tighten", "https://n.example/c", [])
    return root


def test_related_truth_main_and_linked(news):
    truth = related_truth(corpus_articles(news))
    a, b, s = (article_id(u) for u in ("https://n.example/a", "https://n.example/b", "https://other.example/s"))
    assert truth["main"] == {a: [b]}
    assert truth["linked"] == {a: [b, s]}


def test_run_related(news, tmp_path, embedder):
    result = run_related(news, fake_settings(tmp_path / "i"), embedder=embedder)
    assert result["articles"] == 4
    assert result["truth"]["main"] == {"articles": 1, "links": 1}
    assert set(result["configs"]) == {"keyword", "semantic", "fused"}
    assert result["configs"]["keyword"]["main"]["mean"]["recall@10"] == 1.0
    assert "linked recall@10" in format_report(result)


# -- the fusion helpers behind the tuned defaults ------------------------------------------------
def test_rocchio_moves_the_query_towards_the_feedback_mean():
    import numpy as np

    from search.fusion import rocchio

    q = np.array([1.0, 0.0], dtype=np.float32)
    docs = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    moved = rocchio(q, docs, 1.0)
    assert moved == pytest.approx([2**-0.5, 2**-0.5])
    assert rocchio(q, docs[:0], 1.0) is q and rocchio(q, docs, 0.0) is q


def test_decay_halves_per_halflife():
    from search.fusion import decay

    fused = decay([("a", 1.0), ("b", 0.8), ("c", 0.5)], {"a": 8.0, "b": 0.0}, halflife=4.0)
    assert fused == [("b", 0.8), ("c", 0.5), ("a", pytest.approx(0.25))]


@pytest.mark.model
def test_toy_collection_with_the_real_model(tmp_path):
    settings = fake_settings(tmp_path / "i", index_embedder="onnx-int8", query_embedder="onnx")
    result = run_beir(TOY, settings, "all")
    assert result["index_model"].startswith("all-MiniLM-L6-v2:onnx-int8")
    for mode in ("semantic", "hybrid"):
        assert result["modes"][mode]["mean"]["ndcg@10"] > 0.8
        assert result["modes"][mode]["mean"]["recall@100"] >= 0.9  # the match set may end before a weak match


def test_corpus_dates_are_kept_for_newest_first(tmp_path, embedder):
    coll = tmp_path / "dated"
    (coll / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "old", "title": "Storm hits coast", "text": "A storm hits the coast.", "published": "2019-01-01"},
        {"_id": "new", "title": "Storm hits coast again", "text": "Another storm.", "metadata": {"date": "2021-05-05"}},
        {"_id": "other", "title": "Markets rally", "text": "Stocks rise."},
    ]
    (coll / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (coll / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "storm coast"}))
    (coll / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tnew\t2\n")
    settings = fake_settings(tmp_path / "ix")
    result = run_beir(coll, settings, "keyword", embedder=embedder, index_dir=tmp_path / "ix")
    assert result["modes"]["keyword"]["per_query"]["q"]["p@10_newest"] == pytest.approx(0.1)
    with SearchService(settings, embedder) as svc:
        newest = svc.search("storm coast", mode="keyword", sort="newest").hits
    assert [h.article.published.year for h in newest][:2] == [2021, 2019]
