"""The Qdrant backend: the only module that imports qdrant_client.

One build is two collections, ``{alias}-bNNNNNN`` (the articles) and ``{alias}-bNNNNNN-meta``
(what a writer needs and a reader looks up by key: the ledger of sources and records, term
statistics, the vocabulary in hash buckets and the provider and topic names). Readers find the
live build through the alias (the ``qdrant_collection`` setting).

Full builds (the first, ``--rebuild``, ``export``) go to new collections that no reader sees;
``publish`` switches the alias atomically. The build it replaced is kept (readers in flight may
still use it) and older ones are dropped.

Updates (an ``index`` over the live build, ``delete``) are written into the live collections in
place, in time proportional to the change. Qdrant has no snapshot isolation, so a reader sees an
update batch by batch, like Elasticsearch's near-real-time refresh: each article's point (payload,
dense and sparse vectors) is replaced in one upsert, while the statistics (term frequencies,
vocabulary, names, counts, lengths) move at the end, when the build's version (``name+N``, N
updates) changes and services reopen their readers. BM25's length normalisation keeps the stored
field averages until the true ones drift more than ``DRIFT`` (5%, relative) from them; then every
sparse vector is rewritten once with the new ones. Crash safety comes from a journal in the meta
collection:

- before an article is first changed, it is stored as it was (``was``); new terms get their
  sparse index as they are written (``newterm``); an ``update`` point exists until the end;
- before a source's records change, the URLs they touch are stored (``touched``) and the source's
  digest is set to "" (pending), so the next scan reads it again; the real digest is written last;
- at the end (``recover``), the statistics are computed from the ``was`` journal against what the
  collection holds now and stored as absolute values (``redo``), then copied in: a crash before
  the copy computes them again, a crash during it copies again. The next writer's ``prepare``
  does this for a run that stopped; the next update re-merges the ``touched`` URLs (their articles
  written again, vectors kept), so running the same command again converges.

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
from search.arrays import member
from search.backend import ModelInfo, Snapshot
from search.columns import NO_DATE, fold, timestamp
from search.config import Settings
from search.errors import ConfigError, IndexCorrupt, IndexLocked, IndexMissing, SearchError
from search.local import Scored
from search.models import Article
from search.query import All, Node, Not, Phrase, Plan, Word
from search.query import Any as AnyOf
from search.urls import article_id, id_to_int, int_to_id
from search.vocabulary import Vocabulary, words_of

try:
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm
except ImportError:  # the optional extra: `pip install 'news-search[qdrant]'`
    QdrantClient = None  # type: ignore[assignment,misc]
    qm = None  # type: ignore[assignment]

FORMAT_VERSION = 2  # 2: the vocabulary in hash buckets, updates written in place
FIELDS = ("title", "excerpt")
CAP = 10_000  # articles one side of a match set is enumerated to, exactly
PAGE = 256  # points per upsert or scroll page
CACHE = 50_000  # per-reader cache of vectors and facts, in articles
ARTICLE_KEYS = tuple(Article("", "", "").to_dict())
_PLAIN = re.compile(r"[a-z0-9]+")
_MAX_KEY = 2**63
DRIFT = 0.05  # relative change of a field's average length past which every sparse vector is rewritten


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
VOCAB_BUCKETS = 4_096  # vocabulary points: words are spread over them by a hash


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


def _bucket(word: str) -> int:
    """The vocabulary point a word is kept in (an update rewrites only the buckets its words fall in)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=4).digest(), "big") % VOCAB_BUCKETS


def _vocabulary_point(bucket: int, words: dict[str, int]):
    payload = {"kind": "vocabulary", "bucket": bucket, "data": json.dumps(dict(sorted(words.items())))}
    return qm.PointStruct(id=_key_of("vocabulary", str(bucket)), vector={}, payload=payload)


