"""The Qdrant backend: the only module that imports qdrant_client.

One build is two collections, ``{alias}-bNNNNNN`` (the articles) and ``{alias}-bNNNNNN-meta``
(what a writer needs and a reader looks up by key: the ledger of sources and records, term
statistics, the vocabulary and the provider and topic names). Readers find the live build through
the alias (the ``qdrant_collection`` setting), which ``publish`` switches atomically; a build is
never changed once published, so a reader answers from the collection it opened. An update copies
the live build into a new one, applies its changes there and publishes the copy; the build it
replaced is kept (readers in flight may still use it) and older ones are dropped.

An article is one point, its id the int64 key behind the article id (``search.urls.id_to_int``):

- ``dense``: its embedding (cosine);
- ``title`` and ``excerpt``: sparse vectors of BM25 term weights (tf saturation and length
  normalisation, title tf times ``title_boost``) over the project's analyzer's terms
  (``search/analysis.py``), with ``Modifier.IDF`` so the server supplies the idf: the same BM25F
  the local backend scores with;
- payload: the article's stored fields, plus what filters and facets need: ``provider_key`` and
  ``topic_keys`` (folded names), ``domains`` (the domain and its parent domains), ``published_at``
  (seconds since the epoch), ``story``, ``terms`` (every indexed term), ``title_terms`` and
  ``excerpt_terms``, and ``title_seq``/``excerpt_seq`` (the terms in order, for phrases).

Terms are stored as *tokens*: a term itself when it is plain ASCII letters and digits, else a
hash of it, so any tokenizer (the server's full-text index, local mode's) splits a sequence back
into the same tokens. A term's sparse index is assigned once per term and kept in the meta
collection with its document and collection frequencies per field.

Exactness: match sets are enumerated exactly up to ``CAP`` articles per side; past it a side
returns its best ``CAP`` and says it is not exact (the service then reports ``total_relation:
"gte"``). Keyword scores are computed from the stored sparse vectors with the same idf formula as
the server's, so they are exact; top-k keyword lists come from the server and are checked against
a bound (see ``_top_by_sum``). With ``qdrant_path`` everything runs in process (Qdrant's local
mode: brute force, one process per folder): for tests and CI, never for timings.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from search import analysis
from search.backend import ModelInfo, Snapshot
from search.columns import NO_DATE, fold, timestamp
from search.config import Settings
from search.errors import ConfigError, IndexCorrupt, IndexLocked, IndexMissing, SearchError
from search.local import Scored
from search.models import Article
from search.query import All, Node, Not, Phrase, Plan, Word
from search.query import Any as AnyOf
from search.urls import id_to_int, int_to_id
from search.vocabulary import Vocabulary

try:
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm
except ImportError:  # the optional extra: `pip install 'news-search[qdrant]'`
    QdrantClient = None  # type: ignore[assignment,misc]
    qm = None  # type: ignore[assignment]

FORMAT_VERSION = 1
FIELDS = ("title", "excerpt")
CAP = 10_000  # articles one side of a match set is enumerated to, exactly
PAGE = 256  # points per upsert or scroll page
CACHE = 50_000  # per-reader cache of vectors and facts, in articles
ARTICLE_KEYS = tuple(Article("", "", "").to_dict())
_PLAIN = re.compile(r"[a-z0-9]+")
_MAX_KEY = 2**63


# -- tokens and payloads ------------------------------------------------------------------------
def token(term: str) -> str:
    """The stored form of an indexed term: itself if it is [a-z0-9]+, else ``x`` and a hash of it."""
    if _PLAIN.fullmatch(term):
        return term
    return "x" + hashlib.blake2b(term.encode("utf-8"), digest_size=8).hexdigest()


def tokens(text: str) -> list[str]:
    return [token(t) for t in analysis.analyze(text)]


def domain_suffixes(domain: str) -> list[str]:
    """``news.bbc.co.uk`` -> itself, ``bbc.co.uk``, ``co.uk``, ``uk``: a domain filter matches any of them."""
    labels = domain.lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]] if domain else []


def article_payload(article: Article, story: str) -> dict:
    out = article.to_dict()
    out["story"] = story
    provider = fold(article.provider)
    if provider:
        out["provider_key"] = provider
    out["topic_keys"] = list(dict.fromkeys(k for k in (fold(t) for t in article.topics) if k))
    out["domains"] = domain_suffixes(article.provider_domain)
    if article.published is not None:
        out["published_at"] = timestamp(article.published)
    out["content_hash"], out["text_hash"] = article.content_hash, article.text_hash
    seqs = {f: tokens(getattr(article, f)) for f in FIELDS}
    for f in FIELDS:
        out[f"{f}_seq"] = " ".join(seqs[f])
        out[f"{f}_terms"] = sorted(set(seqs[f]))
    out["terms"] = sorted(set(seqs["title"]) | set(seqs["excerpt"]))
    return out


def _sequence(payload: dict, f: str) -> list[str]:
    return (payload.get(f"{f}_seq") or "").split()


def _key_of(kind: str, key: str) -> int:
    """A meta point's id: a 63-bit hash of its kind and key."""
    digest = hashlib.blake2b(f"{kind}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _MAX_KEY


def _article(payload: dict) -> Article:
    return Article.from_dict(payload)


# -- the client ---------------------------------------------------------------------------------
class _Client:
    """One QdrantClient per server or folder in this process, shared by readers and writers.

    Local mode is not thread-safe, so its calls hold a lock; every failure of the client becomes
    one of the project's errors, naming where the index lives."""

    def __init__(self, settings: Settings):
        if QdrantClient is None:
            raise ConfigError("backend qdrant needs the Qdrant client: pip install 'news-search[qdrant]'")
        self.local = not settings.qdrant_url
        if self.local and not settings.qdrant_path:
            raise ConfigError("backend qdrant needs qdrant_url (a server) or qdrant_path (a folder for local mode)")
        self.where = settings.qdrant_url or str(Path(settings.qdrant_path).absolute())
        self._lock = threading.RLock() if self.local else None
        try:
            if self.local:
                _check_unlocked(Path(self.where))
                self.client = QdrantClient(path=self.where)
            else:
                self.client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=60)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise IndexLocked(
                    f"the Qdrant folder {self.where} is open in another process (local mode allows one at a time) "
                    "- stop it, or use a Qdrant server (qdrant_url)"
                ) from None
            raise SearchError(f"Qdrant at {self.where} cannot be opened: {exc}") from None

    def __call__(self, method: str, *args, **kwargs):
        try:
            if self._lock is None:
                return getattr(self.client, method)(*args, **kwargs)
            with self._lock:
                if method != "create_payload_index":
                    return getattr(self.client, method)(*args, **kwargs)
                with warnings.catch_warnings():  # "payload indexes have no effect in the local Qdrant"
                    warnings.simplefilter("ignore", UserWarning)
                    return getattr(self.client, method)(*args, **kwargs)
        except SearchError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client raises many types (HTTP, gRPC, ValueError)
            raise _translated(exc, self.where) from None


