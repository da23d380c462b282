"""Set operations on arrays of int64 keys, for the query path, and loading saved arrays.

numpy's own (``union1d``, ``unique``, ``isin`` on large arrays) import ``numpy.ma`` on first use,
about 80 ms of a cold ``search-cli query``; these do the same with sort and searchsorted.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

# numpy reads a .npy file's header with ``ast.literal_eval``. CPython 3.11 builds AST objects with
# one recursion counter per interpreter, not per thread, so two threads parsing at once can fail with
# "SystemError: AST constructor recursion depth mismatch": readers opening an index in threads (the
# web server's workers, the concurrency tests) load their arrays one at a time.
_LOADING = threading.Lock()


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """The array saved at ``path`` (``np.save``), memory-mapped read-only when ``mmap``."""
    with _LOADING:
        return np.load(path, mmap_mode="r" if mmap else None)


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``a`` and ``b``."""
    both = np.sort(np.concatenate((a, b)))
    if len(both) == 0:
        return both
    return both[np.concatenate(([True], both[1:] != both[:-1]))]


def member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """For each of ``values``, whether it is one of ``of`` (numpy's isin, without its numpy.ma import)."""
    ordered = np.sort(np.asarray(of))
    if len(ordered) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return ordered[at] == values


def first_positions(values: np.ndarray) -> np.ndarray:
    """The position of the first occurrence of each distinct value of ``values`` (in value order)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    return order[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