def _save_vocabulary(client: _Client, meta: str, vocabulary: Vocabulary) -> None:
    buckets: dict[int, dict[str, int]] = {}
    for word, n in vocabulary.counts.items():
        buckets.setdefault(_bucket(word), {})[word] = n
    client("delete", meta, points_selector=qm.FilterSelector(filter=_kind("vocabulary")))
    points = [_vocabulary_point(b, words) for b, words in sorted(buckets.items())]
    for start in range(0, len(points), PAGE):
        client("upsert", meta, points[start : start + PAGE])


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
        self.version = version_of(collection, self.info)
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
                hits = self._sparse_top(f, indices, [1.0] * len(indices), CAP, flt)
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
            rest = keys[~member(keys, best.keys)][: CAP - len(best)]
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
                hits = self._sparse_top(f, list(query), [w for w, _ in query.values()], depth, flt)
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

    def _sparse_top(self, field_: str, indices: list[int], values: list[float], limit: int, flt) -> list:
        """The best ``limit`` points by the dot product of their ``field_`` sparse vector with this one."""
        vector = qm.SparseVector(indices=indices, values=values)
        return self.client(
            "query_points",
            self.collection,
            query=vector,
            using=field_,
            query_filter=flt,
            limit=limit,
            with_payload=False,
        ).points

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

    def facets(self, keys: np.ndarray, size: int | None = 10) -> dict[str, list[tuple[str, int]]]:
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
            "story_model": info.get("story_model", ""),
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


# -- statistics and sparse vectors --------------------------------------------------------------
_COUNTED = [*ARTICLE_KEYS, "title_seq", "excerpt_seq"]  # what an article's statistics are computed from


@dataclass
class _Delta:
    """What articles coming and going change: per term its document frequency and count per field,
    the words of the vocabulary and the fields' total lengths."""

    terms: dict[str, dict[str, Counter]] = field(default_factory=dict)
    words: Counter = field(default_factory=Counter)
    lengths: Counter = field(default_factory=Counter)

    def count(self, payload: dict | None, sign: int, spellings: _Spellings) -> None:
        """Add (``sign`` 1) or take away (-1) one article (None: no article)."""
        if payload is None:
            return
        article = _article(payload)
        for word in words_of(article.text):
            self.words[word] += sign
        spellings.change(article, sign)
        for f, counts in _field_counts(payload).items():
            self.lengths[f] += sign * sum(counts.values())
            for tok, n in counts.items():
                change = self.terms.setdefault(tok, {"df": Counter(), "cf": Counter()})
                change["df"][f] += sign
                change["cf"][f] += sign * n


def _term_entries(
    client: _Client, meta: str, changes: dict, next_index: int, assigned: dict[str, int] | None = None
) -> tuple[list[_Term], list[str], int]:
    """The term entries after ``changes``: (entries to store, tokens to drop, the next free sparse
    index). A new term takes its index from ``assigned`` (given while the update wrote), else the next."""
    store, drop = [], []
    ordered = sorted(changes)
    for start in range(0, len(ordered), 1000):
        chunk = ordered[start : start + 1000]
        found = _terms(client, meta, chunk)
        for tok in chunk:
            entry = found.get(tok)
            if entry is None:
                index = (assigned or {}).get(tok)
                if index is None:
                    index, next_index = next_index, next_index + 1
                entry = _Term(tok, index, {}, {})
            for kind in ("df", "cf"):
                table = getattr(entry, kind)
                for f in FIELDS:
                    table[f] = table.get(f, 0) + changes[tok][kind][f]
            if any(entry.df.values()):
                store.append(entry)
            elif tok in found:
                drop.append(tok)
    return store, drop, next_index


def _term_point(entry: _Term):
    return qm.PointStruct(id=_key_of("term", entry.token), vector={}, payload=entry.payload())


def _upsert(client: _Client, collection: str, points: list) -> None:
    for start in range(0, len(points), PAGE):
        client("upsert", collection, points[start : start + PAGE])