def _check_unlocked(folder: Path) -> None:
    """IndexLocked when another process has the local-mode folder open (asked before the client, which
    would leave its lock file open on failing)."""
    lock = folder / ".lock"
    if not lock.is_file():
        return
    with lock.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"Storage folder {folder} is already accessed by another instance") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _translated(exc: Exception, where: str) -> SearchError:
    text = " ".join(str(exc).split())[:300]
    if "not found" in text.lower() or "doesn't exist" in text.lower():
        return IndexMissing(f"Qdrant at {where}: {text} - the index changed or was removed; run the command again")
    return SearchError(f"Qdrant at {where} failed: {type(exc).__name__}: {text}")


_clients: dict[tuple, _Client] = {}
_clients_lock = threading.Lock()


def connect(settings: Settings) -> _Client:
    key = (settings.qdrant_url, settings.qdrant_api_key) if settings.qdrant_url else ("path", settings.qdrant_path)
    if not settings.qdrant_url and settings.qdrant_path:
        key = ("path", str(Path(settings.qdrant_path).absolute()))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if not _clients:
                atexit.register(close_clients)  # before the interpreter's teardown, which the client trips on
            client = _clients[key] = _Client(settings)
        return client


def close_clients(under: str | Path | None = None) -> None:
    """Close the clients this process opened (those of local-mode folders under ``under``, when
    given); local mode then releases its folders."""
    prefix = str(Path(under).absolute()) if under is not None else None
    with _clients_lock:
        for key, client in list(_clients.items()):
            if prefix is None or (key[0] == "path" and Path(key[1]).is_relative_to(prefix)):
                client("close")
                del _clients[key]


# -- names of builds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Names:
    alias: str

    def build(self, number: int) -> str:
        return f"{self.alias}-b{number:06d}"

    @staticmethod
    def meta(build: str) -> str:
        return f"{build}-meta"

    @property
    def lock(self) -> str:
        return f"{self.alias}-lock"

    def number(self, collection: str) -> int | None:
        found = re.fullmatch(re.escape(self.alias) + r"-b(\d{6})(?:-meta)?", collection)
        return int(found.group(1)) if found else None


def _points(client: _Client, collection: str, flt=None, payload: Any = True, vectors: Any = False) -> Iterator:
    """Every point of ``collection`` (matching ``flt``), page by page."""
    offset = None
    while True:
        page, offset = client(
            "scroll",
            collection,
            scroll_filter=flt,
            limit=PAGE,
            offset=offset,
            with_payload=payload,
            with_vectors=vectors,
        )
        yield from page
        if offset is None:
            return


def _kind(kind: str):
    return qm.Filter(must=[qm.FieldCondition(key="kind", match=qm.MatchValue(value=kind))])


# -- the meta collection's tables ---------------------------------------------------------------
CHUNK = 2_000  # vocabulary words per meta point


def _load_json_chunks(client: _Client, meta: str, kind: str) -> list:
    return [json.loads(p.payload["data"]) for p in _points(client, meta, _kind(kind))]


def _save_json_chunks(client: _Client, meta: str, kind: str, items: list) -> None:
    client("delete", meta, points_selector=qm.FilterSelector(filter=_kind(kind)))
    points = [
        qm.PointStruct(id=_key_of(kind, str(n)), vector={}, payload={"kind": kind, "data": json.dumps(chunk)})
        for n, chunk in enumerate(items)
    ]
    for start in range(0, len(points), PAGE):
        client("upsert", meta, points[start : start + PAGE])


def _load_vocabulary(client: _Client, meta: str) -> Vocabulary:
    counts: Counter = Counter()
    for chunk in _load_json_chunks(client, meta, "vocabulary"):
        counts.update(chunk)
    return Vocabulary(counts)


def _save_vocabulary(client: _Client, meta: str, vocabulary: Vocabulary) -> None:
    words = sorted(vocabulary.counts.items())
    _save_json_chunks(client, meta, "vocabulary", [dict(words[i : i + CHUNK]) for i in range(0, len(words), CHUNK)])


@dataclass
class _Spellings:
    """Provider and topic names: per folded name, how often each spelling occurs (the facets show
    the most frequent one)."""

    provider: dict[str, Counter] = field(default_factory=dict)
    topic: dict[str, Counter] = field(default_factory=dict)

    def change(self, article: Article, sign: int) -> None:
        for kind, names in (("provider", [article.provider]), ("topic", list(article.topics))):
            table = getattr(self, kind)
            for name in names:
                name = " ".join(name.split())
                if name:
                    counts = table.setdefault(fold(name), Counter())
                    counts[name] += sign
                    if counts[name] <= 0:
                        del counts[name]
                    if not counts:
                        del table[fold(name)]

    def display(self, kind: str, key: str) -> str:
        counts = getattr(self, kind).get(key)
        return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else key

    def to_list(self) -> list:
        return [{"provider": self.provider, "topic": self.topic}]

    @classmethod
    def from_list(cls, items: list) -> _Spellings:
        if not items:
            return cls()
        return cls(*({k: Counter(v) for k, v in items[0][kind].items()} for kind in ("provider", "topic")))


@dataclass
class _Term:
    """A term's entry in the meta collection: its sparse index, and per field its document
    frequency and total count."""

    token: str
    index: int
    df: dict[str, int]
    cf: dict[str, int]

    def payload(self) -> dict:
        return {"kind": "term", "token": self.token, "index": self.index, "df": self.df, "cf": self.cf}

    @classmethod
    def of(cls, payload: dict) -> _Term:
        return cls(payload["token"], int(payload["index"]), dict(payload["df"]), dict(payload["cf"]))


def _terms(client: _Client, meta: str, wanted: Iterable[str]) -> dict[str, _Term]:
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return {}
    found = client("retrieve", meta, ids=[_key_of("term", t) for t in wanted], with_payload=True)
    return {p.payload["token"]: _Term.of(p.payload) for p in found}


def _field_counts(payload: dict | None) -> dict[str, Counter]:
    return {f: Counter(_sequence(payload, f)) if payload else Counter() for f in FIELDS}


# -- restrictions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Restriction:
    """What a query's constraints and filters allow: a Qdrant filter (None: every article), or nothing."""

    filter: Any = None
    nothing: bool = False


class _Constraints:
    """The query plan's nodes and the filters as Qdrant conditions (True: anything; False: nothing)."""

    def __init__(self, reader: QdrantReader):
        self.reader = reader

    def restrict(self, plan: Plan, filters) -> Restriction | None:
        must = [self.node(n) for n in plan.must]
        must_not = [self.node(n) for n in plan.must_not]
        if filters.provider:
            must.append(_match("provider_key", fold(filters.provider)))
        if filters.topic:
            must.append(_match("topic_keys", fold(filters.topic)))
        if filters.since or filters.until:
            since = int(filters.since.timestamp()) if filters.since else None
            until = int(filters.until.timestamp()) if filters.until else None
            must.append(qm.FieldCondition(key="published_at", range=qm.Range(gte=since, lte=until)))
        if not must and not must_not:
            return None
        if any(c is False for c in must) or any(c is True for c in must_not):
            return Restriction(nothing=True)
        must = [c for c in must if c is not True]
        must_not = [c for c in must_not if c is not False]
        if not must and not must_not:
            return Restriction()
        return Restriction(qm.Filter(must=must or None, must_not=must_not or None))

    def node(self, node: Node):
        if isinstance(node, All):
            return _all([self.node(c) for c in node.children])
        if isinstance(node, AnyOf):
            return _any([self.node(c) for c in node.children])
        if isinstance(node, Not):
            child = self.node(node.child)
            return (not child) if isinstance(child, bool) else qm.Filter(must_not=[child])
        if node.field == "provider":
            return _match("provider_key", fold(node.text)) if fold(node.text) else False
        if node.field == "topic":
            return _match("topic_keys", fold(node.text)) if fold(node.text) else False
        if node.field == "domain":
            name = fold(node.text).removeprefix("www.")
            return _match("domains", name) if name else False
        fields_ = (node.field,) if node.field else FIELDS
        if isinstance(node, Phrase):
            return self.phrase(node.text, fields_)
        return self.word(node, fields_)

    def word(self, node: Word, fields_: tuple[str, ...]):
        if node.prefix:
            words = self.reader.vocabulary().expand(node.text)
            found = sorted({t for w in words for t in tokens(w)})
            return _presence(found, fields_) if found else False
        found = tokens(node.text)
        if not found:  # a stop word constrains nothing
            return True
        if len(found) > 1:  # "covid-19": the parts in order
            return self.phrase(node.text, fields_)
        return _presence(found, fields_)

    def phrase(self, text: str, fields_: tuple[str, ...]):
        found = tokens(text)
        if len(found) <= 1:
            return _presence(found, fields_) if found else True
        phrase = " ".join(found)
        return _any([qm.FieldCondition(key=f"{f}_seq", match=qm.MatchPhrase(phrase=phrase)) for f in fields_])


