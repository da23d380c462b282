"""The embedded backend's reader: one opened generation of Whoosh + score matrix + FAISS + SQLite.

It answers the service's questions over int64 article keys (``search.urls.id_to_int``): which
articles pass a query's constraints (a boolean mask over rows), which match its words, which
are semantically close, and their facets, dates, vectors and stored fields.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search import generations as gen
from search.columns import Columns
from search.errors import IndexCorrupt
from search.keyword import SEARCH_FIELDS, KeywordIndex
from search.models import Article
from search.query import All, Any, Node, Not, Phrase, Plan, Word
from search.store import ArticleStore
from search.vectors import VectorIndex
from search.vocabulary import Vocabulary

Terms = list[tuple[str, float]]  # (indexed term, weight)


@dataclass(frozen=True)
class Scored:
    """A set of articles with one score each, best first."""

    keys: np.ndarray  # int64
    scores: np.ndarray  # float32
    exact: bool = True  # False: the backend stopped enumerating at a cap, so there are more

    @classmethod
    def empty(cls) -> Scored:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Filters:
    provider: str | None = None
    topic: str | None = None
    since: object = None  # datetime
    until: object = None

    def __bool__(self) -> bool:
        return any((self.provider, self.topic, self.since, self.until))

    def to_dict(self) -> dict[str, str]:
        out = {
            "provider": self.provider,
            "topic": self.topic,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in out.items() if v}


@dataclass
class LocalReader:
    """One opened generation. Reference-counted by the service so a swap never closes it under a request."""

    path: Path
    manifest: gen.Manifest
    keyword: KeywordIndex
    vectors: VectorIndex
    store: ArticleStore
    columns: Columns
    lease: gen.ReaderLease
    _vocabulary: Vocabulary | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, root: Path) -> LocalReader:
        lease, path = gen.lease_current(root)
        try:
            manifest = gen.read_manifest(path)
            keyword = KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open()
            columns = Columns.load(path / gen.COLUMNS_DIR)
            if keyword.matrix is None or columns is None:
                keyword.close()
                raise IndexCorrupt(f"index in {path} lacks its score matrix or columns - rebuild with --rebuild")
            reader = cls(
                path,
                manifest,
                keyword,
                VectorIndex.load(path / gen.VECTORS_FILE),
                ArticleStore(path / gen.STORE_FILE, readonly=True),
                columns,
                lease,
            )
        except BaseException:
            lease.release()
            raise
        counts = {keyword.count(), reader.vectors.count, manifest.articles, columns.size}
        if len(counts) != 1:
            reader.close()
            raise IndexCorrupt(
                f"index in {path} is inconsistent (article counts {sorted(counts)}) - rebuild it "
                "with `search-cli index --rebuild`"
            )
        return reader

    def close(self) -> None:
        self.keyword.close()
        self.store.close()
        self.lease.release()

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def model_name(self) -> str:
        return self.manifest.model_name

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def size(self) -> int:
        return self.columns.size

    # -- words -----------------------------------------------------------------------------------
    def terms(self, text: str) -> list[str]:
        return self.keyword.analyze(text)

    def known(self, term: str) -> bool:
        matrix = self.keyword.matrix
        return any(matrix.has(matrix.key(f, term)) for f in SEARCH_FIELDS)

    def vocabulary(self) -> Vocabulary:
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary.load(self.path)
            return self._vocabulary

    # -- constraints -----------------------------------------------------------------------------
    def restrict(self, plan: Plan, filters: Filters) -> np.ndarray | None:
        """Rows passing the plan's constraints and the filters; None when nothing restricts."""
        masks: list[np.ndarray] = [self._node(n) for n in plan.must]
        if plan.must_not:
            excluded = np.zeros(self.size, dtype=bool)
            for node in plan.must_not:
                excluded |= self._node(node)
            masks.append(~excluded)
        c = self.columns
        if filters.provider:
            masks.append(c.provider_mask(filters.provider))
        if filters.topic:
            masks.append(c.topic_mask(filters.topic))
        if filters.since or filters.until:
            masks.append(c.date_mask(filters.since, filters.until))
        if not masks:
            return None
        out = masks[0].copy()
        for mask in masks[1:]:
            out &= mask
        return out

    def _node(self, node: Node) -> np.ndarray:
        if isinstance(node, All):
            out = np.ones(self.size, dtype=bool)
            for child in node.children:
                out &= self._node(child)
            return out
        if isinstance(node, Any):
            out = np.zeros(self.size, dtype=bool)
            for child in node.children:
                out |= self._node(child)
            return out
        if isinstance(node, Not):
            return ~self._node(node.child)
        if node.field == "provider":
            return self.columns.provider_mask(node.text)
        if node.field == "topic":
            return self.columns.topic_mask(node.text)
        if node.field == "domain":
            return self.columns.domain_mask(node.text)
        fields_ = (node.field,) if node.field else SEARCH_FIELDS
        if isinstance(node, Phrase):
            return self._phrase(node.text, fields_)
        return self._word(node, fields_)

    def _word(self, node: Word, fields_: tuple[str, ...]) -> np.ndarray:
        matrix = self.keyword.matrix
        if node.prefix:
            words = self.vocabulary().expand(node.text)
            terms = {t for w in words for t in self.terms(w)}
            return matrix.presence(matrix.key(f, t) for f in fields_ for t in terms)
        terms = self.terms(node.text)
        if not terms:  # a stop word constrains nothing
            return np.ones(self.size, dtype=bool)
        if len(terms) > 1:  # "covid-19": the parts in order
            return self._phrase(node.text, fields_)
        return matrix.presence(matrix.key(f, terms[0]) for f in fields_)

    def _phrase(self, text: str, fields_: tuple[str, ...]) -> np.ndarray:
        terms = self.terms(text)
        if len(terms) <= 1:
            matrix = self.keyword.matrix
            if not terms:
                return np.ones(self.size, dtype=bool)
            return matrix.presence(matrix.key(f, terms[0]) for f in fields_)
        out = np.zeros(self.size, dtype=bool)
        out[self.keyword.matrix.rows_of_docnums(self.keyword.phrase_docnums(terms, fields_))] = True
        return out

    # -- keyword side ----------------------------------------------------------------------------
    def keyword_match(self, groups: list[Terms], required: int, scoring: Terms, restriction) -> Scored:
        """Articles holding at least ``required`` of the word ``groups`` (one term of a group is
        enough) within ``restriction``; with no groups, every article of the restriction. Scored by
        BM25F over ``scoring``."""
        matrix = self.keyword.matrix
        scores = self._bm25(scoring)
        if groups:
            count = np.zeros(self.size, dtype=np.int16)
            for group in groups:
                count += matrix.presence(matrix.key(f, t) for t, _ in group for f in SEARCH_FIELDS)
            mask = count >= max(1, required)
            if restriction is not None:
                mask &= restriction
        elif restriction is not None:
            mask = restriction
        else:
            return Scored.empty()
        rows = np.flatnonzero(mask)
        return self._scored(rows, scores[rows])

    def keyword_scores(self, scoring: Terms, keys: np.ndarray) -> np.ndarray:
        rows = self.columns.rows(keys)
        scores = self._bm25(scoring)
        return np.where(rows >= 0, scores[np.maximum(rows, 0)], 0.0).astype(np.float32)

    def keyword_top(self, scoring: list[tuple[str, str, float]], limit: int, restriction) -> Scored:
        """The best ``limit`` articles for (field, term, weight) triples (more like this)."""
        matrix = self.keyword.matrix
        scores = matrix.scores([(matrix.key(f, t), w) for f, t, w in scoring])
        if restriction is not None:
            scores = np.where(restriction, scores, 0.0)
        rows = np.flatnonzero(scores > 0)
        if len(rows) > limit:
            rows = rows[np.argpartition(-scores[rows], limit - 1)[:limit]]
        return self._scored(rows, scores[rows])

    def keyword_top_terms(self, scoring: Terms, limit: int, restriction) -> Scored:
        """The best ``limit`` articles by BM25F over ``scoring`` (terms in either field)."""
        return self.keyword_top([(f, t, w) for t, w in scoring for f in SEARCH_FIELDS], limit, restriction)

    def key_terms(self, text: str) -> list[tuple[str, str, float]]:
        return self.keyword.key_terms(text)

    def _bm25(self, scoring: Terms) -> np.ndarray:
        matrix = self.keyword.matrix
        return matrix.scores([(matrix.key(f, t), w) for t, w in scoring for f in SEARCH_FIELDS])

    def _scored(self, rows: np.ndarray, scores: np.ndarray) -> Scored:
        keys = self.columns.keys[rows]
        order = np.lexsort((keys, -scores))
        return Scored(keys[order], scores[order].astype(np.float32))

    # -- semantic side ---------------------------------------------------------------------------
    def semantic_match(self, vector: np.ndarray, floor: float, restriction) -> Scored:
        """Articles whose cosine similarity to ``vector`` is at least ``floor``, within ``restriction``."""
        keys, scores = self.vectors.within(vector, floor)
        if restriction is not None and len(keys):
            rows = self.columns.rows(keys)
            keep = (rows >= 0) & restriction[np.maximum(rows, 0)]
            keys, scores = keys[keep], scores[keep]
        return Scored(keys, scores)

    def semantic_top(self, vector: np.ndarray, limit: int, restriction) -> Scored:
        """The ``limit`` articles most similar to ``vector`` within ``restriction``."""
        allowed = self.columns.keys[restriction] if restriction is not None else None
        return Scored(*self.vectors.top(vector, limit, allowed))

    def vectors_of(self, keys: np.ndarray) -> np.ndarray:
        return self.vectors.vectors_of(keys)

    # -- the rest --------------------------------------------------------------------------------
    def facets(self, keys: np.ndarray, size: int | None = 10) -> dict[str, list[tuple[str, int]]]:
        return self.columns.facets(self.columns.rows(keys), size)

    def stories(self, keys: np.ndarray) -> np.ndarray:
        """Story code of each key: equal codes, one story (-1 for an unknown key)."""
        return self.columns.stories(self.columns.rows(keys))

    def story_members(self, story_id: str) -> list[str]:
        return self.store.story_members(story_id)

    def dates(self, keys: np.ndarray) -> np.ndarray:
        return self.columns.dates(self.columns.rows(keys))

    def articles(self, ids: list[str]) -> dict[str, Article]:
        return self.store.get_many(ids)

    def top_topics(self, n: int) -> list[tuple[str, int]]:
        return self.store.top_topics(n)

    def newest(self, n: int) -> list[Article]:
        return self.store.newest(n)

    def stats(self) -> dict:
        out = self.store.stats()
        out["vector_index"] = self.vectors.kind
        m = self.manifest
        out.update(
            generation=self.version,
            model=m.model_name,
            model_id=m.model_id,
            dim=m.dim,
            built_at=m.built_at,
            format_version=m.format_version,
            story_model=m.story_model,
            bytes_on_disk=sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()),
        )
        return out
