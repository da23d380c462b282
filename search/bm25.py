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

from search.arrays import load_array

FILES = ("indptr.npy", "rows.npy", "values.npy", "docnums.npy", "terms.json", "ids.json")
Weighted = Sequence[tuple[str, float]]  # (matrix key, weight)


class ScoreMatrix:
    """Columns are (field, term) keys; rows are documents, in ``ids`` order."""

    def __init__(
        self,
        ids: list[str],
        terms: dict[str, int],
        indptr: np.ndarray,
        rows: np.ndarray,
        values: np.ndarray,
        docnums: np.ndarray,
    ):
        self.ids = ids
        self.docnums = docnums  # the keyword index's document number of each row, ascending
        self.terms = terms
        self.indptr = indptr
        self.rows = rows
        self.values = values
        self._row_of: dict[str, int] | None = None

    @staticmethod
    def key(field: str, term: str) -> str:
        return f"{field}\x1f{term}"

    @classmethod
    def build(
        cls, ids: list[str], columns: Iterable[tuple[str, np.ndarray, np.ndarray]], docnums: Sequence[int]
    ) -> ScoreMatrix:
        """From (key, row indices, values) per column; ``docnums`` maps rows to keyword-index documents."""
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
        return cls(
            ids,
            terms,
            np.asarray(indptr, dtype=np.int64),
            cat(rows, np.int32),
            cat(values, np.float32),
            np.asarray(docnums, dtype=np.int64),
        )

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "indptr.npy", self.indptr)
        np.save(directory / "rows.npy", self.rows)
        np.save(directory / "values.npy", self.values)
        np.save(directory / "docnums.npy", self.docnums)
        (directory / "terms.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        (directory / "ids.json").write_text(json.dumps(self.ids), encoding="ascii")

    @classmethod
    def load(cls, directory: Path) -> ScoreMatrix | None:
        """The matrix in ``directory``, memory-mapped; None if it is not there."""
        if not all((directory / name).is_file() for name in FILES):
            return None
        # memory-mapped, then viewed as plain arrays: slicing a np.memmap costs a subclass round trip each time
        load = lambda name: np.asarray(load_array(directory / name, mmap=True))  # noqa: E731
        terms = json.loads((directory / "terms.json").read_text(encoding="utf-8"))
        ids = json.loads((directory / "ids.json").read_text(encoding="ascii"))
        return cls(ids, terms, load("indptr.npy"), load("rows.npy"), load("values.npy"), load("docnums.npy"))

    # -- scoring -----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ids)

    def row_of(self, article_id: str) -> int | None:
        if self._row_of is None:
            self._row_of = {i: n for n, i in enumerate(self.ids)}
        return self._row_of.get(article_id)

    def has(self, key: str) -> bool:
        return key in self.terms

    def column(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25F contributions of one (field, term) column (empty if the term is unknown)."""
        col = self.terms.get(key)
        if col is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        start, stop = int(self.indptr[col]), int(self.indptr[col + 1])
        return self.rows[start:stop], self.values[start:stop]

    def scores(self, weighted_keys: Weighted) -> np.ndarray:
        """Dense score vector: the sum of each key's column times its weight."""
        out = np.zeros(self.size, dtype=np.float32)
        for key, weight in weighted_keys:
            rows, values = self.column(key)
            out[rows] += np.float32(weight) * values
        return out

    def presence(self, keys: Iterable[str]) -> np.ndarray:
        """Rows holding any of ``keys``."""
        out = np.zeros(self.size, dtype=bool)
        for key in keys:
            out[self.column(key)[0]] = True
        return out

    def rows_of_docnums(self, docnums: np.ndarray) -> np.ndarray:
        """Rows of the given keyword-index document numbers (unknown ones dropped)."""
        docnums = np.asarray(docnums, dtype=np.int64)
        if self.size == 0 or len(docnums) == 0:
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.docnums, docnums), self.size - 1)
        return at[self.docnums[at] == docnums]