def _averages(stored: dict | None, lengths: dict[str, int], count: int) -> tuple[dict[str, float], bool]:
    """The fields' average lengths BM25 normalises with, and whether they changed: the stored ones
    are kept until one of them is more than DRIFT (relative) away from the true average."""
    fresh = {f: lengths[f] / count if count else 0.0 for f in FIELDS}
    if not stored:
        return fresh, True
    for f in FIELDS:
        old = float(stored.get(f, 0.0))
        if (abs(fresh[f] - old) > DRIFT * old) if old else fresh[f] > 0:
            return fresh, True
    return {f: float(stored[f]) for f in FIELDS}, False


def _sparse(counts: dict[str, Counter], indices: dict[str, int], averages: dict[str, float], boost: float) -> dict:
    """An article's title and excerpt sparse vectors: the BM25 weights of its terms."""
    vectors = {}
    for f, c in counts.items():
        length, scale = sum(c.values()), (boost if f == "title" else 1.0)
        pairs = sorted((indices[t], analysis.bm25_weight(n * scale, length, averages[f])) for t, n in c.items())
        vectors[f] = qm.SparseVector(indices=[i for i, _ in pairs], values=[w for _, w in pairs])
    return vectors


def _write_sparse(client: _Client, collection: str, info: dict) -> int:
    """Rewrite every article's sparse vectors with the averages in ``info``; returns how many."""
    meta = _Names.meta(collection)
    averages, boost = info["averages"], float(info["title_boost"])
    indices: dict[str, int] = {}
    batch: list = []
    done = 0
    for p in _points(client, collection, payload=["title_seq", "excerpt_seq"]):
        counts = _field_counts(p.payload)
        missing = {t for c in counts.values() for t in c if t not in indices}
        if missing:
            indices.update({t: e.index for t, e in _terms(client, meta, missing).items()})
        batch.append(qm.PointVectors(id=p.id, vector=_sparse(counts, indices, averages, boost)))
        if len(batch) == PAGE:
            client("update_vectors", collection, points=batch)
            done, batch = done + len(batch), []
    if batch:
        client("update_vectors", collection, points=batch)
    return done + len(batch)


def _check_model(info: dict, model: ModelInfo, collection: str) -> None:
    if (info.get("model_name"), int(info.get("dim", 0))) != (model.name, model.dim):
        raise ConfigError(
            f"the index in Qdrant collection {collection} was built with {info.get('model_name')} "
            f"({info.get('dim')} dims), the configured model is {model.name} ({model.dim}) - re-run with --rebuild"
        )


def version_of(collection: str, info: dict) -> str:
    """A build's version as readers and reports show it: its name, and how many updates it took."""
    updates = int(info.get("updates", 0))
    return f"{collection}+{updates}" if updates else collection


# -- the update journal -------------------------------------------------------------------------
_UPDATE = _key_of("update", "")  # the meta point that exists while an update is unfinished
_JOURNAL = ("was", "newterm", "redo")


def _names_point(spellings: _Spellings):
    payload = {"kind": "names", "data": json.dumps(spellings.to_list()[0])}
    return qm.PointStruct(id=_key_of("names", "0"), vector={}, payload=payload)


def recover(client: _Client, collection: str) -> bool:
    """Finish the statistics of an update that did not (the articles it wrote are kept); nothing when
    none is pending. True when every sparse vector was rewritten (the averages drifted)."""
    meta = _Names.meta(collection)
    pending = client("retrieve", meta, ids=[_UPDATE], with_payload=True)
    if not pending:
        return False
    if pending[0].payload.get("state") != "applying":
        _plan(client, collection, meta)
    return _apply(client, collection, meta)


