"""Evaluate the dev sets with the product's settings, as `search-cli eval DIR --mode all --json` does.

    python -m studies.eval_beir                       # both dev sets, default settings
    python -m studies.eval_beir --index-embedder onnx --out bench/results/eval_beir_fp32.json
    python -m studies.eval_beir --keep bench/work/eval-index  # keep the indexes (and embeddings) for sweeps

Writes the mean figures (not the per-query ones) and timings to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from search.config import load_settings
from search.evaluation import format_report, run_beir

ROOT = Path(__file__).resolve().parent.parent
DEV_SETS = [ROOT.parent / "shared" / "eval" / name for name in ("dbpedia", "msmarco")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collections", nargs="*", type=Path, default=DEV_SETS)
    parser.add_argument("--index-embedder", default=None, help="onnx-int8 (default setting), onnx, torch")
    parser.add_argument("--mode", default="all")
    parser.add_argument("--keep", type=Path, default=None, help="keep each index under KEEP/<embedder>-<name>")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_beir.json")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = load_settings(index_embedder=args.index_embedder, **overrides)
    results = {}
    for collection in args.collections:
        keep = args.keep / f"{settings.index_embedder}-{collection.name}" if args.keep else None
        started = time.perf_counter()
        result = run_beir(collection, settings, args.mode, index_dir=keep)
        result["total_seconds"] = round(time.perf_counter() - started, 1)
        print(format_report(result), f"\ntotal {result['total_seconds']} s\n", flush=True)
        for figures in result["modes"].values():
            figures.pop("per_query")
        results[collection.name] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
