"""The vector index's threading: FAISS runs every call on one OpenMP thread, whichever thread makes it."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from search.urls import article_id
from search.vectors import VectorIndex


def _index(n: int = 50, dim: int = 8) -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(dim)
    index.add([article_id(f"https://example.org/{i}") for i in range(n)], vectors)
    return index, vectors


def test_searches_from_another_thread_use_one_openmp_thread():
    """OpenMP's thread count is per thread: setting it where faiss was imported left server threads on
    one per core. (On a one-core machine the default is already 1 and this cannot tell.)"""
    index, vectors = _index()
    seen = {}

    def search() -> None:
        seen["hits"] = index.search(vectors[3], 5)
        index.within(vectors[3], 0.5)
        seen["after"] = faiss.omp_get_max_threads()

    worker = threading.Thread(target=search)
    worker.start()
    worker.join()
    assert seen["after"] == 1
    assert seen["hits"][0][0] == article_id("https://example.org/3")
