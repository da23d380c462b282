import numpy as np

from search.bm25 import ScoreMatrix


def matrix() -> ScoreMatrix:
    # docs a, b, c (keyword-index documents 3, 5, 9); column x hits a and c, column y hits b and c
    cols = [("f\x1fx", [0, 2], [1.0, 0.5]), ("f\x1fy", [1, 2], [2.0, 0.25])]
    return ScoreMatrix.build(["a", "b", "c"], cols, docnums=[3, 5, 9])


def test_scores_sum_weighted_columns_and_ignore_unknown_keys():
    m = matrix()
    assert np.allclose(m.scores([("f\x1fx", 1.0), ("f\x1fy", 2.0), ("f\x1fnone", 5.0)]), [1.0, 4.0, 1.0])


def test_presence_and_columns():
    m = matrix()
    assert m.presence(["f\x1fx"]).tolist() == [True, False, True]
    assert m.presence(["f\x1fx", "f\x1fy"]).tolist() == [True, True, True]
    assert m.presence(["f\x1fnone"]).tolist() == [False, False, False]
    rows, values = m.column("f\x1fy")
    assert rows.tolist() == [1, 2] and values.tolist() == [2.0, 0.25]
    assert m.has("f\x1fx") and not m.has("f\x1fz")


def test_rows_of_docnums_drops_unknown_documents():
    m = matrix()
    assert m.rows_of_docnums(np.array([9, 3, 4, 100])).tolist() == [2, 0]
    assert m.rows_of_docnums(np.array([], dtype=np.int64)).tolist() == []


def test_save_and_load_round_trip(tmp_path):
    m = matrix()
    m.save(tmp_path / "m")
    loaded = ScoreMatrix.load(tmp_path / "m")
    assert loaded.ids == m.ids and loaded.terms == m.terms
    assert np.array_equal(loaded.docnums, m.docnums)
    assert np.array_equal(loaded.scores([("f\x1fy", 1.0)]), m.scores([("f\x1fy", 1.0)]))
    assert ScoreMatrix.load(tmp_path / "absent") is None