def _plan(client: _Client, collection: str, meta: str) -> None:
    """Compute the statistics after the update from its journal (each touched article as it was
    before, against what the collection holds now) and store them as absolute values (``redo``
    points); then mark the update ``applying``. Nothing the readers use is changed here."""
    client("delete", meta, points_selector=qm.FilterSelector(filter=_kind("redo")))
    was = {int(p.payload["key"]): json.loads(p.payload["payload"]) for p in _points(client, meta, _kind("was"))}
    assigned = {p.payload["token"]: int(p.payload["index"]) for p in _points(client, meta, _kind("newterm"))}
    info = dict(client("get_collection", collection).config.metadata or {})
    spellings = _Spellings.from_list(_load_json_chunks(client, meta, "names"))
    delta = _Delta()
    keys = sorted(was)
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        now = {int(p.id): p.payload for p in client("retrieve", collection, ids=chunk, with_payload=_COUNTED)}
        for key in chunk:
            delta.count(was[key], -1, spellings)
            delta.count(now.get(key), +1, spellings)
    next_index = max([int(info["next_index"])] + [i + 1 for i in assigned.values()])
    store, drop, next_index = _term_entries(client, meta, delta.terms, next_index, assigned)
    redo = [_redo(f"term\x1f{e.token}", item="term", entry=e.payload()) for e in store]
    redo += [_redo(f"term\x1f{tok}", item="term", entry=None, token=tok) for tok in drop]
    redo += [_redo(f"vocabulary\x1f{b}", item="vocabulary", bucket=b, data=w) for b, w in _buckets(client, meta, delta)]
    redo.append(_redo("names", item="names", data=spellings.to_list()[0]))
    count = client("count", collection, exact=True).count
    lengths = {f: int(info["lengths"].get(f, 0)) + delta.lengths[f] for f in FIELDS}
    averages, rewrite = _averages(info.get("averages"), lengths, count)
    info.update(articles=count, lengths=lengths, averages=averages, next_index=next_index)
    info.update(updates=int(info.get("updates", 0)) + 1, updated_at=datetime.now(UTC).isoformat())
    redo.append(_redo("info", item="info", data=info, rewrite=rewrite))
    _upsert(client, meta, redo)
    client("set_payload", meta, payload={"state": "applying"}, points=[_UPDATE])


def _redo(key: str, **payload):
    return qm.PointStruct(id=_key_of("redo", key), vector={}, payload={"kind": "redo", **payload})


def _buckets(client: _Client, meta: str, delta: _Delta) -> list[tuple[int, dict[str, int]]]:
    """The vocabulary buckets the words of ``delta`` fall in, changed."""
    by_bucket: dict[int, list[str]] = {}
    for word, n in delta.words.items():
        if n:
            by_bucket.setdefault(_bucket(word), []).append(word)
    out = []
    numbers = sorted(by_bucket)
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        found = client("retrieve", meta, ids=[_key_of("vocabulary", str(b)) for b in chunk], with_payload=True)
        held = {int(p.payload["bucket"]): json.loads(p.payload["data"]) for p in found}
        for b in chunk:
            words = Counter(held.get(b, {}))
            words.update({w: delta.words[w] for w in by_bucket[b]})
            out.append((b, {w: n for w, n in words.items() if n > 0}))
    return out


