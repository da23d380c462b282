"""Ranking metrics over one query's ranked ids and its judgements, and clustering metrics over a
grouping of items into stories (pure functions, no I/O).

Conventions follow trec_eval / pytrec_eval as BEIR uses them:

- ``qrels`` maps a document id to its graded judgement; a document is relevant when its grade
  is above 0, and unjudged documents count as grade 0.
- nDCG uses *linear* gain (gain = grade, not 2**grade - 1) and a log2(rank + 1) discount; the
  ideal DCG ranks every judged document of the query by grade.
- Recall@k is the share of the query's relevant documents found in the top k.
- MRR@k is 1 / rank of the first relevant document in the top k (0 when there is none).
- Precision@k is the share of relevant documents among the top k, divided by k even when fewer
  than k were returned.

Clusterings are mappings of item -> cluster label, scored against a gold clustering over the gold's
items (an item the prediction lacks is a cluster of its own; items only the prediction has are
ignored). Pairwise precision/recall count the pairs of items placed in one cluster; B-cubed averages,
over items, the overlap of the item's predicted and gold clusters, singletons included.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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


# -- clustering --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterScores:
    """Precision, recall and their harmonic mean (F1)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def to_dict(self) -> dict:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


@dataclass(frozen=True)
class ClusterError:
    """A gold cluster the prediction split, or a predicted cluster that merges gold clusters.

    ``parts`` are the pieces: for a split, the gold cluster's items grouped by predicted cluster;
    for a merge, the predicted cluster's items grouped by gold cluster. Largest piece first.
    """

    kind: str  # "split" or "merge"
    parts: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "parts": [list(p) for p in self.parts]}


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _aligned(predicted: Mapping[str, str], gold: Mapping[str, str]) -> dict[str, object]:
    """The predicted label of every gold item; an item the prediction lacks gets a label of its own."""
    return {item: predicted[item] if item in predicted else ("\0missing", item) for item in gold}


def pairwise_scores(predicted: Mapping[str, str], gold: Mapping[str, str]) -> ClusterScores:
    """Precision and recall over the pairs of gold items placed in one cluster.

    With no predicted pair, precision is 1; with no gold pair, recall is 1 (nothing to find).
    """
    pred = _aligned(predicted, gold)
    both = sum(_pairs(n) for n in Counter((pred[i], gold[i]) for i in gold).values())
    pred_pairs = sum(_pairs(n) for n in Counter(pred.values()).values())
    gold_pairs = sum(_pairs(n) for n in Counter(gold.values()).values())
    return ClusterScores(both / pred_pairs if pred_pairs else 1.0, both / gold_pairs if gold_pairs else 1.0)


def bcubed_scores(predicted: Mapping[str, str], gold: Mapping[str, str]) -> ClusterScores:
    """B-cubed: per item, |predicted cluster & gold cluster| over |predicted| (precision) and |gold| (recall)."""
    if not gold:
        return ClusterScores(1.0, 1.0)
    pred = _aligned(predicted, gold)
    overlap = Counter((pred[i], gold[i]) for i in gold)
    pred_size = Counter(pred.values())
    gold_size = Counter(gold.values())
    precision = sum(overlap[(pred[i], gold[i])] / pred_size[pred[i]] for i in gold) / len(gold)
    recall = sum(overlap[(pred[i], gold[i])] / gold_size[gold[i]] for i in gold) / len(gold)
    return ClusterScores(precision, recall)


def cluster_errors(predicted: Mapping[str, str], gold: Mapping[str, str]) -> list[ClusterError]:
    """Gold clusters split across predicted ones, then predicted clusters that merge gold ones.

    Each list is ordered by the number of items involved, largest first.
    """
    pred = _aligned(predicted, gold)
    return _errors("split", gold, pred) + _errors("merge", pred, gold)


def _errors(kind: str, outer: Mapping[str, object], inner: Mapping[str, object]) -> list[ClusterError]:
    """Clusters of ``outer`` whose items fall in more than one cluster of ``inner``."""
    members: dict[object, dict[object, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item in sorted(outer):
        members[outer[item]][inner[item]].append(item)
    found = [
        ClusterError(kind, tuple(sorted((tuple(p) for p in pieces.values()), key=lambda p: (-len(p), p))))
        for pieces in members.values()
        if len(pieces) > 1
    ]
    return sorted(found, key=lambda e: (-sum(map(len, e.parts)), e.parts))


def grouping(clusters: Iterable[Iterable[str]], items: Iterable[str] = ()) -> dict[str, str]:
    """item -> label from lists of clusters (the label is the cluster's first item); ``items`` not in any
    cluster become singletons. An item listed in two clusters is an error (ValueError)."""
    out: dict[str, str] = {}
    for cluster in clusters:
        members = list(cluster)
        for item in members:
            if item in out:
                raise ValueError(f"{item!r} is in two clusters")
            out[item] = members[0]
    for item in items:
        out.setdefault(item, item)
    return out