def _match(key: str, value: str):
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def _presence(found: list[str], fields_: tuple[str, ...]):
    key = "terms" if set(fields_) == set(FIELDS) else f"{fields_[0]}_terms"
    match = qm.MatchValue(value=found[0]) if len(found) == 1 else qm.MatchAny(any=found)
    return qm.FieldCondition(key=key, match=match)


def _all(parts: list):
    if any(p is False for p in parts):
        return False
    parts = [p for p in parts if p is not True]
    return True if not parts else parts[0] if len(parts) == 1 else qm.Filter(must=parts)


def _any(parts: list):
    if any(p is True for p in parts):
        return True
    parts = [p for p in parts if p is not False]
    return False if not parts else parts[0] if len(parts) == 1 else qm.Filter(should=parts)


def _with(restriction: Restriction | None, *conditions) -> Any:
    """A filter: the restriction's and ``conditions``, all required (None when there are none)."""
    must = [c for c in conditions if c is not None]
    if restriction is not None and restriction.filter is not None:
        must.insert(0, restriction.filter)
    return qm.Filter(must=must) if must else None


# -- the reader ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Facts:
    provider: str  # folded
    topics: tuple[str, ...]  # folded, each once
    published: int
    story: int


class QdrantReader:
    """One published build, opened for reading (the reader protocol of search/backend.py)."""

    def __init__(self, client: _Client, collection: str):
        self.client = client
        self.collection = collection
        self.meta = _Names.meta(collection)
        info = client("get_collection", collection)
        self.info = dict(info.config.metadata or {})
        if self.info.get("format") != FORMAT_VERSION or not self.info.get("published"):
            raise IndexCorrupt(
                f"Qdrant collection {collection} at {client.where} is not a published index of this version - "
                "rebuild it with `search-cli index --rebuild --backend qdrant`"
            )
        self.version = collection
        self.size = int(self.info["articles"])
        self.model_name = self.info["model_name"]
        self.dim = int(self.info["dim"])
        self._terms: dict[str, _Term | None] = {}
        self._vectors: dict[int, np.ndarray] = {}
        self._sparse: dict[int, dict[str, tuple[list[int], list[float]]]] = {}
        self._facts: dict[int, _Facts | None] = {}
        self._vocabulary: Vocabulary | None = None
        self._spellings: _Spellings | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._vectors.clear()
            self._sparse.clear()
            self._facts.clear()

    # -- words -----------------------------------------------------------------------------------
    def terms(self, text: str) -> list[str]:
        return analysis.analyze(text)

    def known(self, term: str) -> bool:
        return self._term_info([token(term)]).get(token(term)) is not None

    def vocabulary(self) -> Vocabulary:
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = _load_vocabulary(self.client, self.meta)
            return self._vocabulary

    def _spelling(self) -> _Spellings:
        with self._lock:
            if self._spellings is None:
                self._spellings = _Spellings.from_list(_load_json_chunks(self.client, self.meta, "names"))
            return self._spellings

    def _term_info(self, wanted: Iterable[str]) -> dict[str, _Term | None]:
        wanted = list(dict.fromkeys(wanted))
        missing = [t for t in wanted if t not in self._terms]
        if missing:
            found = _terms(self.client, self.meta, missing)
            with self._lock:
                for t in missing:
                    self._terms[t] = found.get(t)
        return {t: self._terms[t] for t in wanted}

    # -- constraints -----------------------------------------------------------------------------
    def restrict(self, plan: Plan, filters) -> Restriction | None:
        return _Constraints(self).restrict(plan, filters)

    # -- keyword side ----------------------------------------------------------------------------
    def keyword_match(self, groups: list, required: int, scoring: list, restriction) -> Scored:
        """Articles holding at least ``required`` of the word ``groups`` within ``restriction``
        (every article of it when there are no groups), each with its BM25F score.

        When the words' postings are short (their document frequencies add up to at most CAP per
        field), the articles holding any of them are read from the sparse vectors and the groups
        counted here; longer ones are left to the server, as a ``min_should`` filter over ``terms``."""
        if restriction is not None and restriction.nothing:
            return Scored.empty()
        queries = self._queries([(f, t, w) for t, w in scoring for f in FIELDS])
        if not groups:
            if restriction is None:
                return Scored.empty()
            return self._enumerate(_with(restriction), queries)
        info = self._term_info(token(t) for g in groups for t, _ in g)
        found = [sorted({token(t) for t, _ in g if info.get(token(t)) is not None}) for g in groups]
        found = [g for g in found if g]
        need = max(1, required)
        if len(found) < need:
            return Scored.empty()
        entries = [[info[t] for t in g] for g in found]
        if all(sum(e.df.get(f, 0) for g in entries for e in g) <= CAP for f in FIELDS):
            return self._count_groups(entries, need, queries, restriction)
        conditions = [_presence(g, FIELDS) for g in found]
        return self._enumerate(
            _with(restriction, qm.Filter(min_should=qm.MinShould(conditions=conditions, min_count=need))), queries
        )

    def _count_groups(self, groups: list[list[_Term]], need: int, queries, restriction) -> Scored:
        """The articles holding terms of at least ``need`` groups, found through the terms' postings."""
        flt = _with(restriction)
        candidates: set[int] = set()
        for f in FIELDS:
            indices = sorted({e.index for g in groups for e in g if e.df.get(f, 0) > 0})
            if indices:
                vector = qm.SparseVector(indices=indices, values=[1.0] * len(indices))
                hits = self.client(
                    "query_points",
                    self.collection,
                    query=vector,
                    using=f,
                    query_filter=flt,
                    limit=CAP,
                    with_payload=False,
                ).points
                candidates.update(int(h.id) for h in hits)
        keys = np.fromiter(sorted(candidates), dtype=np.int64, count=len(candidates))
        sparse = self._sparse_of(keys)
        wanted = [{e.index for e in g} for g in groups]
        keep = np.zeros(len(keys), dtype=bool)
        for row, key in enumerate(keys.tolist()):
            vectors = sparse.get(key)
            held = set(vectors["title"][0]) | set(vectors["excerpt"][0]) if vectors else set()
            keep[row] = sum(1 for g in wanted if g & held) >= need
        keys = keys[keep]
        return _sorted(keys, self._scores(queries, keys))

    def _enumerate(self, flt, queries) -> Scored:
        """Every article passing ``flt`` with its score, or past CAP the best CAP of them (not exact)."""
        page, _ = self.client("scroll", self.collection, scroll_filter=flt, limit=CAP + 1, with_payload=False)
        keys = np.fromiter((int(p.id) for p in page), dtype=np.int64, count=len(page))
        if len(keys) <= CAP:
            return _sorted(keys, self._scores(queries, keys))
        best = self._top_by_sum(queries, CAP, flt)
        if len(best) < CAP:  # too few articles score: fill up with the rest of the match set, unscored
            rest = keys[~np.isin(keys, best.keys)][: CAP - len(best)]
            best = Scored(np.concatenate([best.keys, rest]), np.concatenate([best.scores, np.zeros(len(rest))]))
        return Scored(best.keys, best.scores.astype(np.float32), exact=False)

    def keyword_scores(self, scoring: list, keys: np.ndarray) -> np.ndarray:
        """BM25F of ``keys`` for (term, weight) pairs, from their stored sparse vectors."""
        return self._scores(self._queries([(f, t, w) for t, w in scoring for f in FIELDS]), keys)

    def keyword_top_terms(self, scoring: list, limit: int, restriction) -> Scored:
        return self.keyword_top([(f, t, w) for t, w in scoring for f in FIELDS], limit, restriction)

    def keyword_top(self, weighted: list[tuple[str, str, float]], limit: int, restriction) -> Scored:
        """The best ``limit`` articles for (field, term, weight) triples."""
        if restriction is not None and restriction.nothing:
            return Scored.empty()
        return self._top_by_sum(self._queries(weighted), limit, _with(restriction))

    def key_terms(self, text: str, numterms: int = 20) -> list[tuple[str, str, float]]:
        """The most distinctive terms of ``text`` per field (Bo1 divergence from randomness, as the
        keyword index picks them): (field, term, weight) with weights normalised per field."""
        counts = Counter(analysis.analyze(text))
        info = self._term_info(token(t) for t in counts)
        boost = float(self.info["title_boost"])
        out = []
        for f in FIELDS:
            weight = {t: n * (boost if f == "title" else 1.0) for t, n in counts.items()}
            scored = []
            for term, w in weight.items():
                entry = info.get(token(term))
                cf = entry.cf.get(f, 0) * (boost if f == "title" else 1.0) if entry else 0
                if cf > 0:
                    scored.append((_bo1(w, cf, self.size), term))
            if not scored:
                continue
            top = max(s for s, _ in scored)
            norm = _bo1(top, top, self.size) if top else 1.0
            ranked = sorted(((s / norm, t) for s, t in scored), key=lambda st: (-st[0], st[1]))
            out.extend((f, t, float(s)) for s, t in ranked[:numterms])
        return out

    def _queries(self, weighted: list[tuple[str, str, float]]) -> dict[str, dict[int, tuple[float, float]]]:
        """Per field: sparse index -> (query weight, weight times idf), for the terms the index holds.
        The server is sent the weights (it applies the idf itself); exact scores use the products."""
        info = self._term_info(token(t) for _, t, _ in weighted)
        sums: dict[str, dict[int, float]] = {f: {} for f in FIELDS}
        df: dict[tuple[str, int], int] = {}
        for f, t, w in weighted:
            entry = info.get(token(t))
            if entry is not None and entry.df.get(f, 0) > 0 and w:
                sums[f][entry.index] = sums[f].get(entry.index, 0.0) + float(w)
                df[f, entry.index] = entry.df[f]
        n = self.size
        return {
            f: {i: (w, w * math.log((n - df[f, i] + 0.5) / (df[f, i] + 0.5) + 1)) for i, w in query.items()}
            for f, query in sums.items()
            if query
        }

    def _scores(self, queries: dict[str, dict[int, tuple[float, float]]], keys: np.ndarray) -> np.ndarray:
        """Exact BM25F of ``keys``: their stored sparse vectors times the query weights and idf."""
        out = np.zeros(len(keys), dtype=np.float64)
        if not queries or not len(keys):
            return out.astype(np.float32)
        weights = {f: {i: wi for i, (_, wi) in query.items()} for f, query in queries.items()}
        sparse = self._sparse_of(keys)
        for row, key in enumerate(keys.tolist()):
            vectors = sparse.get(key)
            if vectors is None:
                continue
            total = 0.0
            for f, query in weights.items():
                indices, values = vectors[f]
                total += sum(query.get(i, 0.0) * v for i, v in zip(indices, values, strict=True))
            out[row] = total
        return out.astype(np.float32)

    def _top_by_sum(self, queries: dict[str, dict[int, tuple[float, float]]], limit: int, flt) -> Scored:
        """The ``limit`` articles with the highest sum of per-field scores.

        Each field's top ``depth`` come from the server; their union is scored exactly. An article
        in neither list scores at most the sum of the lists' last scores, so once the ``limit``-th
        best exact score reaches that bound (or every list is complete) the answer is exact;
        otherwise the lists get deeper, up to CAP, and past it the answer is marked inexact."""
        if not queries or limit <= 0:
            return Scored.empty()
        depth = max(2 * limit, 50)
        while True:
            found: set[int] = set()
            bound = 0.0
            for f, query in queries.items():
                vector = qm.SparseVector(indices=list(query), values=[w for w, _ in query.values()])
                hits = self.client(
                    "query_points",
                    self.collection,
                    query=vector,
                    using=f,
                    query_filter=flt,
                    limit=depth,
                    with_payload=False,
                ).points
                found.update(int(h.id) for h in hits)
                if len(hits) == depth:
                    bound += float(hits[-1].score)
            keys = np.fromiter(found, dtype=np.int64, count=len(found))
            scores = self._scores(queries, keys)
            best = _sorted(keys[scores > 0], scores[scores > 0])
            cut = Scored(best.keys[:limit], best.scores[:limit])
            complete = bound == 0.0 or (len(cut) == limit and cut.scores[-1] >= bound * (1 + 1e-6))
            if complete or depth >= CAP:
                return Scored(cut.keys, cut.scores, exact=complete)
            depth = min(CAP, depth * 4)

    # -- semantic side ---------------------------------------------------------------------------
    def semantic_top(self, vector: np.ndarray, limit: int, restriction) -> Scored:
        if restriction is not None and restriction.nothing:
            return Scored.empty()
        hits = self._dense(vector, limit, _with(restriction))
        return _scored_hits(hits)

    def semantic_match(self, vector: np.ndarray, floor: float, restriction) -> Scored:
        """Articles whose cosine similarity to ``vector`` is at least ``floor`` (at most CAP of them)."""
        if restriction is not None and restriction.nothing:
            return Scored.empty()
        hits = self._dense(vector, CAP, _with(restriction), threshold=float(floor) - 1e-6)
        found = _scored_hits(hits)
        return Scored(found.keys, found.scores, exact=len(hits) < CAP)

    def _dense(self, vector: np.ndarray, limit: int, flt, threshold: float | None = None) -> list:
        return self.client(
            "query_points",
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            using="dense",
            query_filter=flt,
            limit=limit,
            score_threshold=threshold,
            with_payload=False,
        ).points

    def vectors_of(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        missing = [int(k) for k in dict.fromkeys(keys.tolist()) if int(k) not in self._vectors]
        if missing:
            found = self.client("retrieve", self.collection, ids=missing, with_payload=False, with_vectors=["dense"])
            fresh = {int(p.id): np.asarray(p.vector["dense"], dtype=np.float32) for p in found}
            self._remember(self._vectors, fresh)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        for row, key in enumerate(keys.tolist()):
            vec = self._vectors.get(int(key))
            if vec is not None:
                out[row] = vec
        return out

    def _sparse_of(self, keys: np.ndarray) -> dict[int, dict[str, tuple[list[int], list[float]]]]:
        wanted = [int(k) for k in dict.fromkeys(np.asarray(keys).tolist())]
        missing = [k for k in wanted if k not in self._sparse]
        if missing:
            found = self.client("retrieve", self.collection, ids=missing, with_payload=False, with_vectors=list(FIELDS))
            fresh = {}
            for p in found:
                vectors = p.vector or {}
                fresh[int(p.id)] = {
                    f: (list(vectors[f].indices), list(vectors[f].values)) if f in vectors else ([], []) for f in FIELDS
                }
            self._remember(self._sparse, fresh)
        return {k: self._sparse[k] for k in wanted if k in self._sparse}

    def _remember(self, cache: dict, fresh: dict) -> None:
        with self._lock:
            if len(cache) + len(fresh) > CACHE:
                cache.clear()
            cache.update(fresh)

    # -- sets of articles ------------------------------------------------------------------------
    def _facts_of(self, keys: np.ndarray) -> list[_Facts | None]:
        keys = np.asarray(keys, dtype=np.int64).tolist()
        missing = [k for k in dict.fromkeys(keys) if k not in self._facts]
        if missing:
            wanted = ["provider_key", "topic_keys", "published_at", "story"]
            found = {
                int(p.id): p.payload for p in self.client("retrieve", self.collection, ids=missing, with_payload=wanted)
            }
            fresh = {}
            for k in missing:
                p = found.get(k)
                fresh[k] = (
                    None
                    if p is None
                    else _Facts(
                        p.get("provider_key", ""),
                        tuple(p.get("topic_keys") or ()),
                        int(p.get("published_at", NO_DATE)),
                        id_to_int(p.get("story") or int_to_id(k)),
                    )
                )
            self._remember(self._facts, fresh)
        facts = self._facts
        return [facts.get(k) for k in keys]

    def facets(self, keys: np.ndarray, size: int = 10) -> dict[str, list[tuple[str, int]]]:
        providers: Counter = Counter()
        topics: Counter = Counter()
        for fact in self._facts_of(keys):
            if fact is None:
                continue
            if fact.provider:
                providers[fact.provider] += 1
            topics.update(fact.topics)
        names = self._spelling()
        out = {}
        for kind, counts in (("provider", providers), ("topic", topics)):
            pairs = [(names.display(kind, key), n) for key, n in counts.items()]
            out[kind] = sorted(pairs, key=lambda kv: (-kv[1], kv[0]))[:size]
        return out

    def dates(self, keys: np.ndarray) -> np.ndarray:
        return np.fromiter((f.published if f else NO_DATE for f in self._facts_of(keys)), dtype=np.int64)

    def stories(self, keys: np.ndarray) -> np.ndarray:
        return np.fromiter((f.story if f else -1 for f in self._facts_of(keys)), dtype=np.int64)

    def story_members(self, story_id: str) -> list[str]:
        flt = qm.Filter(must=[_match("story", story_id)])
        page, _ = self.client("scroll", self.collection, scroll_filter=flt, limit=CAP, with_payload=False)
        return [int_to_id(int(p.id)) for p in page]

    def articles(self, ids: list[str]) -> dict[str, Article]:
        keys = [id_to_int(i) for i in dict.fromkeys(ids)]
        if not keys:
            return {}
        found = self.client("retrieve", self.collection, ids=keys, with_payload=list(ARTICLE_KEYS))
        return {a.id: a for a in (_article(p.payload) for p in found)}

    def top_topics(self, n: int) -> list[tuple[str, int]]:
        names = self._spelling().topic
        pairs = [(min(counts), sum(counts.values())) for counts in names.values()]
        return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))[:n]

    def newest(self, n: int) -> list[Article]:
        flt = qm.Filter(must_not=[qm.FieldCondition(key="is_stub", match=qm.MatchValue(value=True))])
        order = qm.OrderBy(key="published_at", direction=qm.Direction.DESC)
        page, _ = self.client(
            "scroll", self.collection, scroll_filter=flt, limit=n + 20, order_by=order, with_payload=list(ARTICLE_KEYS)
        )
        found = sorted((_article(p.payload) for p in page), key=lambda a: (-a.published.timestamp(), a.id))
        return found[:n]

    def stats(self) -> dict:
        info = self.info
        stub = qm.Filter(must=[qm.FieldCondition(key="is_stub", match=qm.MatchValue(value=True))])
        return {
            "articles": self.size,
            "stubs": self.client("count", self.collection, count_filter=stub, exact=True).count,
            "providers": len(self._spelling().provider),
            "sources": self.client("count", self.meta, count_filter=_kind("source"), exact=True).count,
            "oldest": self._edge(qm.Direction.ASC),
            "newest": self._edge(qm.Direction.DESC),
            "vector_index": "qdrant (in process, exact)" if self.client.local else "qdrant (hnsw)",
            "generation": self.version,
            "model": info["model_name"],
            "model_id": info["model_id"],
            "dim": self.dim,
            "built_at": info["built_at"],
            "format_version": info["format"],
        }

    def _edge(self, direction) -> str | None:
        page, _ = self.client(
            "scroll",
            self.collection,
            limit=1,
            order_by=qm.OrderBy(key="published_at", direction=direction),
            with_payload=["published"],
        )
        return page[0].payload.get("published") if page else None