def _apply(client: _Client, collection: str, meta: str) -> bool:
    """Copy the ``redo`` points' values into the tables readers use (idempotent: a crash here is
    finished by running it again), rewrite the sparse vectors if the averages moved, then drop the journal."""
    upserts, drops, info, rewrite = [], [], None, False
    for p in _points(client, meta, _kind("redo")):
        item = p.payload
        if item["item"] == "term" and item["entry"] is not None:
            upserts.append(_term_point(_Term.of(item["entry"])))
        elif item["item"] == "term":
            drops.append(_key_of("term", item["token"]))
        elif item["item"] == "vocabulary" and item["data"]:
            upserts.append(_vocabulary_point(int(item["bucket"]), item["data"]))
        elif item["item"] == "vocabulary":
            drops.append(_key_of("vocabulary", str(item["bucket"])))
        elif item["item"] == "names":
            upserts.append(_names_point(_Spellings.from_list([item["data"]])))
        else:
            info, rewrite = item["data"], bool(item["rewrite"])
    _upsert(client, meta, upserts)
    for start in range(0, len(drops), 1000):
        client("delete", meta, points_selector=qm.PointIdsList(points=drops[start : start + 1000]))
    if info is None:
        raise IndexCorrupt(f"the update journal of Qdrant collection {collection} is incomplete - use --rebuild")
    if rewrite:
        _write_sparse(client, collection, info)
    client("update_collection", collection, metadata=info)
    for kind in ("was", "newterm"):  # the redo points last: until the update point goes, they are needed
        client("delete", meta, points_selector=qm.FilterSelector(filter=_kind(kind)))
    client("delete", meta, points_selector=qm.PointIdsList(points=[_UPDATE]))
    client("delete", meta, points_selector=qm.FilterSelector(filter=_kind("redo")))  # (_plan drops stale ones too)
    return rewrite


def _cluster_layout(settings: Settings) -> dict:
    """Shards, replicas and write consistency of a new collection (the defaults: one of each)."""
    return {
        "shard_number": settings.qdrant_shards,
        "replication_factor": settings.qdrant_replicas,
        "write_consistency_factor": settings.qdrant_write_consistency,
    }


def _quantization(settings: Settings) -> qm.ScalarQuantization | None:
    """int8 scalar quantisation kept in RAM (the float originals stay on disk for rescoring), or none."""
    if settings.qdrant_quantization != "int8":
        return None
    return qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True))


