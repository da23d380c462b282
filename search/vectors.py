"""The vector index: the only module that imports faiss.

Exact inner product (``IndexFlatIP``) over L2-normalised float32 vectors, wrapped in
``IndexIDMap2`` so FAISS ids are the 63-bit integers behind article ids and deletions are real.
Past a size (the ``approximate_above`` setting) it is compressed to 8-bit scalar quantisation
(``IndexScalarQuantizer``, still exhaustive): a quarter of the memory, recall@10 0.989 against
exact search at 100k articles (bench/results/ann.json). Deletions stay real in both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from search.errors import IndexCorrupt, IndexMissing
from search.urls import id_to_int, int_to_id

_threads = threading.local()


def one_thread() -> None:
    """Run this thread's FAISS calls on one OpenMP thread (more make single queries slower on 2 cores).

    OpenMP keeps the thread count per calling thread: ``faiss.omp_set_num_threads`` in the thread
    that imported faiss leaves every other thread (a server's, the indexer's workers) on the default,
    one per core, and a search from there took 3-4 times as long (measured at 100k vectors). So every
    method that runs FAISS calls this first; it costs one attribute lookup after the first call.
    """
    if not getattr(_threads, "single", False):
        faiss.omp_set_num_threads(1)
        _threads.single = True


one_thread()


class VectorIndex:
    def __init__(self, dim: int, index: faiss.Index | None = None):
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    # -- persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        if not Path(path).is_file():
            raise IndexMissing(f"no vector index at {path}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorrupt(f"vector index {path} cannot be read: {str(exc).splitlines()[0]}") from None
        return cls(index.d, index)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self._index.index)
        return "flat" if isinstance(inner, faiss.IndexFlat) else "sq8"

    def compress_above(self, threshold: int) -> bool:
        """Switch an exact index holding more than ``threshold`` vectors to SQ8; True if it did."""
        if self.kind != "flat" or self.count <= threshold:
            return False
        one_thread()
        keys = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = faiss.downcast_index(self._index.index).reconstruct_n(0, self.count)
        quantised = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        quantised.train(vectors)
        index = faiss.IndexIDMap2(quantised)
        index.add_with_ids(vectors, keys)
        self._index = index
        return True

    # -- writing -----------------------------------------------------------------------------
    def add(self, ids: Iterable[str], vectors: np.ndarray) -> None:
        keys = np.fromiter((id_to_int(i) for i in ids), dtype=np.int64)
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"expected {len(keys)} vectors of dimension {self.dim}, got {vectors.shape}")
        one_thread()
        self._index.add_with_ids(vectors, keys)

    def remove(self, ids: Iterable[str]) -> int:
        keys = np.fromiter((id_to_int(i) for i in ids), dtype=np.int64)
        if len(keys) == 0:
            return 0
        one_thread()
        return int(self._index.remove_ids(faiss.IDSelectorBatch(keys)))

    # -- reading -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> set[str]:
        return {int_to_id(int(k)) for k in faiss.vector_to_array(self._index.id_map)}

    def vector(self, article_id: str) -> np.ndarray | None:
        try:
            return self._index.reconstruct(id_to_int(article_id))
        except RuntimeError:
            return None

    def vectors(self, ids: list[str]) -> np.ndarray:
        """Stored vectors of ``ids`` (zeros for unknown ids)."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            return self._index.reconstruct_batch(np.fromiter((id_to_int(i) for i in ids), dtype=np.int64))
        except RuntimeError:  # an unknown id: fall back to one at a time
            pass
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, article_id in enumerate(ids):
            vec = self.vector(article_id)
            if vec is not None:
                out[row] = vec
        return out

    def search(self, query: np.ndarray, k: int, allowed: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (id, inner product) pairs; ``allowed`` restricts the candidates."""
        if self.count == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        params = None
        if allowed is not None:
            keys = np.fromiter((id_to_int(i) for i in allowed), dtype=np.int64)
            if len(keys) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(keys))
        one_thread()
        scores, keys = self._index.search(q, min(k, self.count), params=params)
        return [(int_to_id(int(key)), float(s)) for key, s in zip(keys[0], scores[0], strict=True) if key >= 0]

    # -- by key (int64 article keys; see search.urls.id_to_int) ---------------------------------
    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Keys and inner products of the ``k`` best vectors (among the ``allowed`` keys), best first."""
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.count == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return empty
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
        scores, keys = self._index.search(q, min(k, self.count), params=params)
        found = keys[0] >= 0
        return keys[0][found].astype(np.int64), scores[0][found].astype(np.float32)

    def vectors_of(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors of ``keys``, one row each (zeros for unknown keys)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            return self._index.reconstruct_batch(keys)
        except RuntimeError:  # an unknown key: one at a time
            return self.vectors([int_to_id(int(k)) for k in keys])

    def within(self, query: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
        """Keys and inner products of every stored vector scoring at least ``floor``, best first."""
        if self.count == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        one_thread()
        lims, scores, keys = self._index.range_search(q, float(floor) - 1e-6)
        keys, scores = keys[lims[0] : lims[1]].astype(np.int64), scores[lims[0] : lims[1]].astype(np.float32)
        order = np.lexsort((keys, -scores))
        return keys[order], scores[order]
