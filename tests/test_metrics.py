"""Clustering metrics (search.metrics), against hand-computed figures. Ranking metrics: test_evaluation.py."""

from __future__ import annotations

import pytest

from search import metrics

# gold {a,b,c} {d,e} {f}; predicted {a,b} {c,d,e} {f}
GOLD = metrics.grouping([["a", "b", "c"], ["d", "e"]], items="abcdef")
PRED = metrics.grouping([["a", "b"], ["c", "d", "e"]], items="abcdef")


def test_grouping_labels_and_singletons():
    assert GOLD == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "d", "f": "f"}
    with pytest.raises(ValueError, match="'b' is in two clusters"):
        metrics.grouping([["a", "b"], ["b", "c"]])


def test_pairwise_counts_pairs_in_one_cluster():
    # gold pairs ab ac bc de (4); predicted ab cd ce de (4); shared ab de (2)
    scores = metrics.pairwise_scores(PRED, GOLD)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    assert scores.to_dict() == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_pairwise_uneven_precision_and_recall():
    # predicted {a,b,c,d,e,f}: 15 pairs, 4 of them gold
    scores = metrics.pairwise_scores(dict.fromkeys("abcdef", "x"), GOLD)
    assert scores.precision == pytest.approx(4 / 15)
    assert scores.recall == 1.0
    assert scores.f1 == pytest.approx(2 * (4 / 15) / (4 / 15 + 1))


def test_bcubed_counts_every_item_and_singletons():
    # per item (precision, recall): a, b (1, 2/3); c (1/3, 1/3); d, e (2/3, 1); f (1, 1)
    scores = metrics.bcubed_scores(PRED, GOLD)
    assert scores.precision == pytest.approx(7 / 9)
    assert scores.recall == pytest.approx(7 / 9)
    assert scores.f1 == pytest.approx(7 / 9)


def test_all_singletons_and_empty_conventions():
    singletons = {i: i for i in "abcdef"}
    pairwise = metrics.pairwise_scores(singletons, GOLD)
    assert (pairwise.precision, pairwise.recall, pairwise.f1) == (1.0, 0.0, 0.0)
    bcubed = metrics.bcubed_scores(singletons, GOLD)
    assert bcubed.precision == 1.0
    assert bcubed.recall == pytest.approx((1 / 3 * 3 + 1 / 2 * 2 + 1) / 6)
    assert metrics.pairwise_scores(singletons, singletons).f1 == 1.0
    assert metrics.bcubed_scores({}, {}).f1 == 1.0


def test_items_missing_from_the_prediction_are_singletons_and_extras_ignored():
    partial = {k: v for k, v in PRED.items() if k != "f"} | {"z": "a"}
    assert metrics.pairwise_scores(partial, GOLD) == metrics.pairwise_scores(PRED, GOLD)
    assert metrics.bcubed_scores(partial, GOLD) == metrics.bcubed_scores(PRED, GOLD)
    missing_c = {k: v for k, v in PRED.items() if k != "c"}
    assert metrics.pairwise_scores(missing_c, GOLD).precision == 1.0  # ab, de: both gold pairs


def test_cluster_errors_lists_splits_then_merges():
    errors = metrics.cluster_errors(PRED, GOLD)
    assert [e.to_dict() for e in errors] == [
        {"kind": "split", "parts": [["a", "b"], ["c"]]},
        {"kind": "merge", "parts": [["d", "e"], ["c"]]},
    ]
    assert metrics.cluster_errors(GOLD, GOLD) == []
    big = metrics.cluster_errors(dict.fromkeys("abcdef", "x"), GOLD)
    assert [e.kind for e in big] == ["merge"]
    assert big[0].parts == (("a", "b", "c"), ("d", "e"), ("f",))
