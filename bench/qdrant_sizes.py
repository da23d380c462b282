"""What one article costs in a Qdrant build, measured on a real corpus (no server needed): the payload
as JSON, the sparse vectors' non-zero entries per field, and the distinct terms the meta collection
holds. The README's cluster sizes multiply these by the article count.

    python -m bench.qdrant_sizes [CORPUS]   # default: the HuffPost 10k -> bench/results/qdrant_sizes.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from bench.common import RESULTS, ROOT
from search.evaluation import corpus_articles
from search.qdrant import FIELDS, article_payload, tokens

DEFAULT = ROOT.parent / "shared" / "corpus" / "huffpost-10k"


def measure(corpus: Path) -> dict:
    articles = list(corpus_articles(corpus).values())
    payload = [len(json.dumps(article_payload(a, a.id), ensure_ascii=False).encode("utf-8")) for a in articles]
    nonzero = {f: [len(set(tokens(getattr(a, f)))) for a in articles] for f in FIELDS}
    terms = {t for a in articles for f in FIELDS for t in tokens(getattr(a, f))}
    return {
        "corpus": str(corpus),
        "articles": len(articles),
        "payload_bytes_mean": round(statistics.fmean(payload), 1),
        "payload_bytes_p99": sorted(payload)[int(0.99 * (len(payload) - 1))],
        "sparse_nonzero_mean": {f: round(statistics.fmean(v), 2) for f, v in nonzero.items()},
        "distinct_terms": len(terms),
        "dense_bytes": 384 * 4,
    }


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    result = measure(corpus)
    (RESULTS / "qdrant_sizes.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
