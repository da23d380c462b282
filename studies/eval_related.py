"""Evaluate "more like this" on the news corpus: the product's settings, then a sweep of related_alpha and
related_halflife on the same index.

    python -m studies.eval_related
    python -m studies.eval_related --out bench/results/eval_related.json

Figures: Recall@10 and MRR@10 of related(id, limit=10) against the publisher-linked items that are main
articles of the corpus ("main") and against every linked item ("linked").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from search.config import load_settings
from search.embedding import load_embedder
from search.evaluation import corpus_articles, evaluate_related, format_report, related_truth, run_related

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "smartable-ai"


def sweep_grid() -> dict[str, dict]:
    grid = {f"keyword only, halflife={h}": {"related_alpha": 0.0, "related_halflife": h} for h in (0.0, 4.0)}
    grid |= {f"semantic only, halflife={h}": {"related_alpha": 1.0, "related_halflife": h} for h in (0.0, 4.0)}
    for alpha in (0.2, 0.3, 0.4, 0.5, 0.8):
        for halflife in (0.0, 2.0, 3.0, 4.0, 6.0, 8.0):
            grid[f"related_alpha={alpha}, halflife={halflife}"] = {"related_alpha": alpha, "related_halflife": halflife}
    grid["rrf k=60, halflife=4.0"] = {"fusion": "rrf", "related_halflife": 4.0}
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--keep", type=Path, default=ROOT / "bench" / "work" / "eval-index" / "news")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_related.json")
    args = parser.parse_args()
    settings = load_settings()
    product = run_related(args.corpus, settings, index_dir=args.keep)
    print(format_report(product), flush=True)
    truth = related_truth(corpus_articles(args.corpus))
    embedder = load_embedder(settings.query_embedder, settings.model_path or None, settings.model_cache or None)
    local = settings.with_overrides(index_dir=str(args.keep))
    sweep = {}
    for name, overrides in sweep_grid().items():
        figures = evaluate_related(local.with_overrides(**overrides), truth, embedder)
        sweep[name] = {v: {m: round(x, 4) for m, x in figures[v]["mean"].items()} for v in truth}
        print(f"{name:40} {sweep[name]}", flush=True)
    for figures in product["configs"].values():
        for variant in truth:
            figures[variant].pop("per_article")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"product": product, "sweep": sweep}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
