"""SearchService: the one query layer used by the CLI, the web app and Python callers."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

import numpy as np

from search import fusion
from search import generations as gen
from search.config import MODES, Settings
from search.errors import ConfigError, InvalidQuery, NotFound
from search.keyword import KeywordIndex, filter_query
from search.loader import parse_datetime
from search.models import Article, ArticleDetail, Hit, Results, Suggestions
from search.store import ArticleStore
from search.urls import is_valid_id
from search.vectors import VectorIndex

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100
MAX_OFFSET = 1000
MAX_LISTED = 100  # publisher-listed related items in one article response
SORTS = ("relevance", "newest")


@dataclass
class _View:
    """One opened generation. Reference-counted so a swap never closes it under a request."""

    path: Path
    stamp: tuple
    manifest: gen.Manifest
    keyword: KeywordIndex
    vectors: VectorIndex
    store: ArticleStore
    lease: gen.ReaderLease
    users: int = 0
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        self.keyword.close()
        self.store.close()
        self.lease.release()


@dataclass(frozen=True)
class Filters:
    provider: str | None = None
    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None

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


class SearchService:
    def __init__(self, settings: Settings | None = None, embedder=None):
        self.settings = settings or Settings()
        self.root = self.settings.index_path
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._view: _View | None = None
        self._swap_lock = threading.Lock()
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- generations -------------------------------------------------------------------------
    def _stamp(self) -> tuple:
        try:
            st = os.stat(self.root / gen.CURRENT)
        except FileNotFoundError:
            return ()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _open_view(self) -> _View:
        stamp = self._stamp()
        lease, path = gen.lease_current(self.root)
        try:
            manifest = gen.read_manifest(path)
            view = _View(
                path,
                stamp,
                manifest,
                KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open(),
                VectorIndex.load(path / gen.VECTORS_FILE),
                ArticleStore(path / gen.STORE_FILE, readonly=True),
                lease,
            )
        except BaseException:
            lease.release()
            raise
        counts = {view.keyword.count(), view.vectors.count, manifest.articles}
        if len(counts) != 1:
            view.close()
            raise gen.IndexCorrupt(
                f"index in {path} is inconsistent (article counts {sorted(counts)}) - rebuild it "
                "with `search-cli index --rebuild`"
            )
        return view

    @contextmanager
    def _acquire(self):
        with self._swap_lock:
            view = self._view
            if view is None or view.stamp != self._stamp():
                fresh = self._open_view()
                if view is not None:
                    view.retired = True
                    self._release(view, 0)
                view = self._view = fresh
            view.users += 1
        try:
            yield view
        finally:
            self._release(view, 1)

    @staticmethod
    def _release(view: _View, n: int) -> None:
        with view.lock:
            view.users -= n
            if view.retired and view.users == 0:
                view.close()

    def __enter__(self) -> SearchService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._swap_lock:
            if self._view is not None:
                self._view.retired = True
                self._release(self._view, 0)
                self._view = None

    # -- embedding ---------------------------------------------------------------------------
    @property
    def embedder(self):
        with self._embedder_lock:
            if self._embedder is None:
                from search.embedding import load_embedder

                s = self.settings
                self._embedder = load_embedder(
                    s.query_embedder, s.model_path or None, s.model_cache or None, threads=s.threads
                )
            return self._embedder

    def embed_query(self, text: str, view: _View) -> np.ndarray:
        with self._cache_lock:
            cached = self._query_vectors.get(text)
        if cached is not None:
            return cached
        embedder = self.embedder
        m = view.manifest
        if (embedder.model_name, embedder.dim) != (m.model_name, m.dim):
            raise ConfigError(
                f"the index was built with {m.model_name} ({m.dim} dims) but queries use "
                f"{embedder.model_name} ({embedder.dim}) - rebuild with `search-cli index --rebuild`"
            )
        vec = embedder.embed([text])[0]
        with self._cache_lock:  # server threads share it
            self._query_vectors[text] = vec
            if len(self._query_vectors) > 512:
                self._query_vectors.popitem(last=False)
        return vec

    # -- search ------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        mode: str = "hybrid",
        limit: int = 10,
        offset: int = 0,
        provider: str | None = None,
        topic: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        sort: str = "relevance",
    ) -> Results:
        started = time.perf_counter()
        query = _check_query(query)
        mode, sort = _check_choice("mode", mode, MODES), _check_choice("sort", sort, SORTS)
        limit, offset = _check_limit(limit), _check_offset(offset)
        filters = Filters(
            _check_filter(provider, "provider"),
            _check_filter(topic, "topic"),
            parse_date(since, "since"),
            parse_date(until, "until", end=True),
        )
        if filters.since and filters.until and filters.since > filters.until:
            raise InvalidQuery("since is after until")
        depth = max(self.settings.min_candidates, self.settings.candidates * (offset + limit))
        with self._acquire() as view:
            fused, kw, sem, total = self._retrieve(view, query, mode, depth, filters)
            if sort == "newest":
                dates = view.store.published([d for d, _ in fused])
                fused.sort(key=lambda ds: (dates.get(ds[0]) or "", ds[1]), reverse=True)
            facets = view.store.facets([d for d, _ in fused])
            articles = view.store.get_many([d for d, _ in fused[offset : offset + limit]])
        hits = _hits(fused[offset : offset + limit], articles, kw, sem, offset)
        took = (time.perf_counter() - started) * 1000
        return Results(
            query,
            mode,
            tuple(hits),
            total if mode == "keyword" else len(fused),
            limit,
            offset,
            took,
            facets,
            filters.to_dict(),
            sort,
        )

    def _retrieve(self, view: _View, query: str, mode: str, depth: int, filters: Filters):
        kw: list[tuple[str, float]] = []
        sem: list[tuple[str, float]] = []
        total = 0
        allowed = view.store.filter_ids(**filters.__dict__) if filters else None
        if mode in ("keyword", "hybrid"):
            where = filter_query(**filters.__dict__) if filters else None
            kw, total = view.keyword.search(query, depth, where, allowed)
        qvec = None
        if mode in ("semantic", "hybrid"):
            qvec = self.embed_query(query, view)
            sem = view.vectors.search(qvec, depth, allowed)
        if mode == "keyword":
            return kw, kw, sem, total
        if mode == "semantic":
            return sem, kw, sem, len(sem)
        return self._fuse(view, query, qvec, kw, sem), kw, sem, total

    def _fuse(self, view: _View, query: str, qvec: np.ndarray | None, kw, sem) -> list[tuple[str, float]]:
        """Blend the two candidate lists; figures behind each choice: bench/results/eval_fusion.json."""
        s = self.settings
        union = list(dict.fromkeys([*(d for d, _ in sem), *(d for d, _ in kw)]))  # semantic best first
        if qvec is not None and sem:  # Rocchio feedback, then the semantic side of every candidate
            vecs = view.vectors.vectors(union)
            qvec = fusion.rocchio(qvec, vecs[: min(s.feedback_docs, len(sem))], s.feedback_weight)
            sem_all = dict(zip(union, (vecs @ qvec).tolist(), strict=True))
        else:
            sem_all = dict(sem)
        if s.fusion == "rrf":
            return fusion.rrf([kw, fusion.sort_scores(sem_all)[: len(sem)]], k=s.rrf_k)
        kw_all = dict(kw)
        only_sem = [d for d in union if d not in kw_all]
        if only_sem and query:  # score the union: the keyword side of semantic-only candidates
            kw_all.update(view.keyword.score_ids(query, only_sem))
        kw_norm = fusion.minmax(list(kw_all.items()), lower=0.0)
        sem_norm = fusion.minmax(list(sem_all.items()))
        return fusion.convex(kw_norm, sem_norm, s.alpha)

    # -- more like this ----------------------------------------------------------------------
    def related(self, article_id: str, limit: int = 10) -> Results:
        started = time.perf_counter()
        limit = _check_limit(limit)
        with self._acquire() as view:
            article = self._get(view, article_id)
            vec = view.vectors.vector(article.id)
            fused, kw, sem = self._more_like(view, article.text, vec, limit, exclude={article.id})
            articles = view.store.get_many([d for d, _ in fused])
        hits = _hits(_distinct(fused, articles, article.text)[:limit], articles, kw, sem, 0)
        return Results(
            article.title, "related", tuple(hits), len(hits), limit, 0, (time.perf_counter() - started) * 1000
        )

    def related_text(self, text: str, limit: int = 10) -> Results:
        started = time.perf_counter()
        text, limit = _check_query(text, "text"), _check_limit(limit)
        with self._acquire() as view:
            vec = self.embed_query(text, view)
            fused, kw, sem = self._more_like(view, text, vec, limit, exclude=set())
            articles = view.store.get_many([d for d, _ in fused])
        hits = _hits(_distinct(fused, articles, "")[:limit], articles, kw, sem, 0)
        return Results(text[:200], "related", tuple(hits), len(hits), limit, 0, (time.perf_counter() - started) * 1000)

    def _more_like(self, view: _View, text: str, vec: np.ndarray | None, limit: int, exclude: set[str]):
        """Key terms and vector of ``text`` blended with related_alpha, then decayed by the distance in time to
        the anchor (the one excluded article, if any). The callers then drop copies (see ``_distinct``)."""
        s = self.settings
        depth = max(s.min_candidates, s.candidates * limit) + len(exclude)
        kw = [(d, sc) for d, sc in view.keyword.run(view.keyword.key_terms_query(text), depth)[0] if d not in exclude]
        sem = [(d, sc) for d, sc in view.vectors.search(vec, depth) if d not in exclude] if vec is not None else []
        if s.fusion == "rrf":
            fused = fusion.rrf([kw, sem], k=s.rrf_k)
        else:
            fused = fusion.convex(fusion.minmax(kw, lower=0.0), fusion.minmax(sem), s.related_alpha)
        anchor = view.store.get_many(sorted(exclude)) if len(exclude) == 1 and s.related_halflife > 0 else {}
        when = next(iter(anchor.values())).published if anchor else None
        if when is not None:
            stored = view.store.get_many([d for d, _ in fused])
            days = {d: abs((a.published - when).total_seconds()) / 86400 for d, a in stored.items() if a.published}
            fused = fusion.decay(fused, days, s.related_halflife)
        return fused, kw, sem

    # -- lookups -----------------------------------------------------------------------------
    def get(self, article_id: str) -> Article:
        with self._acquire() as view:
            return self._get(view, article_id)

    def get_many(self, ids: list[str]) -> list[Article]:
        """Stored articles for ``ids`` in the given order, skipping unknown ones."""
        with self._acquire() as view:
            found = view.store.get_many(ids)
        return [found[i] for i in ids if i in found]

    def _get(self, view: _View, article_id: str) -> Article:
        if not is_valid_id(article_id):
            raise InvalidQuery(f"{article_id!r} is not an article id (ids are 11 characters of A-Z a-z 0-9 _ -)")
        found = view.store.get_many([article_id])
        if article_id not in found:
            raise NotFound(f"no article with id {article_id} - search for it with `search-cli query`")
        return found[article_id]

    def health(self) -> dict:
        """Cheap liveness facts from the manifest: generation and article count."""
        with self._acquire() as view:
            return {"status": "ok", "generation": view.path.name, "articles": view.manifest.articles}

    def stats(self) -> dict:
        with self._acquire() as view:
            out = view.store.stats()
            m = view.manifest
            size = sum(p.stat().st_size for p in view.path.rglob("*") if p.is_file())
            out["vector_index"] = view.vectors.kind
        out.update(
            generation=view.path.name,
            index_dir=str(self.root),
            model=m.model_name,
            model_id=m.model_id,
            dim=m.dim,
            built_at=m.built_at,
            format_version=m.format_version,
            bytes_on_disk=size,
        )
        return out

    # -- for the shells (added by the hardening work; no query logic) ----------------------------
    def detail(self, article_id: str, listed_limit: int = MAX_LISTED) -> ArticleDetail:
        """An article and its first ``listed_limit`` publisher-listed related items that are stored."""
        with self._acquire() as view:
            article = self._get(view, article_id)
            wanted = list(article.related[:listed_limit])
            found = view.store.get_many(wanted)
        listed = tuple(found[i] for i in wanted if i in found)
        return ArticleDetail(article, listed, max(0, len(article.related) - listed_limit))

    _suggestions: tuple | None = None  # ((generation, topics, newest), Suggestions) of suggestions()

    def suggestions(self, topics: int = 4, newest: int = 3) -> Suggestions:
        """The live index's most frequent topics and newest articles (the home page's examples),
        computed once per generation."""
        with self._acquire() as view:
            key = (view.path.name, topics, newest)
            cached = self._suggestions
            if cached is None or cached[0] != key:
                found = Suggestions(
                    tuple(t for t, _ in view.store.top_topics(topics)), tuple(view.store.newest(newest))
                )
                cached = self._suggestions = (key, found)
        return cached[1]

    def warm_up(self, probe: str = "news") -> None:
        """Do now what the first requests would otherwise pay for: load (and on a first run export) the
        query model, open the index, and run ``probe`` through every mode and "more like this", so
        every engine has loaded its files and run its code once. Errors propagate (IndexMissing...)."""
        self.embedder.embed([probe])
        for mode in MODES:
            self.search(probe, mode=mode)
        self.related_text(probe, limit=1)
        for article in self.suggestions().newest:  # real titles reach other terms, vectors and rows
            self.search(" ".join(article.title.split()[:12]) or probe)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: str | datetime | None, name: str, end: bool = False) -> datetime | None:
    """A filter date: ``YYYY-MM-DD`` (an ``until`` date includes that whole day) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()) and end:
        day = parse_datetime(value.strip())
        if day is not None:
            return datetime.combine(day.date(), dtime.max, tzinfo=UTC)
    parsed = parse_datetime(value.strip() if isinstance(value, str) else value)
    if parsed is None:
        raise InvalidQuery(f"{name}={value!r} is not a date - use YYYY-MM-DD or an ISO 8601 timestamp")
    return parsed


