"""Calibrate the match set: minimum-should-match and the semantic floors, on the dev sets.

Runs every judged query of news-huffpost (with dates), dbpedia and msmarco through indexes
built once by ``search-cli eval ... --keep-index DIR`` and varies the matching settings in
process. Writes bench/results/match_sweep.json.

    python -m bench.match_sweep --news-index DIR --dbpedia-index DIR --msmarco-index DIR
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
from search.evaluation import NONSENSE, beir_records, default_typos, evaluate_mode, load_beir, url_ids
from search.service import SearchService

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
GRIDS = {
    # the match set: how many words, how close in meaning
    "match": {
        "semantic_floor": (0.35, 0.40, 0.45),
        "semantic_relative": (0.6, 0.65, 0.7, 0.75),
        "match_fraction": (0.6, 0.75, 1.0),
    },
    # the semantic floor relative to the mean of the top few (not the single best) similarities
    "reference": {
        "relative_reference": (1, 3, 5),
        "semantic_relative": (0.7, 0.72, 0.75),
    },
    # the ranking inside it: fusion weight and pseudo-relevance feedback
    "ranking": {
        "semantic_relative": (0.7,),
        "alpha": (0.8, 0.85, 0.9),
        "feedback_docs": (3, 5, 10),
        "feedback_weight": (0.5, 0.75, 1.0, 1.5),
    },
}


def collections(args) -> list[tuple[str, str, dict, object]]:
    out = []
    for name, index_dir, by_url in (
        ("news-huffpost", args.news_index, True),
        ("dbpedia", args.dbpedia_index, False),
        ("msmarco", args.msmarco_index, False),
    ):
        if not index_dir:
            continue
        collection = load_beir(SHARED / name)
        ids = url_ids(collection) if by_url else beir_records(collection)[1]
        out.append((name, index_dir, ids, collection))
    return out


def run(args) -> dict:
    embedder = load_embedder("onnx", None, None)
    found = collections(args)
    rows = []
    grid = GRIDS[args.grid]
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for combo in combos:
        row = {"settings": combo}
        for name, index_dir, ids, collection in found:
            settings = Settings(index_dir=index_dir).with_overrides(**combo)
            typos = _typos(name)
            with SearchService(settings, embedder) as service:
                modes = ("keyword", "semantic", "hybrid") if args.all_modes else ("hybrid",)
                row[name] = {
                    mode: evaluate_mode(service, collection, ids, mode, typos, NONSENSE)["mean"] for mode in modes
                }
        rows.append(row)
        print(json.dumps(_brief(row)), flush=True)
    return {"machine": machine_info(), "grid": grid, "rows": rows}


def _typos(name: str) -> dict[str, str]:
    path = default_typos(SHARED / name)
    if path is None:
        return {}
    return {q["_id"]: q["text"] for q in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def _brief(row: dict) -> dict:
    out = {"settings": row["settings"]}
    for name, modes in row.items():
        if name == "settings":
            continue
        h = modes["hybrid"]
        out[name] = {k: round(v, 4) for k, v in h.items() if k in ("ndcg@10", "p@10", "p@10_newest", "total")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news-index")
    parser.add_argument("--dbpedia-index")
    parser.add_argument("--msmarco-index")
    parser.add_argument("--all-modes", action="store_true")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="match")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / f"sweep_{args.grid}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
