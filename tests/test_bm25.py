import numpy as np

from search.bm25 import ScoreMatrix


def matrix() -> ScoreMatrix:
    # docs a, b, c; column x hits a and c, column y hits b and c
    return ScoreMatrix.build(["a", "b", "c"], [("f\x1fx", [0, 2], [1.0, 0.5]), ("f\x1fy", [1, 2], [2.0, 0.25])])


def test_scores_sum_weighted_columns_and_ignore_unknown_keys():
    m = matrix()
    assert np.allclose(m.scores([("f\x1fx", 1.0), ("f\x1fy", 2.0), ("f\x1fnone", 5.0)]), [1.0, 4.0, 1.0])


def test_top_orders_by_score_then_row_and_counts_matches():
    m = matrix()
    hits, total = m.top(m.scores([("f\x1fx", 1.0), ("f\x1fy", 2.0)]), limit=2)
    assert hits == [("b", 4.0), ("a", 1.0)] and total == 3


def test_top_with_mask_and_no_matches():
    m = matrix()
    hits, total = m.top(m.scores([("f\x1fx", 1.0)]), limit=5, allowed=m.mask(["c", "zzz"]))
    assert hits == [("c", 0.5)] and total == 1
    assert m.top(m.scores([]), limit=5) == ([], 0)


def test_save_and_load_round_trip(tmp_path):
    m = matrix()
    m.save(tmp_path / "m")
    loaded = ScoreMatrix.load(tmp_path / "m")
    assert loaded.ids == m.ids and loaded.terms == m.terms
    assert np.array_equal(loaded.scores([("f\x1fy", 1.0)]), m.scores([("f\x1fy", 1.0)]))
    assert ScoreMatrix.load(tmp_path / "absent") is None