def _check_query(query: str, name: str = "query") -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidQuery(f"{name} is empty - type some words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"{name} is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery(f"{name} holds undecodable bytes - send UTF-8 text") from None
    return query.strip()


def _check_filter(value: str | None, name: str) -> str | None:
    if not value:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidQuery(f"{name} must be a name of at most 200 characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery(f"{name}={value!r} is not valid text (it holds undecodable bytes)") from None
    return value


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidQuery(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit={limit!r} must be between 1 and {MAX_LIMIT}")
    return limit


def _check_offset(offset: int) -> int:
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidQuery(f"offset={offset!r} must be between 0 and {MAX_OFFSET}")
    return offset


def _normalised(title: str) -> str:
    return " ".join(re.findall(r"\w+", title.lower()))


def _distinct(
    fused: list[tuple[str, float]], articles: dict[str, Article], anchor_text: str
) -> list[tuple[str, float]]:
    """Drop copies of the anchor: the same title and excerpt (case and punctuation ignored)
    under another URL. Versions of a story with another excerpt stay: publishers list them
    as related, and dropping same-title versions cost 0.08 Recall@10 on the news corpus."""
    same = _normalised(anchor_text) if anchor_text else None
    return [(d, s) for d, s in fused if d in articles and _normalised(articles[d].text) != same]


def _hits(page, articles, kw, sem, offset: int) -> list[Hit]:
    kw_rank, sem_rank = fusion.ranks(kw), fusion.ranks(sem)
    kw_score, sem_score = dict(kw), dict(sem)
    return [
        Hit(articles[d], offset + i, score, kw_score.get(d), kw_rank.get(d), sem_score.get(d), sem_rank.get(d))
        for i, (d, score) in enumerate(page, start=1)
    ]
