import pytest

from search.fusion import convex, minmax, minmax_array, rank_array, ranks, rrf, rrf_array, scale, sort_scores


def test_minmax_observed_range():
    assert minmax([("a", 10.0), ("b", 5.0), ("c", 0.0)]) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_minmax_theoretical_lower_bound():
    assert minmax([("a", 8.0), ("b", 4.0)], lower=0.0) == {"a": 1.0, "b": 0.5}


def test_minmax_single_and_empty():
    assert minmax([("a", 3.0)]) == {"a": 1.0}
    assert minmax([]) == {}


def test_array_helpers_match_their_list_versions():
    import numpy as np

    scores = np.array([3.0, 1.0, 2.0], dtype=np.float32)
    assert minmax_array(scores).tolist() == [1.0, 0.0, 0.5]
    assert minmax_array(scores, lower=0.0).tolist() == pytest.approx([1.0, 1 / 3, 2 / 3])
    assert scale(scores, 1.0, 2.0).tolist() == [1.0, 0.0, 1.0]  # clipped to [0, 1]
    keys = np.array([7, 5, 6])
    assert rank_array(np.array([1.0, 1.0, 2.0]), keys).tolist() == [3, 2, 1]  # ties by key
    fused = rrf_array([np.array([1, 0, 2]), np.array([2, 1, 0])], k=60)
    assert fused.tolist() == pytest.approx([1 / 61 + 1 / 62, 1 / 61, 1 / 62])


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
