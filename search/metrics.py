"""Ranking metrics over one query's ranked ids and its judgements (pure functions, no I/O).

Conventions follow trec_eval / pytrec_eval as BEIR uses them:

- ``qrels`` maps a document id to its graded judgement; a document is relevant when its grade
  is above 0, and unjudged documents count as grade 0.
- nDCG uses *linear* gain (gain = grade, not 2**grade - 1) and a log2(rank + 1) discount; the
  ideal DCG ranks every judged document of the query by grade.
- Recall@k is the share of the query's relevant documents found in the top k.
- MRR@k is 1 / rank of the first relevant document in the top k (0 when there is none).
- Precision@k is the share of relevant documents among the top k, divided by k even when fewer
  than k were returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Qrels = Mapping[str, int]


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain: sum of gain / log2(rank + 1), ranks starting at 1."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg(ranking: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    """nDCG@k with linear gain; 0 when the query has no relevant document."""
    ideal = dcg(sorted((max(g, 0) for g in qrels.values()), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg(max(qrels.get(doc, 0), 0) for doc in _top(ranking, k)) / ideal


def recall(ranking: Sequence[str], qrels: Qrels, k: int = 100) -> float:
    """Share of the relevant documents (grade > 0) that appear in the top k."""
    relevant = {doc for doc, grade in qrels.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_top(ranking, k))) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    """1 / rank of the first relevant document within the top k, else 0."""
    for rank, doc in enumerate(_top(ranking, k), start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def precision(ranking: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    """Share of the top k that is relevant (grade > 0), over k: a short list does not score higher."""
    return sum(1 for doc in _top(ranking, k) if qrels.get(doc, 0) > 0) / k


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def _top(ranking: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids (a repeated id would otherwise be counted twice)."""
    return list(dict.fromkeys(ranking))[:k]