# -- the writers --------------------------------------------------------------------------------
class QdrantWriter:
    """A full build: new collections, published by switching the alias.

    Term statistics, vocabulary, names and field lengths are counted in memory and stored at
    ``publish``, which then writes every article's sparse vectors (their BM25 weights need the
    fields' average lengths, known only at the end)."""

    def __init__(self, backend: QdrantBackend, model: ModelInfo):
        self.backend = backend
        self.client = backend.client
        self.settings = backend.settings
        self.model = model
        self.names = backend.names
        self.collection = ""
        self.meta = ""
        self.info: dict = {}
        self.rewritten = 0  # sparse vectors rewritten because the averages moved (updates)
        self._created: list[str] = []
        self._spellings = _Spellings()
        self._delta = _Delta()

    # -- lifecycle -------------------------------------------------------------------------------
    def begin(self, live: Snapshot | None) -> None:
        number = self.backend.next_number()
        self.collection = self.names.build(number)
        self.meta = _Names.meta(self.collection)
        boost = self.settings.title_boost
        self.info = {"title_boost": boost, "next_index": 0, "lengths": {f: 0 for f in FIELDS}, "articles": 0}
        self.info.update(
            format=FORMAT_VERSION,
            model_name=self.model.name,
            model_id=self.model.id,
            dim=self.model.dim,
            published=False,
            previous=self.backend.target() or "",
            updates=0,
        )
        self._create()

    def _create(self) -> None:
        s = self.settings
        on_disk = True if s.qdrant_quantization == "int8" else None  # the originals, for rescoring
        dense = {"dense": qm.VectorParams(size=self.model.dim, distance=qm.Distance.COSINE, on_disk=on_disk)}
        sparse = {f: qm.SparseVectorParams(modifier=qm.Modifier.IDF) for f in FIELDS}
        layout = _cluster_layout(s)
        self._created = [self.collection, self.meta]
        self.client(
            "create_collection",
            self.collection,
            vectors_config=dense,
            sparse_vectors_config=sparse,
            metadata=self.info,
            quantization_config=_quantization(s),
            **layout,
        )
        self.client("create_collection", self.meta, vectors_config={}, **layout)
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

    def publish(self) -> str:
        """Store the statistics, write the sparse vectors, then switch the alias; returns the build's version."""
        store, drop, self.info["next_index"] = _term_entries(self.client, self.meta, self._delta.terms, 0)
        _upsert(self.client, self.meta, [_term_point(e) for e in store])
        _save_vocabulary(self.client, self.meta, Vocabulary(+self._delta.words))
        _save_json_chunks(self.client, self.meta, "names", self._spellings.to_list())
        count = self.client("count", self.collection, exact=True).count
        lengths = {f: self._delta.lengths[f] for f in FIELDS}
        averages, _ = _averages(None, lengths, count)
        self.info.update(
            articles=count, lengths=lengths, averages=averages, built_at=datetime.now(UTC).isoformat(), published=True
        )
        _write_sparse(self.client, self.collection, self.info)
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
    def replace_source(self, key: str, digest: str | None, records: Iterable) -> set[str]:
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
        _upsert(self.client, self.meta, points)
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
        previous = self._payloads([a.id for a in upserts] + list(deletes), _COUNTED + ["story"])
        points = self._make_points(upserts, vectors, previous)
        for payload in previous.values():
            self._delta.count(payload, -1, self._spellings)
        for point in points:
            self._delta.count(point.payload, +1, self._spellings)
        self._store(points, [i for i in deletes if i in previous])

    def _make_points(self, upserts: Sequence[Article], vectors: dict[str, np.ndarray], previous: dict) -> list:
        kept = [a.id for a in upserts if a.id not in vectors and a.id in previous]
        old_vectors = self._dense([id_to_int(i) for i in kept])
        points = []
        for article in upserts:
            vector = vectors.get(article.id)
            vector = old_vectors.get(id_to_int(article.id)) if vector is None else vector
            if vector is None:
                raise IndexCorrupt(f"article {article.id} has no vector to keep - rebuild with --rebuild")
            payload = article_payload(article, previous.get(article.id, {}).get("story", ""))
            points.append(
                qm.PointStruct(id=id_to_int(article.id), vector={"dense": np.asarray(vector).tolist()}, payload=payload)
            )
        return points

    def _store(self, points: list, gone: list[str]) -> None:
        _upsert(self.client, self.collection, points)
        if gone:
            self.client("delete", self.collection, points_selector=qm.PointIdsList(points=[id_to_int(i) for i in gone]))

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

    def dates(self) -> dict[str, datetime | None]:
        return {
            int_to_id(int(p.id)): datetime.fromisoformat(p.payload["published"]) if p.payload.get("published") else None
            for p in _points(self.client, self.collection, payload=["published"])
        }

    def set_stories(self, stories: dict[str, str], model: str) -> None:
        """Write the story labels that changed, and name the model that assigned them (``_keep_story_model``)."""
        current = {i: p.get("story", "") for i, p in self._payloads(stories, ["story"]).items()}
        by_story: dict[str, list[int]] = {}
        for ident, story in stories.items():
            if ident in current and current[ident] != story:
                by_story.setdefault(story, []).append(id_to_int(ident))
        operations = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload={"story": story}, points=keys))
            for story, keys in by_story.items()
        ]
        for start in range(0, len(operations), PAGE):
            self.client("batch_update_points", self.collection, update_operations=operations[start : start + PAGE])
        self._keep_story_model(model)

    def _keep_story_model(self, model: str) -> None:
        self.info["story_model"] = model  # stored with the rest of the build's metadata at ``publish``


