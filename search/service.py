"""SearchService: the one query layer used by the CLI, the web app and Python callers.

Every search computes one match set (``search/matching.py`` says what matches), then ranks it
by the mode, sorts it, counts its facets and cuts the requested page out of it, so ``total``,
the facets and every page describe the same set.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from datetime import time as dtime
from typing import TypeVar

import numpy as np

from search import fusion, matching
from search.arrays import first_positions, member, union
from search.backend import Reader, make_backend
from search.config import MODES, Settings
from search.dates import parse_datetime
from search.errors import ConfigError, InvalidQuery, NotFound, QueryTimeout
from search.local import Filters, Scored
from search.models import Article, ArticleDetail, Components, Hit, Results, Story, Suggestions, Version
from search.query import Plan, parse
from search.urls import id_problem, id_to_int, int_to_id, is_valid_id

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100
MAX_OFFSET = 1000
MAX_VERSIONS = 20  # other versions of a story listed with one hit
MAX_LISTED = 100  # publisher-listed related items in one article response
FACET_VALUES = 10  # values of each facet listed, most frequent first; the others are counted in facets_other
SORTS = ("relevance", "newest")
NO_PLAN = Plan(text="")
T = TypeVar("T")

__all__ = ["Filters", "SearchService", "parse_date", "MAX_QUERY_CHARS", "MAX_LIMIT", "MAX_OFFSET", "SORTS"]


@dataclass(frozen=True)
class _Ranked:
    """A match set in rank order, with what each score was made of (arrays aligned with ``keys``)."""

    keys: np.ndarray
    score: np.ndarray
    keyword: np.ndarray
    similarity: np.ndarray | None
    semantic: np.ndarray | None
    keyword_norm: np.ndarray | None
    semantic_norm: np.ndarray | None
    matched_by: np.ndarray  # 1 words, 2 meaning, 3 both, 0 constraints alone
    weights: tuple[float, float] | None  # (keyword, semantic) in convex fusion


class SearchService:
    def __init__(self, settings: Settings | None = None, embedder=None):
        self.settings = settings or Settings()
        self.backend = make_backend(self.settings)
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._reader: Reader | None = None
        self._stamp_of_reader: tuple = ()
        self._users: dict[int, int] = {}
        self._retired: set[int] = set()
        self._swap_lock = threading.Lock()
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- generations -------------------------------------------------------------------------
    @contextmanager
    def _acquire(self):
        with self._swap_lock:
            reader = self._reader
            stamp = self.backend.stamp()
            if reader is None or self._stamp_of_reader != stamp:
                fresh = self.backend.open_reader()
                if reader is not None:
                    self._retire(reader)
                reader, self._reader, self._stamp_of_reader = fresh, fresh, stamp
            self._users[id(reader)] = self._users.get(id(reader), 0) + 1
        try:
            yield reader
        finally:
            with self._swap_lock:
                self._users[id(reader)] -= 1
                if id(reader) in self._retired and self._users[id(reader)] == 0:
                    self._close(reader)

    def _retire(self, reader: Reader) -> None:
        """Close ``reader`` once the last request using it is done (called with the swap lock held)."""
        if self._users.get(id(reader), 0) == 0:
            self._close(reader)
        else:
            self._retired.add(id(reader))

    def _close(self, reader: Reader) -> None:
        self._retired.discard(id(reader))
        self._users.pop(id(reader), None)
        reader.close()

    def __enter__(self) -> SearchService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._swap_lock:
            if self._reader is not None:
                self._retire(self._reader)
                self._reader = None

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

    def embed_query(self, text: str, reader: Reader) -> np.ndarray:
        with self._cache_lock:
            cached = self._query_vectors.get(text)
        if cached is not None:
            return cached
        embedder = self.embedder
        if (embedder.model_name, embedder.dim) != (reader.model_name, reader.dim):
            raise ConfigError(
                f"the index was built with {reader.model_name} ({reader.dim} dims) but queries use "
                f"{embedder.model_name} ({embedder.dim}) - query with the index's model (the query_embedder and "
                "model_path settings), or rebuild it with `search-cli index PATHS --rebuild`"
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
        collapse: bool = True,
        suggest: bool = True,
    ) -> Results:
        """The page ``offset``..``offset + limit`` of the query's match set, ranked by ``mode`` or
        newest first; with ``collapse`` (the default) one hit per story, its other versions listed.
        When nothing matches and ``suggest``, a "did you mean" built from the index's words, offered only
        if it has results under the same mode and filters."""
        started = time.perf_counter()
        query = _check_query(query)
        mode, sort = _check_choice("mode", mode, MODES), _check_choice("sort", sort, SORTS)
        limit, offset = _check_limit(limit), _check_offset(offset)
        filters = _filters(provider, topic, since, until)
        plan = parse(query)
        budget = _Budget(self.settings.request_budget_ms, started)
        with self._acquire() as reader:
            plan = matching.searchable(plan, reader.terms)
            words = matching.resolve(plan, reader.terms, reader.known, budget.exempt(reader.vocabulary))
            restriction = reader.restrict(plan, filters)
            budget.check("applying the query's operators and filters")
            s = self.settings
            need = matching.required(len(words.groups), plan.any_word, s.match_all_upto, s.match_fraction)
            if matching.nothing_to_match(plan, words):
                by_words = Scored.empty()
            else:
                by_words = reader.keyword_match(words.groups, need, words.scoring, restriction)
            budget.check("matching the query's words")
            qvec = moved = None
            by_meaning = nearest = Scored.empty()
            if words.semantic_text and words.known:
                budget.exempt(lambda: self.embedder)()  # loading the query model (warm-up may be at it) is shared work
                qvec = self.embed_query(words.semantic_text, reader)
                nearest = reader.semantic_top(qvec, s.min_candidates, restriction)
                unfiltered = nearest if restriction is None else reader.semantic_top(qvec, s.feedback_docs + 1, None)
                moved, by_meaning = self._by_meaning(reader, qvec, unfiltered, restriction)
            budget.check("matching by meaning")
            best_words = reader.keyword_top_terms(words.scoring, s.min_candidates, restriction)
            window = union(best_words.keys, nearest.keys)
            ranked = self._rank(reader, mode, by_words, by_meaning, words, qvec, moved, window)
            budget.check("ranking")
            order = _newest_first(reader, ranked) if sort == "newest" else np.arange(len(ranked.keys))
            counted = reader.facets(ranked.keys, size=None)
            facets = {name: values[:FACET_VALUES] for name, values in counted.items()}
            others = {name: sum(n for _, n in values[FACET_VALUES:]) for name, values in counted.items()}
            codes = reader.stories(ranked.keys)
            shown = _first_of_each_story(codes, order) if collapse else order
            page = shown[offset : offset + limit]
            hits = _hits(reader, ranked, page, offset, _versions(reader, ranked, codes, page) if collapse else None)
            suggestion = None
            if len(ranked.keys) == 0 and suggest:
                vocabulary = budget.exempt(reader.vocabulary)()
                suggestion = matching.suggestion(plan, lambda w: _knows_word(reader, w), vocabulary)
        if suggestion is not None:
            tried = self.search(suggestion, mode, 1, 0, provider, topic, since, until, suggest=False)
            suggestion = suggestion if tried.total else None  # "lorem ipsum dolor sit met" would find nothing too
        return Results(
            query,
            mode,
            tuple(hits),
            len(shown),
            limit,
            offset,
            (time.perf_counter() - started) * 1000,
            facets,
            filters.to_dict(),
            sort,
            corrections=words.corrections,
            suggestion=suggestion,
            fusion=self._fusion_info(mode),
            collapse=collapse,
            total_articles=len(ranked.keys),
            facets_other=others,
            total_relation="eq" if by_words.exact and by_meaning.exact else "gte",
        )

    def _fusion_info(self, mode: str) -> dict:
        s = self.settings
        if mode != "hybrid":
            return {"method": mode}
        if s.fusion == "rrf":
            return {"method": "rrf", "k": s.rrf_k}
        return {"method": "convex", "weight_keyword": round(1 - s.alpha, 6), "weight_semantic": s.alpha}

    def _by_meaning(self, reader: Reader, qvec: np.ndarray, nearest: Scored, restriction) -> tuple[np.ndarray, Scored]:
        """The query vector moved by pseudo-relevance feedback, and the articles close to it.

        Feedback (Rocchio) moves the query towards the mean of its ``feedback_docs`` most similar
        articles (``nearest``, best first, found without the restriction). Nothing matches by
        meaning unless the most similar article reaches ``semantic_floor``; then an article
        matches when its similarity to the moved query reaches the floor and ``semantic_relative``
        times the mean of the best ``relative_reference`` such similarities. Gate, feedback and
        reference all come from the whole index, so a filter or an operator only removes
        articles from the match set: a facet's count is what filtering on it finds.
        """
        s = self.settings
        if not len(nearest) or nearest.scores[0] < s.semantic_floor:
            return qvec, Scored.empty()
        moved = qvec
        if s.feedback_docs > 0:
            moved = fusion.rocchio(qvec, reader.vectors_of(nearest.keys[: s.feedback_docs]), s.feedback_weight)
        if restriction is None:  # the reference is the match set's own best: no second search
            found = reader.semantic_match(moved, s.semantic_floor, None)
            return moved, _relative(found, s.semantic_relative, s.relative_reference)
        best = reader.semantic_top(moved, s.relative_reference, None).scores
        best = best[best >= s.semantic_floor]
        if not len(best):
            return moved, Scored.empty()
        floor = max(s.semantic_floor, s.semantic_relative * float(best.mean()))
        return moved, reader.semantic_match(moved, floor, restriction)

    def _rank(
        self, reader: Reader, mode: str, by_words: Scored, by_meaning: Scored, words, qvec, moved, window
    ) -> _Ranked:
        """The match set (both sides' articles) ranked by ``mode``.

        Hybrid ranks as the retrievers always have: the best ``min_candidates`` articles of each
        side (``window``) are fused, each side's scores normalised by their range over the window;
        the rest of the match set follows, by the same fused score. Neither the ranking nor a
        score depends on where the match set ends or which page is asked for.
        """
        keys = union(by_words.keys, by_meaning.keys)
        in_words, in_meaning = member(keys, by_words.keys), member(keys, by_meaning.keys)
        matched = (in_words * (1 if words.groups else 0) + 2 * in_meaning).astype(np.int8)
        kw = reader.keyword_scores(words.scoring, keys) if words.scoring else np.zeros(len(keys), dtype=np.float32)
        sim = sem = kw_norm = sem_norm = None
        weights = None
        if qvec is not None and len(keys):
            vecs = reader.vectors_of(keys)
            sim = vecs @ qvec
            sem = vecs @ moved
        if mode == "keyword" or sim is None:
            score = kw.astype(np.float64)
            tie = sim if sim is not None else np.zeros(len(keys))
            order = np.lexsort((keys, -tie, -score))
        elif mode == "semantic":
            score = sim.astype(np.float64)
            order = np.lexsort((keys, -kw, -score))
        else:
            s = self.settings
            if s.fusion == "rrf":
                kw_ranks = np.where(kw > 0, fusion.rank_array(kw, keys), 0)
                score = fusion.rrf_array([kw_ranks, fusion.rank_array(sem, keys)], s.rrf_k)
            else:
                kw_window = reader.keyword_scores(words.scoring, window) if words.scoring else np.zeros(0)
                sem_window = reader.vectors_of(window) @ moved
                kw_top = float(kw_window.max()) if len(kw_window) else 0.0
                kw_norm = fusion.scale(kw, 0.0, kw_top) if kw_top > 0 else np.zeros(len(kw), dtype=np.float32)
                lo, hi = (float(sem_window.min()), float(sem_window.max())) if len(sem_window) else (0.0, 0.0)
                sem_norm = fusion.scale(sem, lo, hi)
                weights = (1 - s.alpha, s.alpha)
                score = weights[0] * kw_norm.astype(np.float64) + weights[1] * sem_norm.astype(np.float64)
            order = np.lexsort((keys, -score, ~member(keys, window)))  # the retrievers' candidates first
        pick = lambda a: None if a is None else a[order]  # noqa: E731
        return _Ranked(
            keys[order],
            score[order],
            kw[order],
            pick(sim),
            pick(sem) if mode == "hybrid" else None,
            pick(kw_norm),
            pick(sem_norm),
            matched[order],
            weights,
        )

    # -- more like this ----------------------------------------------------------------------
    def related(
        self,
        article_id: str,
        limit: int = 10,
        offset: int = 0,
        provider: str | None = None,
        topic: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
    ) -> Results:
        """Articles like the stored article ``article_id``, above the relatedness floors: other
        stories, one hit each; the article's own story's other articles under ``also_reported``."""
        started = time.perf_counter()
        limit, offset = _check_limit(limit), _check_offset(offset)
        filters = _filters(provider, topic, since, until)
        with self._acquire() as reader:
            article = self._get(reader, article_id)
            vec = reader.vectors_of(np.asarray([id_to_int(article.id)], dtype=np.int64))[0]
            results = self._related_page(reader, article.text, vec, article, limit, offset, filters)
            also = self._story(reader, article.story or article.id).versions
        also_reported = tuple(Version.of(a) for a in also if a.id != article.id)[:MAX_VERSIONS]
        return replace(results, query=article.title, also_reported=also_reported, took_ms=_ms(started))

    def related_text(
        self,
        text: str,
        limit: int = 10,
        offset: int = 0,
        provider: str | None = None,
        topic: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
    ) -> Results:
        """Articles like any ``text`` ("more like this" for text that is not in the index)."""
        started = time.perf_counter()
        text, limit, offset = _check_query(text, "text"), _check_limit(limit), _check_offset(offset)
        filters = _filters(provider, topic, since, until)
        with self._acquire() as reader:
            vec = self.embed_query(text, reader)
            results = self._related_page(reader, text, vec, None, limit, offset, filters)
        return replace(results, query=text[:200], took_ms=_ms(started))

    def _related_page(
        self,
        reader: Reader,
        text: str,
        vec: np.ndarray,
        anchor: Article | None,
        limit: int,
        offset: int,
        filters: Filters,
    ) -> Results:
        """One page of "more like this", one hit per story, never the anchor's own story."""
        ranked = self._more_like(reader, text, vec, anchor, filters)
        codes = reader.stories(ranked.keys)
        positions = np.arange(len(ranked.keys))
        if anchor is not None:
            own = reader.stories(np.asarray([id_to_int(anchor.id)], dtype=np.int64))[0]
            positions = np.flatnonzero(codes != own)
        shown = _first_of_each_story(codes, positions)
        page = shown[offset : offset + limit]
        hits = _hits(reader, ranked, page, offset, _versions(reader, ranked, codes, page))
        return Results(
            "",
            "related",
            tuple(hits),
            len(shown),
            limit,
            offset,
            filters=filters.to_dict(),
            collapse=True,
            total_articles=len(positions),  # the articles of the stories counted: not the anchor's own
        )

    def _more_like(
        self, reader: Reader, text: str, vec: np.ndarray, anchor: Article | None, filters: Filters
    ) -> _Ranked:
        """The anchor's key terms and vector, blended with related_alpha; items below both floors
        dropped, and those above the key-term floor alone when under related_keyword_similarity;
        scores decayed by the time between each item and the anchor; copies of the anchor
        (the same title and excerpt under another URL) left out."""
        s = self.settings
        restriction = reader.restrict(NO_PLAN, filters)
        depth = max(s.min_candidates, s.candidates * 10)
        anchor_key = id_to_int(anchor.id) if anchor is not None else -1
        by_words = _without_key(reader.keyword_top(reader.key_terms(text), depth + 1, restriction), anchor_key)
        by_meaning = _without_key(reader.semantic_top(vec, depth + 1, restriction), anchor_key)
        keys = union(by_words.keys, by_meaning.keys)
        kw = _aligned(keys, by_words)
        sim = reader.vectors_of(keys) @ vec if len(keys) else np.zeros(0, dtype=np.float32)
        kw_norm = fusion.minmax_array(kw, lower=0.0) if kw.max(initial=0.0) > 0 else np.zeros_like(kw)
        sem_norm = _aligned(keys, Scored(by_meaning.keys, fusion.minmax_array(by_meaning.scores)))
        by_terms = (kw_norm >= max(s.related_keyword_floor, 1e-6)) & (sim >= s.related_keyword_similarity)
        keep = (sim >= s.related_floor) | by_terms
        keys, kw, sim, kw_norm, sem_norm = keys[keep], kw[keep], sim[keep], kw_norm[keep], sem_norm[keep]
        weights = (1 - s.related_alpha, s.related_alpha)
        score = weights[0] * kw_norm.astype(np.float64) + weights[1] * sem_norm.astype(np.float64)
        if anchor is not None and anchor.published is not None and s.related_halflife > 0:
            dates = reader.dates(keys)
            known = dates != np.iinfo(np.int64).min
            days = np.abs(dates - int(anchor.published.timestamp())) / 86400.0
            factor = s.related_decay_floor + (1 - s.related_decay_floor) * 0.5 ** (days / s.related_halflife)
            score = np.where(known, score * factor, score)
        order = np.lexsort((keys, -score))
        ranked = _Ranked(
            keys[order],
            score[order],
            kw[order],
            sim[order],
            sim[order],
            kw_norm[order],
            sem_norm[order],
            (1 * (kw[order] > 0) + 2 * (sim[order] >= s.related_floor)).astype(np.int8),
            weights,
        )
        return _without_copies(reader, ranked, anchor)

    # -- stories -----------------------------------------------------------------------------
    def story(self, story_id: str) -> Story:
        """Every article of a story, oldest first. ``story_id`` may also be any of its articles' ids."""
        if not is_valid_id(story_id):
            raise InvalidQuery(id_problem(story_id, "a story id"))
        with self._acquire() as reader:
            found = self._story(reader, story_id)
            if not found.versions:
                article = self._get(reader, story_id)  # NotFound when it is neither
                found = self._story(reader, article.story or article.id)
        return found

    def _story(self, reader: Reader, story_id: str) -> Story:
        """The story named ``story_id``; an article without a story is a story of its own."""
        members = reader.articles(reader.story_members(story_id))
        if not members:
            alone = reader.articles([story_id])
            members = {i: a for i, a in alone.items() if not a.story or a.story == story_id}
        versions = sorted(members.values(), key=lambda a: (a.published is None, a.published or 0, a.id))
        return Story(story_id, tuple(versions))

    # -- lookups -----------------------------------------------------------------------------
    def get(self, article_id: str) -> Article:
        with self._acquire() as reader:
            return self._get(reader, article_id)

    def get_many(self, ids: list[str]) -> list[Article]:
        """Stored articles for ``ids`` in the given order, skipping unknown ones."""
        with self._acquire() as reader:
            found = reader.articles(ids)
        return [found[i] for i in ids if i in found]

    def _get(self, reader: Reader, article_id: str) -> Article:
        if not is_valid_id(article_id):
            raise InvalidQuery(id_problem(article_id))
        found = reader.articles([article_id])
        if article_id not in found:
            raise NotFound(f"no article with id {article_id} - search for it with `search-cli query`")
        return found[article_id]

    def health(self) -> dict:
        """Cheap liveness facts: the snapshot's version (generation or collection) and article count."""
        with self._acquire() as reader:
            return {"status": "ok", "generation": reader.version, "articles": reader.size}

    def stats(self) -> dict:
        with self._acquire() as reader:
            out = reader.stats()
        out.update(backend=self.backend.name, index_dir=self.backend.where())
        return out

    # -- for the shells (added by the hardening work; no query logic) ----------------------------
    def detail(self, article_id: str, listed_limit: int = MAX_LISTED) -> ArticleDetail:
        """An article and its first ``listed_limit`` publisher-listed related items that are stored."""
        with self._acquire() as view:
            article = self._get(view, article_id)
            wanted = list(article.related[:listed_limit])
            found = view.articles(wanted)
        listed = tuple(found[i] for i in wanted if i in found)
        return ArticleDetail(article, listed, max(0, len(article.related) - listed_limit))

    _suggestions: tuple | None = None  # ((generation, topics, newest), Suggestions) of suggestions()

    def suggestions(self, topics: int = 4, newest: int = 3) -> Suggestions:
        """The live index's most frequent topics and newest articles (the home page's examples),
        computed once per generation."""
        with self._acquire() as view:
            key = (view.version, topics, newest)
            cached = self._suggestions
            if cached is None or cached[0] != key:
                found = Suggestions(tuple(t for t, _ in view.top_topics(topics)), tuple(view.newest(newest)))
                cached = self._suggestions = (key, found)
        return cached[1]

    def warm_up(self, probe: str = "news") -> None:
        """Do now what the first requests would otherwise pay for: load (and on a first run export) the
        query model, open the index, and run ``probe`` through every mode and "more like this", so
        every engine has loaded its files and run its code once. Errors propagate (IndexMissing...)."""
        self.embedder.embed([probe])
        with self._acquire() as reader:
            reader.vocabulary()  # what the first misspelled word would otherwise wait for (seconds on Qdrant)
        for mode in MODES:
            self.search(probe, mode=mode)
        self.related_text(probe, limit=1)
        for article in self.suggestions().newest:  # real titles reach other terms, vectors and rows
            self.search(" ".join(article.title.split()[:12]) or probe)


class _Budget:
    """The time a request may take; ``check`` between stages gives up with QueryTimeout once it is spent.

    Every stage is bounded by itself (prefixes expand to at most 50 words, ranges are refused,
    queries are at most 1,000 characters), so a check between stages keeps a worker from being
    held much past the budget."""

    def __init__(self, budget_ms: int, started: float):
        self.deadline = started + budget_ms / 1000 if budget_ms > 0 else None

    def check(self, stage: str) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise QueryTimeout(f"the search ran out of time while {stage} - try fewer or more specific words")

    def exempt(self, load: Callable[[], T]) -> Callable[[], T]:
        """``load`` with its time added to the deadline: opening a part of the index that every later request
        shares (the vocabulary, read once per generation) is not this request's work."""

        def timed() -> T:
            started = time.perf_counter()
            try:
                return load()
            finally:
                if self.deadline is not None:
                    self.deadline += time.perf_counter() - started

        return timed


# -- ranking helpers ----------------------------------------------------------------------------
def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _relative(found: Scored, share: float, reference: int = 1) -> Scored:
    """Only the articles within ``share`` of the mean similarity of the best ``reference`` ones."""
    if share <= 0 or len(found) == 0:
        return found
    keep = found.scores >= share * float(found.scores[:reference].mean())
    return Scored(found.keys[keep], found.scores[keep], found.exact)


def _without_key(found: Scored, key: int) -> Scored:
    keep = found.keys != key
    return Scored(found.keys[keep], found.scores[keep])


def _aligned(keys: np.ndarray, scored: Scored) -> np.ndarray:
    """``scored``'s score of each of ``keys`` (0 where it has none)."""
    out = np.zeros(len(keys), dtype=np.float32)
    if len(scored) and len(keys):
        order = np.argsort(scored.keys)
        at = np.minimum(np.searchsorted(scored.keys[order], keys), len(order) - 1)
        found = scored.keys[order][at] == keys
        out[found] = scored.scores[order][at][found]
    return out


def _first_of_each_story(codes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The positions of ``order`` that are the first of their story (``codes``), in ``order``'s order."""
    if len(order) == 0:
        return order
    return order[np.sort(first_positions(codes[order]))]


def _versions(reader: Reader, ranked: _Ranked, codes: np.ndarray, page: np.ndarray) -> dict[int, tuple]:
    """For each page position, the other articles of its story in the match set, oldest first."""
    members = {int(p): np.flatnonzero(codes == codes[p]) for p in page}
    others = {p: [int(q) for q in m if q != p] for p, m in members.items()}
    ids = {q: int_to_id(int(ranked.keys[q])) for qs in others.values() for q in qs}
    stored = reader.articles(list(ids.values())) if ids else {}
    out: dict[int, tuple] = {}
    for p, qs in others.items():
        found = [stored[ids[q]] for q in qs if ids[q] in stored]
        found.sort(key=lambda a: (a.published is None, a.published or 0, a.id))
        out[p] = tuple(Version.of(a) for a in found[:MAX_VERSIONS])
    return out


def _newest_first(reader: Reader, ranked: _Ranked) -> np.ndarray:
    """Positions of the match set by publication time, newest first (undated last), then by rank."""
    dates = reader.dates(ranked.keys)
    return np.lexsort((np.arange(len(dates)), ~dates))


def _knows_word(reader: Reader, word: str) -> bool:
    terms = reader.terms(word)
    return not terms or any(reader.known(t) for t in terms)


def _without_copies(reader: Reader, ranked: _Ranked, anchor: Article | None) -> _Ranked:
    """Drop copies of the anchor: the same title and excerpt (case and punctuation ignored) under
    another URL. Versions of a story with another excerpt stay: publishers list them as related,
    and dropping same-title versions cost 0.08 Recall@10 on the news corpus."""
    if anchor is None or not len(ranked.keys):
        return ranked
    same = _normalised(anchor.text)
    head = [int_to_id(int(k)) for k in ranked.keys[: MAX_OFFSET + MAX_LIMIT]]
    stored = reader.articles(head)
    copies = {id_to_int(i) for i, a in stored.items() if _normalised(a.text) == same}
    if not copies:
        return ranked
    keep = ~member(ranked.keys, np.fromiter(copies, dtype=np.int64))
    return _Ranked(*(None if f is None else f[keep] if isinstance(f, np.ndarray) else f for f in _fields(ranked)))


def _fields(ranked: _Ranked) -> list:
    return [getattr(ranked, name) for name in _Ranked.__dataclass_fields__]


def _hits(
    reader: Reader, ranked: _Ranked, positions: np.ndarray, offset: int, versions: dict[int, tuple] | None = None
) -> list[Hit]:
    ids = [int_to_id(int(ranked.keys[p])) for p in positions]
    articles = reader.articles(ids)
    kw_rank = _rank_positions(ranked.keyword, ranked.keys, positive=True)
    sim_rank = _rank_positions(ranked.semantic if ranked.semantic is not None else ranked.similarity, ranked.keys)
    labels = {0: "constraints", 1: "words", 2: "meaning", 3: "both"}
    hits = []
    for n, (p, article_id) in enumerate(zip(positions, ids, strict=True), start=1):
        if article_id not in articles:
            continue
        w = ranked.weights
        components = Components(
            keyword_score=float(ranked.keyword[p]),
            keyword_rank=int(kw_rank[p]) if kw_rank is not None and kw_rank[p] > 0 else None,
            keyword_normalised=_at(ranked.keyword_norm, p),
            similarity=_at(ranked.similarity, p),
            semantic_score=_at(ranked.semantic, p),
            semantic_rank=int(sim_rank[p]) if sim_rank is not None else None,
            semantic_normalised=_at(ranked.semantic_norm, p),
            weight_keyword=w[0] if w else None,
            weight_semantic=w[1] if w else None,
            matched_by=labels[int(ranked.matched_by[p])],
        )
        listed = versions.get(int(p), ()) if versions else ()
        hits.append(Hit(articles[article_id], offset + n, float(ranked.score[p]), components, listed))
    return hits


def _rank_positions(scores: np.ndarray | None, keys: np.ndarray, positive: bool = False) -> np.ndarray | None:
    if scores is None:
        return None
    ranks = fusion.rank_array(scores, keys)
    return np.where(scores > 0, ranks, 0) if positive else ranks


def _at(values: np.ndarray | None, position: int) -> float | None:
    return None if values is None else float(values[position])


# -- validation ---------------------------------------------------------------------------------
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _filters(provider, topic, since, until) -> Filters:
    filters = Filters(
        _check_filter(provider, "provider"),
        _check_filter(topic, "topic"),
        parse_date(since, "since"),
        parse_date(until, "until", end=True),
    )
    if filters.since and filters.until and filters.since > filters.until:
        raise InvalidQuery("since is after until")
    return filters


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
