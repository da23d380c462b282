"""Keyword mode on the dev sets: Whoosh's own BM25 idf against the Lucene idf the product uses.

    python -m studies.eval_keyword

Keyword mode needs no real vectors, so each variant is indexed with the hash embedder (fast) under
bench/work/eval-index/keyword-<set>. Writes bench/results/eval_keyword.json.
"""

from __future__ import annotations

import json

from whoosh import scoring

from search import keyword
from search.config import load_settings
from search.evaluation import evaluate_mode
from search.service import SearchService
from studies.eval_sweep import DEV_SETS, ROOT, build

VARIANTS = {
    "whoosh idf, K1=1.2 B=0.75": scoring.BM25F(B=0.75, K1=1.2),
    "lucene idf, K1=1.2 B=0.75 (product)": keyword.LuceneBM25F(B=0.75, K1=1.2),
    "lucene idf, K1=0.9 B=0.4": keyword.LuceneBM25F(B=0.4, K1=0.9),
}


def main() -> None:
    settings = load_settings(index_embedder="hash", query_embedder="hash")
    out: dict = {}
    product = keyword.WEIGHTING
    try:
        for collection in DEV_SETS:
            index_dir = ROOT / "bench" / "work" / "eval-index" / f"keyword-{collection.name}"
            local = settings.with_overrides(index_dir=str(index_dir))
            for name, weighting in VARIANTS.items():
                keyword.WEIGHTING = weighting  # used at index time (score matrix) and query time
                data, ids, _ = build(collection, local)
                service = SearchService(local)
                figures = evaluate_mode(service, data, ids, "keyword")["mean"]
                service.close()
                out.setdefault(collection.name, {})[name] = {k: round(v, 4) for k, v in figures.items()}
                print(collection.name, name, out[collection.name][name], flush=True)
    finally:
        keyword.WEIGHTING = product
    (ROOT / "bench" / "results" / "eval_keyword.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