class QdrantUpdate(QdrantWriter):
    """An update written into the live build in place (see the module docstring): articles batch by
    batch with their sparse vectors, the statistics at ``publish`` through the journal, and sources
    marked pending (digest "") until then, so a run that stops is redone by the next."""

    def begin(self, live: Snapshot | None) -> None:
        self.collection, self.meta = live.handle, _Names.meta(live.handle)
        recover(self.client, self.collection)
        self.info = self.backend.metadata(self.collection)
        _check_model(self.info, self.model, self.collection)
        self.run = uuid.uuid4().hex
        self._journaled: set[int] = set()
        self._indices: dict[str, int] = {}
        self._next = int(self.info["next_index"])
        self._digests: dict[str, str | None] = {}
        self._leftover = {u for p in _points(self.client, self.meta, _kind("touched")) for u in p.payload["urls"]}
        self._forced = {article_id(u) for u in self._leftover}
        self._handed = False
        self.client("upsert", self.meta, [qm.PointStruct(id=_UPDATE, vector={}, payload={"state": "writing"})])

    def publish(self) -> str:
        """Finish the statistics (see ``recover``), then the ledger: the sources' digests, and the
        journal of touched URLs once this run has merged them. Returns the build's new version."""
        self.rewritten = self.count() if recover(self.client, self.collection) else 0
        points, gone = [], []
        for key, digest in sorted(self._digests.items()):
            if digest is None:
                gone.append(_key_of("source", key))
            else:
                payload = {"kind": "source", "path": key, "digest": digest}
                points.append(qm.PointStruct(id=_key_of("source", key), vector={}, payload=payload))
        _upsert(self.client, self.meta, points)
        if gone:
            self.client("delete", self.meta, points_selector=qm.PointIdsList(points=gone))
        if self._handed or not self._leftover:
            self.client("delete", self.meta, points_selector=qm.FilterSelector(filter=_kind("touched")))
        self.info = self.backend.metadata(self.collection)
        self.backend.forget_stamp()
        return version_of(self.collection, self.info)

    def abort(self) -> None:
        """Nothing to drop: what was written stays, and the next writer's ``prepare`` finishes it."""

    def _keep_story_model(self, model: str) -> None:
        """Into the live build's metadata at once: ``publish`` (``recover``) reads it back and keeps it."""
        info = self.backend.metadata(self.collection)
        if info.get("story_model") != model:
            info["story_model"] = model
            self.client("update_collection", self.collection, metadata=info)

    # -- the ledger ------------------------------------------------------------------------------
    def replace_source(self, key: str, digest: str | None, records: Iterable) -> set[str]:
        """As a full build does, but the URLs touched are journaled first and the source is left
        pending (digest "") until ``publish``; the first call also returns the URLs an interrupted
        run left unmerged."""
        records = list(records)  # read twice: its URLs are journaled before the records are stored
        of_source = qm.Filter(must=[_match("kind", "record"), _match("path", key)])
        urls = {p.payload["url"] for p in _points(self.client, self.meta, of_source, payload=["url"])}
        urls = sorted(urls | {r.url for r in records})
        journal = [
            qm.PointStruct(
                id=_key_of("touched", f"{self.run}\x1f{key}\x1f{n}"),
                vector={},
                payload={"kind": "touched", "urls": urls[start : start + 1000]},
            )
            for n, start in enumerate(range(0, len(urls), 1000))
        ]
        _upsert(self.client, self.meta, journal)
        touched = super().replace_source(key, "", records if digest is not None else [])
        self._digests[key] = digest
        if not self._handed:
            touched |= self._leftover
            self._handed = True
        return touched | set(urls)

    def hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """As stored, but no content hash for the articles an interrupted run may have left half
        done: they are written again (with their vectors kept), and their stories looked at again."""
        found = super().hashes(ids)
        return {i: ("", h[1]) if i in self._forced else h for i, h in found.items()}

    # -- articles --------------------------------------------------------------------------------
    def write(self, upserts: Sequence[Article], vectors: dict[str, np.ndarray], deletes: Sequence[str]) -> None:
        """One batch into the live collection: each article as it was is journaled first (once), new
        terms get their sparse indices, then the points go in with their sparse vectors."""
        previous = self._payloads([a.id for a in upserts] + list(deletes), _COUNTED + ["story"])
        points = self._make_points(upserts, vectors, previous)
        gone = [i for i in deletes if i in previous]
        was = []
        for key in [p.id for p in points] + [id_to_int(i) for i in gone]:
            if key not in self._journaled:
                original = previous.get(int_to_id(key))
                original = {k: original[k] for k in _COUNTED if k in original} if original else None
                payload = {"kind": "was", "key": key, "payload": json.dumps(original)}
                was.append(qm.PointStruct(id=_key_of("was", str(key)), vector={}, payload=payload))
                self._journaled.add(key)
        _upsert(self.client, self.meta, was)
        counts = {p.id: _field_counts(p.payload) for p in points}
        self._assign({t for c in counts.values() for f in FIELDS for t in c[f]})
        boost = float(self.info["title_boost"])
        for p in points:
            p.vector.update(_sparse(counts[p.id], self._indices, self.info["averages"], boost))
        self._store(points, gone)

    def _assign(self, wanted: set[str]) -> None:
        """Sparse indices for ``wanted`` terms: a known term's own, a new one the next free (journaled)."""
        missing = wanted - self._indices.keys()
        found = _terms(self.client, self.meta, missing)
        self._indices.update({t: e.index for t, e in found.items()})
        fresh = []
        for tok in sorted(missing - found.keys()):
            self._indices[tok], self._next = self._next, self._next + 1
            payload = {"kind": "newterm", "token": tok, "index": self._indices[tok]}
            fresh.append(qm.PointStruct(id=_key_of("newterm", tok), vector={}, payload=payload))
        _upsert(self.client, self.meta, fresh)


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
        self._client: _Client | None = None if self._no_folder() else connect(settings)
        self.names = _Names(settings.qdrant_collection)
        self._stamp: tuple[float, object] = (0.0, ())

    @property
    def client(self) -> _Client:
        """The client; for a local-mode folder that does not exist yet, opened on first use: a command that only
        reads finds no index there, and leaves no folder behind (the client would create it)."""
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def _no_folder(self) -> bool:
        folder = self.settings.qdrant_path
        return not self.settings.qdrant_url and bool(folder) and not Path(folder).exists()

    def where(self) -> str:
        place = self.settings.qdrant_url or str(Path(self.settings.qdrant_path or ".").absolute())
        return f"{place} (collection {self.names.alias})"

    def target(self) -> str | None:
        """The collection the alias points at (None: no index yet)."""
        if self._no_folder():
            return None
        for alias in self.client("get_aliases").aliases:
            if alias.alias_name == self.names.alias:
                return alias.collection_name
        return None

    def stamp(self) -> object:
        """The live build's version (its name and updates); on a server asked at most once a second
        (the replaced build stays readable until the next publish, so a reader a second late still answers)."""
        now = time.monotonic()
        if self._no_folder():
            return ()
        if self.client.local or now - self._stamp[0] >= 1.0:
            live = self.target()
            self._stamp = (now, version_of(live, self.metadata(live)) if live else ())
        return self._stamp[1]

    def forget_stamp(self) -> None:
        self._stamp = (0.0, ())

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
        return Snapshot(version_of(name, info), int(info["articles"]), name, str(info.get("story_model", "")))

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
        """A full build into new collections when ``live`` is None, else an update of ``live`` in place."""
        writer = QdrantWriter(self, model) if live is None else QdrantUpdate(self, model)
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
        """Drop what interrupted builds left (every build but the live one and the one it replaced) and
        finish the statistics of an interrupted update of the live one."""
        self._drop_except(self._kept())
        live = self.live()
        if live is not None:
            recover(self.client, live.handle)
            self.forget_stamp()

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
                copies = self.settings.qdrant_replicas  # one shard, on as many nodes as the data
                self.client("create_collection", name, vectors_config={}, replication_factor=copies)
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
                writer.set_stories(store.stories(), manifest.story_model)
                return writer.publish(), len(ids)
            except BaseException:
                writer.abort()
                raise
    finally:
        source.close()
