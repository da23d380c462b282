"""The benchmark code end to end on a tiny corpus with the hash embedder, so it cannot rot."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench import table
from bench.ann import compare, recommend
from bench.common import Context, parse_size, percentiles, size_label, target
from bench.corpus import build_corpus, load_pool, synthesize, to_markdown
from bench.indexing import bench_index
from bench.parallel import bench_parallel
from bench.queries import make_queries
from bench.query import bench_warm
from bench.serving import bench_serve
from conftest import SEEDS
from search.loader import iter_article_files, load_file, parse_markdown
from search.merge import merge_records

HASH = {"SEARCH_INDEX_EMBEDDER": "hash", "SEARCH_QUERY_EMBEDDER": "hash"}


@pytest.fixture(scope="module")
def pool():
    return load_pool(SEEDS)


@pytest.fixture
def ctx(tmp_path) -> Context:
    return Context(
        results=tmp_path / "results",
        corpora=tmp_path / "corpora",
        work=tmp_path / "work",
        size=50,
        source=SEEDS,
        queries=20,
        env=dict(HASH),
        command="pytest tests/test_bench.py",
    )


def test_synthetic_articles_are_deterministic_unique_and_labelled(pool):
    first = list(synthesize(pool, 50, seed=1))
    assert first == list(synthesize(pool, 50, seed=1))
    assert first != list(synthesize(pool, 50, seed=2))
    assert list(synthesize(pool, 20, seed=1)) == first[:20]  # a smaller corpus is a prefix of a bigger one
    texts = [f"{a['title']}. {a['excerpt']}" for a in first]
    assert len(set(texts)) == len(texts)
    assert len({a["webUrl"] for a in first}) == len(first)
    assert all(a["synthetic"] and a["provider"]["name"].endswith("(synthetic)") for a in first)
    words = sorted(len(t.split()) for t in texts)
    assert 25 <= words[len(words) // 2] <= 60


def test_markdown_round_trips_through_the_loader(pool):
    article = next(a for a in synthesize(pool, 50, seed=0) if a.get("related"))
    records = parse_markdown(to_markdown(article), "x.md")
    assert records[0].fields["title"] == article["title"]
    assert records[0].fields["excerpt"] == article["excerpt"]
    assert len(records) == 1 + len(article["related"])


@pytest.mark.parametrize("fmt", ["md", "jsonl"])
def test_corpus_files_load_into_exactly_n_articles(tmp_path, fmt):
    out = build_corpus(50, fmt, seed=0, out_root=tmp_path, source=SEEDS)
    assert build_corpus(50, fmt, seed=0, out_root=tmp_path, source=SEEDS) == out  # reused, not rebuilt
    results = [load_file(p) for p in iter_article_files([out])]
    assert not [e for r in results for e in r.errors]
    articles = merge_records(r for res in results for r in res.records)
    assert len(articles) == 50  # related items point at other synthetic articles: no extra stubs
    assert not any(a.is_stub for a in articles.values())


def test_queries_are_distinct(pool):
    queries = make_queries(pool, 300)
    assert len(set(queries)) == 300
    assert queries[0] == "export controls"


def test_helpers():
    assert parse_size("10k") == 10_000 and parse_size("1m") == 1_000_000 and parse_size("50") == 50
    assert size_label(100_000) == "100k" and size_label(50) == "50"
    p = percentiles([float(x) for x in range(1, 101)])
    assert (p["p50"], p["p99"], p["max"]) == (50.0, 99.0, 100.0)
    assert target("x", 2.0, 1.0, "s", "cmd")["passed"] is False
    assert target("x", 2.0, 1.0, "s", "cmd", ">=")["passed"] is True


@pytest.mark.slow
def test_index_and_warm_benchmarks_write_valid_results(ctx, monkeypatch):
    for key, value in HASH.items():
        monkeypatch.setenv(key, value)
    index = json.loads(bench_index(ctx).read_text())
    assert index["machine"]["cores"] >= 1 and "numpy" in index["machine"]["packages"]
    assert index["figures"]["articles"] == 50
    assert index["figures"]["unchanged"]["added"] == 0
    assert index["figures"]["one_changed"]["embedded"] == 1
    assert index["figures"]["restored"]["embedded"] == 0
    assert {"load", "merge", "embed", "write", "stories", "commit"} <= set(index["figures"]["first_build"]["stages"])
    warm = json.loads(bench_warm(replace(ctx, queries=10)).read_text())
    assert warm["figures"]["hybrid_miss"]["n"] == 10
    assert "keyword: match set (score matrix)" in warm["figures"]["breakdown_ms"]
    assert warm["figures"]["profile"]["by_tottime"]
    assert all(t["passed"] in (True, False) for t in warm["targets"] + index["targets"])


def test_bench_parallel_runs_workers_then_a_writer_that_embeds_nothing(ctx):
    data = json.loads(bench_parallel(ctx).read_text())
    figures = data["figures"]
    reports = figures["embed_workers"]["reports"]
    assert [r["shard"] for r in reports] == ["1/2", "2/2"]
    assert sum(r["articles"] for r in reports) == figures["one_process"]["articles"] == 50
    assert figures["writer"]["articles"] == 50 and figures["writer_embedded"] == 0
    assert figures["speedup_wall"] > 0 and [t["passed"] for t in data["targets"]][1] is True
    assert figures["one_embed_worker"]["reports"][0]["articles"] == 50 and figures["embed_scaling"] > 0


def test_table_is_rendered_between_the_markers(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    row = target("Cold query", 0.5, 1.0, "s", "search-cli query 'a|b'")
    data = {
        "name": "cold",
        "machine": {"cpu_model": "CPU", "cores": 2, "ram_gb": 24, "python": "3.11", "loadavg": [1]},
        "targets": [row, target("Rate", 100.0, 150, "req/s", "serve", ">=")],
    }
    (results / "cold.json").write_text(json.dumps(data))
    (results / "other.json").write_text(json.dumps({"runtimes": {}}))  # no targets: ignored
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Usage\n\ntext\n")
    assert table.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n## Usage\n\ntext\n")
    assert "## Performance" in text and text.count(table.START) == 1
    assert "| Cold query ≤ 1 s | 0.5 s | pass | `cold` | `search-cli query 'a\\|b'` | 1 |" in text
    assert "| **FAIL** |" in text
    assert table.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0
    assert table.main(["--results", str(results), "--readme", str(readme)]) == 0
    assert readme.read_text() == text  # idempotent


@pytest.mark.slow
def test_serve_benchmark_loads_a_real_server(ctx, monkeypatch):
    for key, value in HASH.items():
        monkeypatch.setenv(key, value)
    ctx = replace(ctx, serve_seconds=3.0, serve_requests=60, serve_threads=(2,))
    result = json.loads(bench_serve(ctx).read_text())
    run = result["figures"]["runs"][0]
    assert run["errors"] == 0 and run["requests"] == 60
    assert run["server_rss_mb"] > 0 and run["latency_ms"]["p99"] > 0


def test_ann_comparison_recall_and_recommendation():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((3000, 16)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    out = compare(xb, {"q": xb[:20]}, build_threads=1)
    exact = out["Flat (exact)"]["rows"][0]["q"]
    assert exact["recall@10"] == 1.0 and exact["recall@100"] == 1.0
    assert all(data["bytes"] > 0 for data in out.values())
    assert exact["recall@10_tie_tolerant"] == 1.0
    best = recommend(out)
    assert not best or best["fastest"]["recall@10"] >= 0.98 <= best["smallest"]["recall@10"]


def test_bench_modules_import_each_other_without_cycles():
    """Imports between bench/ modules (module level or inside functions) form no cycle."""
    import ast
    from graphlib import CycleError, TopologicalSorter

    bench = Path(__file__).resolve().parent.parent / "bench"
    graph: dict[str, set[str]] = {}
    for path in bench.glob("*.py"):
        deps = graph.setdefault(path.stem, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("bench."))
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in bench/: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("name", ["eval_beir", "eval_keyword", "eval_related", "eval_sweep", "embed_parity"])
def test_the_finished_studies_still_import(name):
    """studies/ is not run by anything; this keeps its scripts importable as the code moves on."""
    import importlib

    assert callable(importlib.import_module(f"studies.{name}").main)


@pytest.mark.slow
def test_ready_benchmark_starts_a_real_server_twice(ctx, monkeypatch):
    from bench.ready import AFTER_FIRST, bench_ready

    for key, value in HASH.items():
        monkeypatch.setenv(key, value)
    result = json.loads(bench_ready(replace(ctx, size=50)).read_text())
    for start in ("empty_model_cache", "warm_model_cache"):
        run = result["figures"][start]
        assert 0 < run["port_open_s"] <= run["ready_s"]
        assert run["first_search_ms"] > 0 and run[f"median_of_next_{AFTER_FIRST}_ms"] > 0
    assert all(t["passed"] in (True, False) for t in result["targets"])


def test_stories_benchmark_on_tiny_golds(ctx, tmp_path):
    """Two one-outlet 'months' and a cross-outlet grouping, hash embedder: every figure and target is written."""
    from bench.stories import bench_stories

    corpus = tmp_path / "news.jsonl"
    rows = []
    for k in range(60):  # two months of one outlet: a three-part storm story in each, the rest unrelated
        month, n = (9, k) if k < 30 else (10, k - 30)
        storm = n in (3, 4, 5)
        rows.append(
            {
                "webUrl": f"https://outlet.example/{k}",
                "title": f"Hurricane Dorian hits the Bahamas, part {n}" if storm else f"Filler{k} item{k} news{k}",
                "publishedDateTime": f"2019-{month:02d}-{n + 1:02d}",
                "provider": "Outlet",
            }
        )
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    months = tmp_path / "months"
    months.mkdir()
    for month, first in ((9, 0), (10, 30)):
        story = [f"https://outlet.example/{first + n}" for n in (3, 4, 5)]
        (months / f"m{month}.json").write_text(
            json.dumps(
                {
                    "corpus": "../news.jsonl",
                    "published": {"from": f"2019-{month:02d}-01", "to": f"2019-{month:02d}-30"},
                    "stories": [story],
                }
            )
        )
    second = months / "second"  # the months labelled again: September's story holds two of its three days
    second.mkdir()
    for month, first, days in ((9, 0, (3, 4)), (10, 30, (3, 4, 5))):
        (second / f"m{month}.json").write_text(
            json.dumps(
                {
                    "corpus": "../../news.jsonl",
                    "published": {"from": f"2019-{month:02d}-01", "to": f"2019-{month:02d}-30"},
                    "stories": [[f"https://outlet.example/{first + n}" for n in days]],
                }
            )
        )
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "copies.json").write_text(json.dumps({"corpus": "../news.jsonl", "stories": []}))
    ctx = replace(ctx, env={"SEARCH_INDEX_EMBEDDER": "hash"})
    test = tmp_path / "test-months"  # a test month: scored with the shipped model only
    for folder, days, corpus in ((test, (3, 4, 5), "../news.jsonl"), (test / "second", (3, 4), "../../news.jsonl")):
        folder.mkdir()
        (folder / "t10.json").write_text(
            json.dumps(
                {
                    "corpus": corpus,
                    "published": {"from": "2019-10-01", "to": "2019-10-30"},
                    "stories": [[f"https://outlet.example/{30 + n}" for n in days]],
                }
            )
        )
    result = json.loads(bench_stories(ctx, shared=shared, months_gold=months, held_out_gold=test).read_text())
    figures = result["figures"]
    assert set(figures["quality"]["sets"]) == {"copies", "m9", "m10"}
    assert figures["quality"]["sets"]["m9"]["gold_pairs"] == 3
    best = figures["quality"]["months_pooled"]["best_cosine"]
    by_threshold = best["pairwise_f1_by_threshold"]
    assert set(by_threshold) == {"0.45", "0.5", "0.55", "0.6", "0.65", "0.7", "0.75"}
    assert best["pooled"]["pairwise"]["f1"] == max(by_threshold.values()) == by_threshold[str(best["threshold"])]
    cv = figures["cross_validated"]
    assert set(cv["held_out"]) == {"m9", "m10"} and cv["held_out"]["m9"]["gold_pairs"] == 3
    assert cv["fitted_on"] == "both labellings"  # as `--fit` fits the shipped model
    assert set(cv["pooled"]) == {"stories", "cosine_baseline"} and set(cv["l2_sweep"]) == {"0.01", "0.1", "1.0"}
    assert list(cv["forward_in_time"]["held_out"]) == ["m10"]  # fitted on m9, the month before it
    again = figures["quality"]["second_labelling"]
    assert again["agreement"]["sets"]["m9"]["gold_pairs"] == [3, 1]
    assert (
        again["agreement"]["sets"]["m9"]["pairwise"]["f1"] == 0.5
        and again["agreement"]["sets"]["m10"]["pairwise"]["f1"] == 1.0
    )
    assert set(again) == {"agreement", "stories", "stories_by_set", "cosine_baseline"}
    assert set(cv["against_second"]["held_out"]) == {"m9", "m10"} and "pairwise" in cv["against_second"]["pooled"]
    assert figures["cost"]["add_newest"]["added"] == 12 and figures["cost"]["add_newest"]["existing"] == 48
    assert figures["cost"]["add_newest"]["same_as_rebuild"]["pairwise"]["f1"] == 1.0
    held = figures["held_out"]
    assert set(held["sets"]) == {"t10"} and held["sets"]["t10"]["gold_pairs"] == 3
    assert held["stories"]["pairwise"] == figures["quality"]["sets"]["m10"]["stories"]["pairwise"]  # same story
    assert held["second_labelling"]["agreement"]["pooled"]["pairwise"]["f1"] == 0.5
    assert held["cosine_at_dev_threshold"]["threshold"] == best["threshold"]  # chosen on the dev months
    assert "pairwise" in held["cosine_at_dev_threshold"]["stories"]
    assert "t10" not in figures["cross_validated"]["held_out"]  # a test month is never fitted on
    names = [t["target"] for t in result["targets"]]
    assert sum("held-out months (t10), shipped model" in n for n in names) == 2
    assert any("copies: pairwise F1" in n for n in names) and any("leave one month out" in n for n in names)
    assert any(n.startswith("Story assignment, 60 articles") for n in names)


def test_a_noise_feature_is_one_more_column_and_leaves_the_pairs_as_they_were(tmp_path):
    from bench.stories import with_noise
    from search.embedding import HashEmbedder
    from search.story_eval import FeaturedSets, cross_validate, eval_sets, load_golds

    rows = [
        {
            "webUrl": f"https://outlet.example/{k}",
            "title": f"Hurricane Dorian hits the Bahamas, part {k % 30}" if k % 30 in (3, 4, 5) else f"Filler{k} x{k}",
            "publishedDateTime": f"2019-{9 + k // 30:02d}-{k % 30 + 1:02d}",
            "provider": "Outlet",
        }
        for k in range(60)
    ]
    (tmp_path / "news.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for month, first in ((9, 0), (10, 30)):
        gold = {"corpus": "news.jsonl", "published": {"from": f"2019-{month:02d}-01", "to": f"2019-{month:02d}-30"}}
        gold["stories"] = [[f"https://outlet.example/{first + n}" for n in (3, 4, 5)]]
        (tmp_path / f"m{month}.json").write_text(json.dumps(gold))
    months = eval_sets(load_golds(tmp_path), HashEmbedder())
    featured = FeaturedSets(months)
    _, pairs = next(iter(featured.corpora.values()))
    before = pairs.features.copy()
    noisy = with_noise(featured, seed=0)
    _, noisy_pairs = next(iter(noisy.corpora.values()))
    assert noisy_pairs.features.shape == (len(pairs.left), before.shape[1] + 1)
    assert np.array_equal(noisy_pairs.features[:, :-1], before) and np.array_equal(pairs.features, before)
    assert np.all(np.abs(noisy_pairs.features[:, -1]) <= 1.0) and np.std(noisy_pairs.features[:, -1]) > 0
    again = next(iter(with_noise(featured, seed=0).corpora.values()))[1].features[:, -1]
    other = next(iter(with_noise(featured, seed=1).corpora.values()))[1].features[:, -1]
    assert np.array_equal(again, noisy_pairs.features[:, -1]) and not np.array_equal(other, again)
    held_out = cross_validate(months, featured=noisy)["held_out"]
    assert all(len(h["weights"]) == before.shape[1] + 2 for h in held_out.values())  # intercept and the new one


def test_stories_sweep_reads_a_setting_and_its_values():
    import argparse

    from bench.stories import _sweep

    parser = argparse.ArgumentParser(prog="stories")
    assert _sweep(parser, "min_link_share=0.2,0.25") == ("min_link_share", [0.2, 0.25])
    assert _sweep(parser, "neighbours=10,20") == ("neighbours", [10, 20])
    for bad in ("weights=1", "nope=1", "neighbours=1.5", "window_days="):
        with pytest.raises(SystemExit):
            _sweep(parser, bad)