def _bo1(weight: float, collection: float, n: int) -> float:
    """Bo1's score of a term ``weight`` times in the text and ``collection`` times in the index of ``n`` articles."""
    f = collection / max(n, 1)
    return weight * math.log((1.0 + f) / f, 2) + math.log(1.0 + f, 2)


def _sorted(keys: np.ndarray, scores: np.ndarray) -> Scored:
    order = np.lexsort((keys, -scores))
    return Scored(keys[order], np.asarray(scores, dtype=np.float32)[order])


def _scored_hits(hits: list) -> Scored:
    keys = np.fromiter((int(h.id) for h in hits), dtype=np.int64, count=len(hits))
    scores = np.fromiter((h.score for h in hits), dtype=np.float32, count=len(hits))
    return _sorted(keys, scores)


# -- the writer ---------------------------------------------------------------------------------
class QdrantWriter:
    """One build: new collections (a copy of the live build, for an update), published by switching the alias.

    Term statistics, vocabulary, names and field lengths are kept as changes in memory and applied
    at ``publish``, which then writes the sparse vectors: of the articles written in this build, or
    of every article when a field's average length moved (BM25's length normalisation uses it)."""

    def __init__(self, backend: QdrantBackend, model: ModelInfo):
        self.backend = backend
        self.client = backend.client
        self.settings = backend.settings
        self.model = model
        self.names = backend.names
        self.collection = ""
        self.meta = ""
        self.info: dict = {}
        self._created: list[str] = []
        self._vocabulary = Vocabulary()
        self._spellings = _Spellings()
        self._term_changes: dict[str, dict[str, Counter]] = {}  # token -> {"df": per field, "cf": per field}
        self._lengths: Counter = Counter()
        self._touched: set[int] = set()

    # -- lifecycle -------------------------------------------------------------------------------
    def begin(self, live: Snapshot | None) -> None:
        number = self.backend.next_number()
        self.collection = self.names.build(number)
        self.meta = _Names.meta(self.collection)
        if live is not None:
            self.info = self.backend.metadata(live.handle)
            if (self.info.get("model_name"), int(self.info.get("dim", 0))) != (self.model.name, self.model.dim):
                raise ConfigError(
                    f"the index in Qdrant collection {live.handle} was built with {self.info.get('model_name')} "
                    f"({self.info.get('dim')} dims), the configured model is {self.model.name} ({self.model.dim}) "
                    "- re-run with --rebuild"
                )
        else:
            boost = self.settings.title_boost
            self.info = {"title_boost": boost, "next_index": 0, "lengths": {f: 0 for f in FIELDS}, "articles": 0}
        self.info.update(
            format=FORMAT_VERSION,
            model_name=self.model.name,
            model_id=self.model.id,
            dim=self.model.dim,
            published=False,
            previous=live.handle if live is not None else "",
        )
        self._create()
        if live is not None:
            self._copy(live.handle)
            self._vocabulary = _load_vocabulary(self.client, self.meta)
            self._spellings = _Spellings.from_list(_load_json_chunks(self.client, self.meta, "names"))

    def _create(self) -> None:
        dense = {"dense": qm.VectorParams(size=self.model.dim, distance=qm.Distance.COSINE)}
        sparse = {f: qm.SparseVectorParams(modifier=qm.Modifier.IDF) for f in FIELDS}
        self._created = [self.collection, self.meta]
        self.client(
            "create_collection", self.collection, vectors_config=dense, sparse_vectors_config=sparse, metadata=self.info
        )
        self.client("create_collection", self.meta, vectors_config={})
        keyword, integer = qm.PayloadSchemaType.KEYWORD, qm.PayloadSchemaType.INTEGER
        for name in ("terms", "title_terms", "excerpt_terms", "provider_key", "topic_keys", "domains", "story"):
            self.client("create_payload_index", self.collection, name, field_schema=keyword)
        self.client("create_payload_index", self.collection, "published_at", field_schema=integer)
        self.client("create_payload_index", self.collection, "is_stub", field_schema=qm.PayloadSchemaType.BOOL)
        text = qm.TextIndexParams(
            type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.WHITESPACE, lowercase=False, phrase_matching=True
        )
        for f in FIELDS:
            self.client("create_payload_index", self.collection, f"{f}_seq", field_schema=text)
        for name in ("kind", "path", "url"):
            self.client("create_payload_index", self.meta, name, field_schema=keyword)

    def _copy(self, live: str) -> None:
        """Every point of the live build (vectors and payload) into the new one."""
        for source, target in ((live, self.collection), (_Names.meta(live), self.meta)):
            batch = []
            for p in _points(self.client, source, payload=True, vectors=True):
                batch.append(qm.PointStruct(id=p.id, vector=p.vector or {}, payload=p.payload))
                if len(batch) == PAGE:
                    self.client("upsert", target, batch)
                    batch = []
            if batch:
                self.client("upsert", target, batch)

    def publish(self) -> str:
        """Apply the statistics, write the sparse vectors, then switch the alias; returns the build's name."""
        self._save_terms()
        _save_vocabulary(self.client, self.meta, self._vocabulary)
        _save_json_chunks(self.client, self.meta, "names", self._spellings.to_list())
        count = self.client("count", self.collection, exact=True).count
        lengths = {f: int(self.info["lengths"].get(f, 0)) + self._lengths[f] for f in FIELDS}
        averages = {f: lengths[f] / count if count else 0.0 for f in FIELDS}
        every = averages != self.info.get("averages")
        self._write_sparse(None if every else sorted(self._touched), averages)
        self.info.update(
            articles=count, lengths=lengths, averages=averages, built_at=datetime.now(UTC).isoformat(), published=True
        )
        self.client("update_collection", self.collection, metadata=self.info)
        self.backend.switch(self.collection)
        self._created = []
        return self.collection

    def abort(self) -> None:
        for name in self._created:
            try:
                self.client("delete_collection", name)
            except SearchError:
                pass
        self._created = []

    # -- the ledger ------------------------------------------------------------------------------
    def replace_source(self, key: str, digest: str | None, records: Sequence) -> set[str]:
        """Store the records one source gave (None digest removes it); returns the URLs touched."""
        of_source = qm.Filter(must=[_match("kind", "record"), _match("path", key)])
        touched = {p.payload["url"] for p in _points(self.client, self.meta, of_source, payload=["url"])}
        self.client("delete", self.meta, points_selector=qm.FilterSelector(filter=of_source))
        self.client("delete", self.meta, points_selector=qm.PointIdsList(points=[_key_of("source", key)]))
        if digest is None:
            return touched
        points = [
            qm.PointStruct(
                id=_key_of("source", key), vector={}, payload={"kind": "source", "path": key, "digest": digest}
            )
        ]
        for n, record in enumerate(records):
            points.append(qm.PointStruct(id=_key_of("record", f"{key}\x1f{n}"), vector={}, payload=_record(record)))
            touched.add(record.url)
        for start in range(0, len(points), PAGE):
            self.client("upsert", self.meta, points[start : start + PAGE])
        return touched

    def records_for(self, urls: Iterable[str]) -> list:
        urls = sorted(set(urls))
        out = []
        for start in range(0, len(urls), 500):
            flt = qm.Filter(
                must=[
                    _match("kind", "record"),
                    qm.FieldCondition(key="url", match=qm.MatchAny(any=urls[start : start + 500])),
                ]
            )
            out.extend(_from_record(p.payload) for p in _points(self.client, self.meta, flt))
        return sorted(out, key=lambda r: (r.source, r.line, r.url))

    # -- articles --------------------------------------------------------------------------------
    def _payloads(self, ids: Iterable[str], keys: Sequence[str] | bool = True) -> dict[str, dict]:
        wanted = [id_to_int(i) for i in dict.fromkeys(ids)]
        out = {}
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            for p in self.client("retrieve", self.collection, ids=chunk, with_payload=keys):
                out[int_to_id(int(p.id))] = p.payload
        return out

    def hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        found = self._payloads(ids, ["content_hash", "text_hash"])
        return {i: (p["content_hash"], p["text_hash"]) for i, p in found.items()}

    def articles(self, ids: Sequence[str]) -> dict[str, Article]:
        return {i: _article(p) for i, p in self._payloads(ids, list(ARTICLE_KEYS)).items()}

    def count(self) -> int:
        return self.client("count", self.collection, exact=True).count

    def write(self, upserts: Sequence[Article], vectors: dict[str, np.ndarray], deletes: Sequence[str]) -> None:
        """Apply one batch: ``upserts`` replace their articles (keeping their story and, unless
        ``vectors`` has a new one, their vector); ``deletes`` are removed."""
        previous = self._payloads([a.id for a in upserts] + list(deletes))
        kept = [a.id for a in upserts if a.id not in vectors and a.id in previous]
        old_vectors = self._dense([id_to_int(i) for i in kept])
        points = []
        for article in upserts:
            old = previous.get(article.id)
            vector = vectors.get(article.id)
            vector = old_vectors.get(id_to_int(article.id)) if vector is None else vector
            if vector is None:
                raise IndexCorrupt(f"article {article.id} has no vector to keep - rebuild with --rebuild")
            payload = article_payload(article, (old or {}).get("story", ""))
            self._count(old, -1)
            self._count(payload, +1)
            points.append(
                qm.PointStruct(id=id_to_int(article.id), vector={"dense": np.asarray(vector).tolist()}, payload=payload)
            )
            self._touched.add(id_to_int(article.id))
        for start in range(0, len(points), PAGE):
            self.client("upsert", self.collection, points[start : start + PAGE])
        gone = [i for i in deletes if i in previous]
        for i in gone:
            self._count(previous[i], -1)
            self._touched.discard(id_to_int(i))
        if gone:
            self.client("delete", self.collection, points_selector=qm.PointIdsList(points=[id_to_int(i) for i in gone]))

    def _count(self, payload: dict | None, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) one article's terms, words, names and lengths."""
        if payload is None:
            return
        article = _article(payload)
        (self._vocabulary.add if sign > 0 else self._vocabulary.remove)([article.text])
        self._spellings.change(article, sign)
        for f, counts in _field_counts(payload).items():
            self._lengths[f] += sign * sum(counts.values())
            for tok, n in counts.items():
                change = self._term_changes.setdefault(tok, {"df": Counter(), "cf": Counter()})
                change["df"][f] += sign
                change["cf"][f] += sign * n

    def _dense(self, keys: list[int]) -> dict[int, list[float]]:
        out = {}
        for start in range(0, len(keys), 1000):
            found = self.client(
                "retrieve", self.collection, ids=keys[start : start + 1000], with_payload=False, with_vectors=["dense"]
            )
            out.update({int(p.id): p.vector["dense"] for p in found})
        return out

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        found = self._dense([id_to_int(i) for i in ids])
        out = np.zeros((len(ids), self.model.dim), dtype=np.float32)
        for row, i in enumerate(ids):
            if id_to_int(i) in found:
                out[row] = found[id_to_int(i)]
        return out

    # -- stories ---------------------------------------------------------------------------------
    def stories(self) -> dict[str, str]:
        return {
            int_to_id(int(p.id)): p.payload["story"]
            for p in _points(self.client, self.collection, payload=["story"])
            if p.payload.get("story")
        }

    def articles_between(self, start: datetime | None, end: datetime | None) -> dict[str, Article]:
        flt = None
        if start is not None and end is not None:
            dated = qm.FieldCondition(key="published_at", range=qm.Range(gte=timestamp(start), lte=timestamp(end)))
            flt = qm.Filter(should=[dated, qm.IsEmptyCondition(is_empty=qm.PayloadField(key="published_at"))])
        return {
            int_to_id(int(p.id)): _article(p.payload)
            for p in _points(self.client, self.collection, flt, list(ARTICLE_KEYS))
        }

    def set_stories(self, stories: dict[str, str]) -> None:
        current = {i: p.get("story", "") for i, p in self._payloads(stories, ["story"]).items()}
        by_story: dict[str, list[int]] = {}
        for article_id, story in stories.items():
            if article_id in current and current[article_id] != story:
                by_story.setdefault(story, []).append(id_to_int(article_id))
        operations = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload={"story": story}, points=keys))
            for story, keys in by_story.items()
        ]
        for start in range(0, len(operations), PAGE):
            self.client("batch_update_points", self.collection, update_operations=operations[start : start + PAGE])

    # -- publishing ------------------------------------------------------------------------------
    def _save_terms(self) -> None:
        """Apply the term changes to the meta collection; new terms get the next sparse indices."""
        changed = sorted(self._term_changes)
        for start in range(0, len(changed), 1000):
            chunk = changed[start : start + 1000]
            found = _terms(self.client, self.meta, chunk)
            upserts, deletes = [], []
            for tok in chunk:
                change = self._term_changes[tok]
                entry = found.get(tok)
                if entry is None:
                    entry = _Term(tok, int(self.info["next_index"]), {}, {})
                    self.info["next_index"] = entry.index + 1
                for kind in ("df", "cf"):
                    table = getattr(entry, kind)
                    for f in FIELDS:
                        table[f] = table.get(f, 0) + change[kind][f]
                if any(entry.df.values()):
                    upserts.append(qm.PointStruct(id=_key_of("term", tok), vector={}, payload=entry.payload()))
                elif tok in found:
                    deletes.append(_key_of("term", tok))
            for part in range(0, len(upserts), PAGE):
                self.client("upsert", self.meta, upserts[part : part + PAGE])
            if deletes:
                self.client("delete", self.meta, points_selector=qm.PointIdsList(points=deletes))
        self._term_changes.clear()

    def _retrieved(self, keys: list[int], wanted: list[str]) -> Iterator:
        for start in range(0, len(keys), 1000):
            yield from self.client("retrieve", self.collection, ids=keys[start : start + 1000], with_payload=wanted)

    def _write_sparse(self, keys: list[int] | None, averages: dict[str, float]) -> None:
        """Write the title and excerpt sparse vectors of ``keys`` (None: every article)."""
        wanted = ["title_seq", "excerpt_seq"]
        if keys is None:
            points: Iterable = _points(self.client, self.collection, payload=wanted)
        else:
            points = self._retrieved(keys, wanted)
        boost = float(self.info["title_boost"])
        indices: dict[str, int] = {}
        batch: list = []
        for p in points:
            counts = _field_counts(p.payload)
            missing = {t for c in counts.values() for t in c if t not in indices}
            if missing:
                indices.update({t: e.index for t, e in _terms(self.client, self.meta, missing).items()})
            vectors = {}
            for f, c in counts.items():
                length, scale = sum(c.values()), (boost if f == "title" else 1.0)
                pairs = sorted((indices[t], analysis.bm25_weight(n * scale, length, averages[f])) for t, n in c.items())
                vectors[f] = qm.SparseVector(indices=[i for i, _ in pairs], values=[w for _, w in pairs])
            batch.append(qm.PointVectors(id=p.id, vector=vectors))
            if len(batch) == PAGE:
                self.client("update_vectors", self.collection, points=batch)
                batch = []
        if batch:
            self.client("update_vectors", self.collection, points=batch)


