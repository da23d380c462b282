"""Sweep fusion settings on the dev sets: one index per collection, many query-time configurations.

    python -m studies.eval_sweep                      # int8 and fp32 document vectors, all configurations
    python -m studies.eval_sweep --kinds onnx-int8 --keep bench/work/eval-index

Each index is built once (embeddings cached in it) and every configuration is a SearchService
with other Settings on the same index_dir. Writes mean figures per configuration to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from search.config import Settings, load_settings
from search.embedding import load_embedder
from search.evaluation import beir_records, evaluate_mode, load_beir
from search.indexer import Indexer
from search.service import SearchService

ROOT = Path(__file__).resolve().parent.parent
DEV_SETS = [ROOT.parent / "shared" / "eval" / name for name in ("dbpedia", "msmarco")]
OFF = {"feedback_docs": 0}


def configurations() -> dict[str, dict]:
    """Name -> setting overrides (anything not named keeps its default)."""
    configs: dict[str, dict] = {"previous default: convex alpha=0.8, no feedback": {"alpha": 0.8, **OFF}}
    for alpha in (0.5, 0.7, 0.8, 0.85, 0.9, 0.95):
        configs[f"convex alpha={alpha}, no feedback"] = {"alpha": alpha, **OFF}
        configs[f"convex alpha={alpha}, feedback 5 x 0.75"] = {
            "alpha": alpha,
            "feedback_docs": 5,
            "feedback_weight": 0.75,
        }
    for docs in (3, 5, 10):
        for weight in (0.5, 0.75, 1.0):
            configs[f"convex alpha=0.9, feedback {docs} x {weight}"] = {
                "alpha": 0.9,
                "feedback_docs": docs,
                "feedback_weight": weight,
            }
    for k in (10, 60):
        configs[f"rrf k={k}, no feedback"] = {"fusion": "rrf", "rrf_k": k, **OFF}
        configs[f"rrf k={k}, feedback 5 x 0.75"] = {"fusion": "rrf", "rrf_k": k, "feedback_docs": 5}
    for depth in (20, 50, 200):  # candidates per retriever for the first page (10 hits)
        configs[f"defaults, depth={depth}"] = {"candidates": 1, "min_candidates": depth}
    return configs


def build(collection: Path, settings: Settings) -> tuple:
    data = load_beir(collection)
    records, ids = beir_records(data)
    started = time.perf_counter()
    Indexer(settings).index_records(records, f"beir:{data.name}", rebuild=True)
    return data, ids, round(time.perf_counter() - started, 1)


def sweep(collection: Path, settings: Settings, query_embedder) -> dict:
    data, ids, seconds = build(collection, settings)
    out: dict = {"index_seconds": seconds, "single": {}, "hybrid": {}}
    for mode in ("keyword", "semantic"):
        out["single"][mode] = _means(settings, query_embedder, data, ids, mode)
    for name, overrides in configurations().items():
        out["hybrid"][name] = _means(settings.with_overrides(**overrides), query_embedder, data, ids, "hybrid")
        print(f"{collection.name:8} {settings.index_embedder:10} {name:45} {out['hybrid'][name]}", flush=True)
    return out


def _means(settings: Settings, embedder, data, ids, mode: str) -> dict:
    service = SearchService(settings, embedder)
    try:
        figures = evaluate_mode(service, data, ids, mode)
    finally:
        service.close()
    return {name: round(value, 4) for name, value in figures["mean"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["onnx-int8", "onnx"], help="document embedders")
    parser.add_argument("--keep", type=Path, default=ROOT / "bench" / "work" / "eval-index")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_fusion.json")
    args = parser.parse_args()
    base = load_settings()
    query_embedder = load_embedder(base.query_embedder, base.model_path or None, base.model_cache or None)
    results: dict = {
        "defaults": {
            k: getattr(base, k)
            for k in (
                "fusion",
                "alpha",
                "feedback_docs",
                "feedback_weight",
                "min_candidates",
                "candidates",
                "query_embedder",
            )
        },
        "configurations": configurations(),
        "runs": {},
    }
    for kind in args.kinds:
        for collection in DEV_SETS:
            settings = base.with_overrides(index_embedder=kind, index_dir=str(args.keep / f"{kind}-{collection.name}"))
            results["runs"][f"{collection.name}/{kind}"] = sweep(collection, settings, query_embedder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
