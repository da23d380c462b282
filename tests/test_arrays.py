"""search/arrays.py gives numpy's set answers without importing numpy.ma."""

import numpy as np
import pytest

from search.arrays import first_positions, member, union


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