def _record(record) -> dict:
    fields = dict(record.fields)
    fields["published"] = fields["published"].isoformat() if fields.get("published") else None
    fields["topics"] = list(fields.get("topics") or ())
    return {
        "kind": "record",
        "path": record.source,
        "url": record.url,
        "line": record.line,
        "main": bool(record.main),
        "fields": json.dumps(fields, ensure_ascii=False),
        "related": list(record.related),
    }


def _from_record(payload: dict):
    from search.loader import Record

    fields = json.loads(payload["fields"])
    fields["published"] = datetime.fromisoformat(fields["published"]) if fields.get("published") else None
    fields["topics"] = tuple(fields.get("topics") or ())
    return Record(
        payload["url"],
        fields,
        bool(payload["main"]),
        payload["path"],
        payload["line"],
        tuple(payload.get("related") or ()),
    )


# -- the backend --------------------------------------------------------------------------------
class QdrantBackend:
    """Builds behind an alias in Qdrant (the backend protocol of search/backend.py)."""

    name = "qdrant"

    def __init__(self, settings: Settings):
        self.settings = settings
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", settings.qdrant_collection or ""):
            raise ConfigError(
                f"qdrant_collection={settings.qdrant_collection!r}: use letters, digits, '_', '-' and '.'"
            )
        self.client = connect(settings)
        self.names = _Names(settings.qdrant_collection)
        self._stamp: tuple[float, object] = (0.0, ())

    def where(self) -> str:
        return f"{self.client.where} (collection {self.names.alias})"

    def target(self) -> str | None:
        """The collection the alias points at (None: no index yet)."""
        for alias in self.client("get_aliases").aliases:
            if alias.alias_name == self.names.alias:
                return alias.collection_name
        return None

    def stamp(self) -> object:
        """The live build's name; on a server asked at most once a second (the replaced build stays
        readable until the next publish, so a reader a second late still answers)."""
        now = time.monotonic()
        if self.client.local or now - self._stamp[0] >= 1.0:
            self._stamp = (now, self.target() or ())
        return self._stamp[1]

    def open_reader(self) -> QdrantReader:
        name = self.require().handle
        return QdrantReader(self.client, name)

    def metadata(self, collection: str) -> dict:
        return dict(self.client("get_collection", collection).config.metadata or {})

    def live(self) -> Snapshot | None:
        name = self.target()
        if name is None:
            return None
        info = self.metadata(name)
        if info.get("format") != FORMAT_VERSION or not info.get("published"):
            return None
        return Snapshot(name, int(info["articles"]), name)

    def require(self) -> Snapshot:
        live = self.live()
        if live is None:
            raise IndexMissing(
                f"No index in Qdrant at {self.where()} - run `search-cli index PATHS --backend qdrant` first."
            )
        return live

    def ledger(self, live: Snapshot) -> dict[str, str]:
        meta = _Names.meta(live.handle)
        return {p.payload["path"]: p.payload["digest"] for p in _points(self.client, meta, _kind("source"))}

    def held(self, live: Snapshot, ids: Sequence[str]) -> set[str]:
        found = self.client("retrieve", live.handle, ids=[id_to_int(i) for i in ids], with_payload=False)
        return {int_to_id(int(p.id)) for p in found}

    def writer(self, model: ModelInfo, live: Snapshot | None) -> QdrantWriter:
        writer = QdrantWriter(self, model)
        try:
            writer.begin(live)
        except BaseException:
            writer.abort()
            raise
        return writer

    # -- builds ----------------------------------------------------------------------------------
    def _builds(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for c in self.client("get_collections").collections:
            number = self.names.number(c.name)
            if number is not None:
                out.setdefault(number, []).append(c.name)
        return out

    def next_number(self) -> int:
        return max(self._builds(), default=0) + 1

    def prepare(self) -> None:
        """Drop what interrupted builds left: every build but the live one and the one it replaced."""
        self._drop_except(self._kept())

    def _kept(self) -> set[int]:
        live = self.target()
        if live is None:
            return set()
        previous = self.metadata(live).get("previous") or ""
        return {n for n in (self.names.number(live), self.names.number(previous)) if n is not None}

    def _drop_except(self, kept: set[int]) -> None:
        for number, collections in self._builds().items():
            if number not in kept:
                for name in collections:
                    self.client("delete_collection", name)

    def switch(self, collection: str) -> None:
        """Point the alias at ``collection`` in one atomic operation, then drop the builds before the replaced one."""
        previous = self.target()
        operations = []
        if previous is not None:
            operations.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.names.alias)))
        operations.append(
            qm.CreateAliasOperation(
                create_alias=qm.CreateAlias(collection_name=collection, alias_name=self.names.alias)
            )
        )
        self.client("update_collection_aliases", change_aliases_operations=operations)
        self._stamp = (0.0, ())
        self._drop_except({n for n in (self.names.number(collection), self.names.number(previous or "")) if n})

    # -- the writer lock -------------------------------------------------------------------------
    @contextmanager
    def lock(self, wait: float) -> Iterator[None]:
        """The single writer: a point in ``{alias}-lock`` inserted only if absent (a writer whose
        process is gone from this machine is taken over)."""
        name = self.names.lock
        if not self.client("collection_exists", name):
            try:
                self.client("create_collection", name, vectors_config={})
            except SearchError:
                if not self.client("collection_exists", name):
                    raise
        me = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            self.client(
                "upsert", name, [qm.PointStruct(id=1, vector={}, payload=me)], update_mode=qm.UpdateMode.INSERT_ONLY
            )
            held = self.client("retrieve", name, ids=[1], with_payload=True)
            holder = held[0].payload if held else {}
            if holder.get("owner") == me["owner"]:
                break
            if holder and _gone(holder):
                self.client(
                    "delete",
                    name,
                    points_selector=qm.FilterSelector(filter=qm.Filter(must=[_match("owner", holder["owner"])])),
                )
                continue
            if time.monotonic() >= deadline:
                raise IndexLocked(
                    f"another writer (pid {holder.get('pid')} on {holder.get('host')}) is updating the index in "
                    f"Qdrant at {self.where()} - wait for it, or pass --wait SECONDS"
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            self.client(
                "delete", name, points_selector=qm.FilterSelector(filter=qm.Filter(must=[_match("owner", me["owner"])]))
            )


def _gone(holder: dict) -> bool:
    """True when the lock's holder ran on this machine and its process no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


# -- moving a local index in --------------------------------------------------------------------
def import_local(root: Path, settings: Settings, wait: float = 0.0) -> tuple[str, int]:
    """Copy the live local generation in ``root`` into Qdrant as a new build and publish it: articles,
    stored vectors (nothing is embedded again), stories and the ledger of sources, so later
    ``search-cli index`` runs against Qdrant update it incrementally. Returns (build, articles)."""
    from search.local import LocalReader

    backend = QdrantBackend(settings)
    source = LocalReader.open(Path(root))
    try:
        manifest = source.manifest
        model = ModelInfo(manifest.model_name, manifest.model_id, manifest.dim)
        store = source.store
        with backend.lock(wait):
            backend.prepare()
            writer = backend.writer(model, None)
            try:
                ids = sorted(store.ids())
                urls = set()
                for start in range(0, len(ids), 1000):
                    articles = store.get_many(ids[start : start + 1000])
                    listed = [articles[i] for i in ids[start : start + 1000] if i in articles]
                    keys = np.fromiter((id_to_int(a.id) for a in listed), dtype=np.int64, count=len(listed))
                    vectors = dict(zip((a.id for a in listed), source.vectors_of(keys), strict=True))
                    writer.write(listed, vectors, [])
                    urls.update(a.url for a in listed)
                records: dict[str, list] = {}
                for record in store.records_for(sorted(urls)):
                    records.setdefault(record.source, []).append(record)
                for key, digest in sorted(store.source_digests().items()):
                    writer.replace_source(key, digest, sorted(records.get(key, []), key=lambda r: (r.line, r.url)))
                writer.set_stories(store.stories())
                return writer.publish(), len(ids)
            except BaseException:
                writer.abort()
                raise
    finally:
        source.close()
