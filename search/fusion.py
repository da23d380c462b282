"""Fusion of ranked lists: small pure functions over ``[(id, score)]`` lists, best first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Ranked = Sequence[tuple[str, float]]


def minmax(ranked: Ranked, lower: float | None = None, upper: float | None = None) -> dict[str, float]:
    """Scores scaled to [0, 1]. ``lower``/``upper`` fix the range (theoretical min-max)."""
    if not ranked:
        return {}
    scores = [s for _, s in ranked]
    lo = min(scores) if lower is None else lower
    hi = max(scores) if upper is None else upper
    if hi - lo <= 1e-12:
        return {doc: 1.0 for doc, _ in ranked}
    return {doc: min(1.0, max(0.0, (s - lo) / (hi - lo))) for doc, s in ranked}


def convex(
    keyword: dict[str, float], semantic: dict[str, float], alpha: float, missing: float = 0.0
) -> list[tuple[str, float]]:
    """alpha * semantic + (1 - alpha) * keyword over normalised scores, best first.

    A document one side did not return gets ``missing`` on that side.
    """
    docs = keyword.keys() | semantic.keys()
    fused = {d: alpha * semantic.get(d, missing) + (1 - alpha) * keyword.get(d, missing) for d in docs}
    return sort_scores(fused)


def rrf(lists: Sequence[Ranked], k: int = 60, weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of weight / (k + rank) with ranks starting at 1."""
    weights = weights or [1.0] * len(lists)
    fused: dict[str, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, (doc, _) in enumerate(ranked, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return sort_scores(fused)


def rocchio(query: np.ndarray, feedback: np.ndarray, weight: float) -> np.ndarray:
    """Pseudo-relevance feedback on a unit query vector (Rocchio): ``q + weight * mean(feedback)``, renormalised.

    ``feedback`` holds the vectors of the top documents, one per row; none leaves ``query`` as it is.
    """
    if len(feedback) == 0 or weight <= 0:
        return query
    moved = query + weight * feedback.mean(axis=0)
    norm = float(np.linalg.norm(moved))
    return (moved / norm).astype(np.float32) if norm > 1e-12 else query


def decay(ranked: Ranked, distance: dict[str, float], halflife: float) -> list[tuple[str, float]]:
    """Scores halved every ``halflife`` units of ``distance`` (ids without a distance keep theirs), best first."""
    return sort_scores(
        {doc: score * 0.5 ** (distance[doc] / halflife) if doc in distance else score for doc, score in ranked}
    )


def sort_scores(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Best first; ties broken by id so the order is deterministic."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def ranks(ranked: Ranked) -> dict[str, int]:
    """1-based rank of each id."""
    return {doc: rank for rank, (doc, _) in enumerate(ranked, start=1)}
