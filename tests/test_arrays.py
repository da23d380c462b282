"""search/arrays.py gives numpy's set answers without importing numpy.ma, and loads saved arrays safely in threads."""

import numpy as np
import pytest

from search import arrays
from search.arrays import first_positions, load_array, member, union


@pytest.mark.parametrize("seed", range(5))
def test_the_set_operations_agree_with_numpys(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        a = rng.integers(0, 40, rng.integers(0, 25)).astype(np.int64)
        b = rng.integers(0, 40, rng.integers(0, 25)).astype(np.int64)
        assert np.array_equal(union(a, b), np.union1d(a, b))
        assert np.array_equal(member(a, b), np.isin(a, b))
        if len(a):
            assert np.array_equal(first_positions(a), np.unique(a, return_index=True)[1])


def test_saved_arrays_load_whole_or_mapped_one_thread_at_a_time(tmp_path, monkeypatch):
    saved = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.save(tmp_path / "a.npy", saved)
    whole, mapped = load_array(tmp_path / "a.npy"), load_array(tmp_path / "a.npy", mmap=True)
    np.testing.assert_array_equal(whole, saved)
    np.testing.assert_array_equal(mapped, saved)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    # numpy parses the header with ast.literal_eval, which CPython 3.11 cannot run in two threads at once
    held = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: held.append(arrays._LOADING.locked()) or real(*a, **k))
    load_array(tmp_path / "a.npy")
    load_array(tmp_path / "a.npy", mmap=True)
    assert held == [True, True] and not arrays._LOADING.locked()
