"""A precomputed term-by-document BM25F score matrix (numpy only, no whoosh).

Whoosh scores an OR query in pure Python, one posting at a time: about 15 ms at 10k articles
and ten times that at 100k. Its BM25F score of a plain query is a sum over (field, term)
pairs of a per-document contribution that depends only on the index. This module stores those
contributions once per generation, column by column (CSC layout), so a plain query becomes a
few vectorised additions. keyword.py fills it from the Whoosh index itself, so both agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FILES = ("indptr.npy", "rows.npy", "values.npy", "terms.json", "ids.json")


class ScoreMatrix:
    """Columns are (field, term) keys; rows are documents, in ``ids`` order."""

    def __init__(self, ids: list[str], terms: dict[str, int], indptr: np.ndarray, rows: np.ndarray, values: np.ndarray):
        self.ids = ids
        self.terms = terms
        self.indptr = indptr
        self.rows = rows
        self.values = values
        self._row_of: dict[str, int] | None = None

    @staticmethod
    def key(field: str, term: str) -> str:
        return f"{field}\x1f{term}"

    @classmethod
    def build(cls, ids: list[str], columns: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> ScoreMatrix:
        """From (key, row indices, values) per column."""
        terms: dict[str, int] = {}
        indptr = [0]
        rows: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for key, col_rows, col_values in columns:
            terms[key] = len(terms)
            rows.append(np.asarray(col_rows, dtype=np.int32))
            values.append(np.asarray(col_values, dtype=np.float32))
            indptr.append(indptr[-1] + len(col_rows))
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        return cls(ids, terms, np.asarray(indptr, dtype=np.int64), cat(rows, np.int32), cat(values, np.float32))

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "indptr.npy", self.indptr)
        np.save(directory / "rows.npy", self.rows)
        np.save(directory / "values.npy", self.values)
        (directory / "terms.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        (directory / "ids.json").write_text(json.dumps(self.ids), encoding="ascii")

    @classmethod
    def load(cls, directory: Path) -> ScoreMatrix | None:
        """The matrix in ``directory``, memory-mapped; None if it is not there."""
        if not all((directory / name).is_file() for name in FILES):
            return None
        load = lambda name: np.load(directory / name, mmap_mode="r")  # noqa: E731
        terms = json.loads((directory / "terms.json").read_text(encoding="utf-8"))
        ids = json.loads((directory / "ids.json").read_text(encoding="ascii"))
        return cls(ids, terms, load("indptr.npy"), load("rows.npy"), load("values.npy"))

    # -- scoring -----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ids)

    def row_of(self, article_id: str) -> int | None:
        if self._row_of is None:
            self._row_of = {i: n for n, i in enumerate(self.ids)}
        return self._row_of.get(article_id)

    def scores(self, weighted_keys: Sequence[tuple[str, float]]) -> np.ndarray:
        """Dense score vector: the sum of each key's column times its weight."""
        out = np.zeros(self.size, dtype=np.float32)
        for key, weight in weighted_keys:
            col = self.terms.get(key)
            if col is None:
                continue
            start, stop = int(self.indptr[col]), int(self.indptr[col + 1])
            out[self.rows[start:stop]] += np.float32(weight) * self.values[start:stop]
        return out

    def top(
        self, scores: np.ndarray, limit: int, allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[str, float]], int]:
        """The best ``limit`` (id, score) pairs with a positive score, and how many there are."""
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        matching = np.flatnonzero(scores > 0)
        total = len(matching)
        if total > limit:
            part = np.argpartition(-scores[matching], limit - 1)[:limit]
            matching = matching[part]
        order = matching[np.lexsort((matching, -scores[matching]))]
        return [(self.ids[r], float(scores[r])) for r in order], total

    def mask(self, ids: Iterable[str]) -> np.ndarray:
        allowed = np.zeros(self.size, dtype=bool)
        rows = [r for r in (self.row_of(i) for i in ids) if r is not None]
        allowed[rows] = True
        return allowed
