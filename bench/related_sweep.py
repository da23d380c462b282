"""Tune "more like this": its floors and its time decay, on publisher links and judged queries together.

Publisher links (``../shared/corpus/smartable-ai``) reward same-week coverage; the judged news
queries (``../shared/eval/news-huffpost`` over the HuffPost articles) reward the same subject
months apart. Indexes are built once (``search-cli eval ... --keep-index DIR``); settings vary
in process. Writes bench/results/sweep_related.json.

    python -m bench.related_sweep --links-index DIR --news-index DIR [--grid decay|floors]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from bench.common import RESULTS, machine_info
from search.config import Settings
from search.embedding import load_embedder
from search.evaluation import corpus_articles, evaluate_related, judged_related_truth, load_beir, related_truth, url_ids

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
GRIDS = {
    "decay": {
        "related_halflife": (2.0, 4.0, 8.0, 16.0, 0.0),
        "related_decay_floor": (0.0, 0.25, 0.5, 0.75),
    },
    "floors": {
        "related_floor": (0.0, 0.3, 0.4, 0.5),
        "related_keyword_floor": (0.0, 0.1, 0.2, 0.3),
    },
    "keyword_similarity": {"related_keyword_similarity": (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links-index", required=True)
    parser.add_argument("--news-index", required=True)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="decay")
    parser.add_argument("--set", action="append", default=[], help="name=value held fixed, repeatable")
    args = parser.parse_args()
    fixed = dict(item.split("=", 1) for item in args.set)
    links = related_truth(corpus_articles(SHARED / "corpus" / "smartable-ai"))
    news = load_beir(SHARED / "eval" / "news-huffpost")
    judged = {"judged": judged_related_truth(news, url_ids(news))}
    embedder = load_embedder("onnx", None, None)
    grid = GRIDS[args.grid]
    rows = []
    started = time.perf_counter()
    for values in itertools.product(*grid.values()):
        combo = dict(fixed, **dict(zip(grid, values, strict=True)))
        row = {"settings": combo}
        for name, index_dir, truth in (("links", args.links_index, links), ("judged", args.news_index, judged)):
            result = evaluate_related(Settings(index_dir=index_dir).with_overrides(**combo), truth, embedder)
            row[name] = {variant: result[variant]["mean"] for variant in truth}
            row[name]["shown"] = result["shown"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"machine": machine_info(), "grid": grid, "fixed": fixed, "rows": rows}
    out["seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / f"sweep_related_{args.grid}.json").write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
