import pytest

from search.fusion import convex, minmax, ranks, rrf, sort_scores


def test_minmax_observed_range():
    assert minmax([("a", 10.0), ("b", 5.0), ("c", 0.0)]) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_minmax_theoretical_lower_bound():
    assert minmax([("a", 8.0), ("b", 4.0)], lower=0.0) == {"a": 1.0, "b": 0.5}


def test_minmax_single_and_empty():
    assert minmax([("a", 3.0)]) == {"a": 1.0}
    assert minmax([]) == {}


def test_convex_blends_and_fills_missing_with_zero():
    fused = convex({"a": 1.0, "b": 0.5}, {"b": 1.0, "c": 0.2}, alpha=0.8)
    assert fused == [("b", pytest.approx(0.9)), ("a", pytest.approx(0.2)), ("c", pytest.approx(0.16))]


def test_convex_alpha_extremes():
    kw, sem = {"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}
    assert convex(kw, sem, alpha=0.0)[0][0] == "a"
    assert convex(kw, sem, alpha=1.0)[0][0] == "b"


def test_rrf_hand_computed():
    fused = rrf([[("a", 9.0), ("b", 8.0)], [("b", 0.9), ("c", 0.8)]], k=60)
    assert [d for d, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)


def test_rrf_weights():
    fused = rrf([[("a", 1.0)], [("b", 1.0)]], k=60, weights=[1.0, 2.0])
    assert fused[0][0] == "b"


def test_ties_are_deterministic():
    assert sort_scores({"b": 1.0, "a": 1.0, "c": 2.0}) == [("c", 2.0), ("a", 1.0), ("b", 1.0)]


def test_ranks_are_one_based():
    assert ranks([("x", 3.0), ("y", 1.0)]) == {"x": 1, "y": 2}
