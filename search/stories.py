"""Story detection: group the articles that report one news event (pure functions, numpy only).

Two articles are linked when they are at most ``window_days`` apart, one is among the other's
``neighbours`` most similar articles of that window (MiniLM cosine), and either

- they are copies: cosine >= ``copy_cosine`` (other outlets' versions are nearly identical), unless
  both state decimal figures (41.4%, $2.5 billion) and share none: copies repeat their figures, and
  two market reports on one industry read alike but for them; or
- a small logistic model over the pair says they report one event with probability >=
  ``link_probability``. Its features: the cosine, the days between them, whether they share a
  section, and the *burst* of the words they share: for each shared word, how much more often it
  occurs within ``burst_days`` of the article than within ``background_days`` (pointwise mutual
  information of word and week, counted 0 when negative), summed. A hurricane's name, a victim's
  name or a ship's name is bursty; a columnist's or a president's name is not. One outlet's
  successive updates of an event share such words even when their wording differs.

Stories are the connected groups of links, taken strongest first, except that a link is dropped
when the story it would make spans more than ``max_span_days``: a chain of weekly links cannot
run through unrelated events for months. An article without a date is a story of its own.

Story ids: a new story takes the id of its earliest article (ties: the smaller id). Given the
previous assignment, each story keeps the previous id that most of its articles had (ties: the
story whose earliest article is older, then the smaller id), each previous id going to one story
at most: a story that only gained articles keeps its id; on a merge the larger former story's id
wins; on a split the part with most of the former articles keeps it and the others take their
earliest article's id.

Incremental updates (``update_stories``) recompute only the stories within ``reach_days`` of the
new, changed or removed articles (whole stories, so none is cut in two) and keep every other id.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

DAY = 86400.0


class StoryArticle(Protocol):
    """What story detection reads of an article (``search.models.Article`` has all of it)."""

    id: str
    title: str
    excerpt: str
    published: datetime | None
    provider: str
    topics: tuple[str, ...]


# Pair model: intercept, cosine, days apart, burst of shared words, same section, different sections.
# Fitted on the two HuffPost dev months (eval/stories-huffpost) by `python -m bench.stories --fit` (L2 0.1);
# the threshold 0.5 and the L2 weight were chosen by cross-validation across the two months.
PAIR_FEATURES = ("cosine", "days", "burst", "same_section", "other_section")
PAIR_WEIGHTS = (-7.062, 7.521, -0.130, 0.515, 0.462, -0.462)


@dataclass(frozen=True)
class StoryConfig:
    window_days: float = 7.0  # articles further apart are never linked directly
    neighbours: int = 20  # candidates per article: its most similar articles of the window
    min_cosine: float = 0.2  # less similar pairs are never candidates
    copy_cosine: float = 0.75  # at or above: copies, linked without the model
    link_probability: float = 0.5  # the pair model's threshold for a link
    max_span_days: float = 14.0  # no story spans more than this (first to last article)
    burst_days: float = 7.0  # a word's "now": within this many days of the article
    background_days: float = 90.0  # ... compared with its frequency within this many days
    weights: tuple[float, ...] = PAIR_WEIGHTS

    @property
    def reach_days(self) -> float:
        """How far from a changed article the stories are recomputed."""
        return self.max_span_days + self.window_days

    def to_dict(self) -> dict:
        return {
            "window_days": self.window_days,
            "neighbours": self.neighbours,
            "min_cosine": self.min_cosine,
            "copy_cosine": self.copy_cosine,
            "link_probability": self.link_probability,
            "max_span_days": self.max_span_days,
            "burst_days": self.burst_days,
            "background_days": self.background_days,
            "weights": dict(zip(("intercept", *PAIR_FEATURES), self.weights, strict=True)),
        }


DEFAULT = StoryConfig()


@dataclass(frozen=True)
class StoryAssignment:
    """Story id of every article, and how many already-assigned articles were looked at again."""

    stories: dict[str, str]  # article id -> story id
    examined: int = 0  # articles assigned before that this run re-examined
    recomputed: int = 0  # articles (new or old) whose story was computed by this run

    def members(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for article, story in self.stories.items():
            out.setdefault(story, []).append(article)
        return out

    def to_dict(self) -> dict:
        sizes = [len(m) for m in self.members().values()]
        return {
            "articles": len(self.stories),
            "stories": len(sizes),
            "stories_of_two_or_more": sum(1 for s in sizes if s > 1),
            "largest": max(sizes, default=0),
            "examined": self.examined,
            "recomputed": self.recomputed,
        }


# -- words --------------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_FIGURE = re.compile(r"\d+\.\d+")
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
    those he she they we you i his her their our your my me him them us who whom whose which what when where why how
    not no nor so than too very can will just should would could may might must do does did has have had having over
    after before into about against between through during up down out off again further then once here there all any
    both each few more most other some such only own same now new says said say one two get got gets also like make
    makes made way really people year years day days time week weeks""".split()
)


def words(text: str) -> frozenset[str]:
    """Content words of ``text``: lower case, no possessive or plural s, no stopwords, two letters or more."""
    return frozenset(w for w in map(_normal, _WORD.findall(text.lower())) if w)


@functools.lru_cache(maxsize=1 << 17)
def _normal(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word if len(word) > 1 and word not in _STOPWORDS else ""


def _numbered(texts: Sequence[str]) -> list[frozenset[int]]:
    """The content words of each text as word numbers (one number per distinct word of these texts)."""
    number: dict[str, int] = {}  # raw token -> word number, -1 for no content word
    vocab: dict[str, int] = {}
    out = []
    for text in texts:
        found = set()
        for raw in _WORD.findall(text.lower()):
            n = number.get(raw)
            if n is None:
                word = _normal(raw)
                n = number[raw] = vocab.setdefault(word, len(vocab)) if word else -1
            found.add(n)
        found.discard(-1)
        out.append(frozenset(found))
    return out


def _day(published: datetime | None) -> float:
    return published.timestamp() / DAY if published is not None else math.nan


# -- the corpus as arrays -----------------------------------------------------------------------
@dataclass
class _Corpus:
    """Articles sorted by date (undated last), with what the pair features need."""

    ids: list[str]
    days: np.ndarray  # float days since the epoch, nan when undated
    vectors: np.ndarray  # unit rows
    words: list[frozenset[int]]  # word numbers
    topics: list[frozenset[str]]
    figures: list[frozenset[str]]  # decimal figures the text states
    dated: int  # the first ``dated`` rows have a date
    occ_row: np.ndarray  # every (row, word) of the dated rows, by row
    occ_word: np.ndarray

    @classmethod
    def build(cls, articles: Sequence[StoryArticle], vectors: np.ndarray) -> _Corpus:
        if len(articles) != len(vectors):
            raise ValueError(f"{len(articles)} articles but {len(vectors)} vectors")
        days = np.array([_day(a.published) for a in articles], dtype=np.float64)
        order = np.lexsort((np.array([a.id for a in articles]), np.nan_to_num(days, nan=np.inf)))
        arts = [articles[i] for i in order]
        texts = [f"{a.title}. {a.excerpt}" for a in arts]
        numbered = _numbered(texts)
        dated = int(np.count_nonzero(~np.isnan(days)))
        sizes = np.fromiter((len(numbered[r]) for r in range(dated)), dtype=np.int64, count=dated)
        flat = (w for r in range(dated) for w in numbered[r])
        return cls(
            ids=[a.id for a in arts],
            days=days[order],
            vectors=np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[order]),
            words=numbered,
            topics=[frozenset(a.topics) for a in arts],
            figures=[frozenset(_FIGURE.findall(t)) for t in texts],
            dated=dated,
            occ_row=np.repeat(np.arange(dated), sizes),
            occ_word=np.fromiter(flat, dtype=np.int64, count=int(sizes.sum())),
        )


# -- burst weights ------------------------------------------------------------------------------
def burst_weights(corpus: _Corpus, config: StoryConfig, rows: np.ndarray) -> dict[int, dict[int, float]]:
    """For each dated row of ``rows``: word -> max(0, log(share of the articles within ``burst_days`` of it
    that hold the word / share of the articles within ``background_days`` that do))."""
    n = corpus.dated
    if n == 0 or len(rows) == 0:
        return {}
    day0 = corpus.days[0]
    span = float(corpus.days[n - 1] - day0) + 4 * config.background_days + 1.0
    keys = np.sort(corpus.occ_word * span + (corpus.days[corpus.occ_row] - day0))
    wanted = np.zeros(n, dtype=bool)
    wanted[rows[rows < n]] = True
    pick = wanted[corpus.occ_row]
    occ_row, occ_word = corpus.occ_row[pick], corpus.occ_word[pick]
    at = corpus.days[occ_row]
    base = occ_word * span + (at - day0)
    days = corpus.days[:n]

    def share(before: float, after: float) -> np.ndarray:
        holding = np.searchsorted(keys, base + after, side="right") - np.searchsorted(keys, base - before, side="left")
        total = np.searchsorted(days, at + after, side="right") - np.searchsorted(days, at - before, side="left")
        return holding / np.maximum(total, 1)

    near = share(config.burst_days, config.burst_days)
    weight = np.maximum(np.log(near / share(config.background_days, config.background_days)), 0.0)
    out: dict[int, dict[int, float]] = {}
    for r, w, x in zip(occ_row.tolist(), occ_word.tolist(), weight.tolist(), strict=True):
        out.setdefault(r, {})[w] = x
    return out


# -- candidate pairs and their features ----------------------------------------------------------
@dataclass(frozen=True)
class Pairs:
    """Candidate pairs (row indices into the date-sorted corpus, ``left < right``) and their features."""

    left: np.ndarray
    right: np.ndarray
    features: np.ndarray  # (pairs, len(PAIR_FEATURES))

    @property
    def cosine(self) -> np.ndarray:
        return self.features[:, 0]

    @property
    def days(self) -> np.ndarray:
        return self.features[:, 1]


_BLOCK = 64  # rows compared at once: small blocks keep each block's time window narrow


def candidate_pairs(corpus: _Corpus, config: StoryConfig, rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(left, right, cosine) of each article's ``neighbours`` most similar articles within the window.

    ``rows`` limits the articles whose neighbours are sought (their neighbours may lie outside them).
    Blocks of date-sorted rows are compared with the articles of their time window only, so the cost
    grows with the corpus times the articles per window, not with the corpus squared.
    """
    with _one_blas_thread():
        return _candidate_pairs(corpus, config, rows)


def _one_blas_thread():
    """BLAS on one thread for the small block products: two OpenBLAS threads made them 3-10 times slower
    on this 2-core machine (bench/results/stories.json). Without threadpoolctl, BLAS is left as it is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _candidate_pairs(corpus: _Corpus, config: StoryConfig, rows: np.ndarray | None) -> tuple[np.ndarray, ...]:
    n = corpus.dated
    rows = np.arange(n) if rows is None else np.sort(rows[rows < n])
    lefts, rights, sims = [], [], []
    days, vectors, k = corpus.days[:n], corpus.vectors, config.neighbours
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK]
        lo = int(np.searchsorted(days, days[block[0]] - config.window_days, side="left"))
        hi = int(np.searchsorted(days, days[block[-1]] + config.window_days, side="right"))
        scores = vectors[block] @ vectors[lo:hi].T
        apart = np.abs(days[block, None] - days[None, lo:hi])
        scores[(apart > config.window_days) | (block[:, None] == np.arange(lo, hi)[None, :])] = -np.inf
        take = min(k, hi - lo - 1)
        if take <= 0:
            continue
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        best = np.take_along_axis(scores, top, axis=1)
        keep = np.isfinite(best) & (best >= config.min_cosine)
        left = np.repeat(block, take).reshape(len(block), take)[keep]
        right = (top + lo)[keep]
        lefts.append(np.minimum(left, right))
        rights.append(np.maximum(left, right))
        sims.append(best[keep])
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    left, right, sim = np.concatenate(lefts), np.concatenate(rights), np.concatenate(sims)
    key, first = np.unique(left.astype(np.int64) * (n + 1) + right, return_index=True)
    return left[first], right[first], sim[first]


def pair_features(corpus: _Corpus, config: StoryConfig, rows: np.ndarray | None = None) -> Pairs:
    """Candidate pairs with cosine, days apart, burst of shared words, same section, other section."""
    left, right, sim = candidate_pairs(corpus, config, rows)
    weights = burst_weights(corpus, config, np.unique(np.concatenate([left, right])))
    feats = np.zeros((len(left), len(PAIR_FEATURES)), dtype=np.float64)
    feats[:, 0] = sim
    feats[:, 1] = np.abs(corpus.days[left] - corpus.days[right])
    burst, topics = feats[:, 2], corpus.topics
    for p, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        wi, wj = weights[i], weights[j]
        shared = wi.keys() & wj.keys()
        if shared:
            burst[p] = sum(wi[w] + wj[w] for w in shared) / 2
        if topics[i] and topics[j]:
            feats[p, 3 if topics[i] & topics[j] else 4] = 1.0
    return Pairs(left, right, feats)


def candidate_features(
    articles: Sequence[StoryArticle], vectors: np.ndarray, config: StoryConfig = DEFAULT
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Every candidate pair as (article id, article id) with its PAIR_FEATURES row: what the pair model
    is fitted on (``search.story_eval``)."""
    corpus = _Corpus.build(articles, vectors)
    pairs = pair_features(corpus, config)
    ids = [(corpus.ids[i], corpus.ids[j]) for i, j in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)]
    return ids, pairs.features


def link_probability(features: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The pair model: logistic of intercept + features . weights."""
    w = np.asarray(weights, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(w[0] + features @ w[1:])))


def linked(corpus: _Corpus, pairs: Pairs, config: StoryConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, strength) of the pairs that are links: copies, or the model's probability over the threshold."""
    prob = link_probability(pairs.features, config.weights)
    copy = (pairs.cosine >= config.copy_cosine) & (pairs.days <= config.window_days)
    figures = corpus.figures
    for p in np.flatnonzero(copy).tolist():
        a, b = figures[pairs.left[p]], figures[pairs.right[p]]
        if a and b and not a & b:
            copy[p] = False
    keep = copy | (prob >= config.link_probability)
    strength = np.maximum(prob, np.where(copy, pairs.cosine, 0.0))
    return pairs.left[keep], pairs.right[keep], strength[keep]


# -- clustering ---------------------------------------------------------------------------------
class _Forest:
    """Union-find over rows that remembers each group's first and last day."""

    def __init__(self, days: np.ndarray):
        self.parent = list(range(len(days)))
        self.first = days.tolist()
        self.last = days.tolist()

    def root(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, i: int, j: int, max_span: float | None = None) -> bool:
        a, b = self.root(i), self.root(j)
        if a == b:
            return False
        first, last = min(self.first[a], self.first[b]), max(self.last[a], self.last[b])
        if max_span is not None and last - first > max_span:
            return False
        a, b = min(a, b), max(a, b)
        self.parent[b] = a
        self.first[a], self.last[a] = first, last
        return True


def cluster(
    corpus: _Corpus,
    links: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_span: float,
    fixed: Mapping[int, str] | None = None,
) -> list[int]:
    """Root row of every row. Rows in ``fixed`` start grouped by their story; then links join groups,
    strongest first, skipping any that would make a story span more than ``max_span`` days."""
    forest = _Forest(corpus.days)
    first_of: dict[str, int] = {}
    for row, story in sorted((fixed or {}).items()):
        forest.join(first_of.setdefault(story, row), row)
    left, right, strength = links
    order = np.lexsort((right, left, -strength))
    for i, j in zip(left[order].tolist(), right[order].tolist(), strict=True):
        forest.join(i, j, max_span)
    return [forest.root(x) for x in range(len(corpus.ids))]


def _name(
    corpus: _Corpus, groups: list[list[int]], previous: Mapping[str, str], reserved: Collection[str] = ()
) -> dict[str, str]:
    """Story id of every article of ``groups``: the previous id most of a group held, else the id of its
    earliest article (the next one when that id names another story)."""
    claims = []
    for g, rows in enumerate(groups):
        held: dict[str, int] = {}
        for row in rows:
            old = previous.get(corpus.ids[row])
            if old is not None:
                held[old] = held.get(old, 0) + 1
        claims.extend((-count, rows[0], old, g) for old, count in held.items())
    named: dict[int, str] = {}
    taken = set(reserved)
    for _, _, old, g in sorted(claims):
        if g not in named and old not in taken:
            named[g] = old
            taken.add(old)
    out = {}
    for g, rows in enumerate(groups):
        story = named.get(g)
        if story is None:
            story = _fresh_id([corpus.ids[r] for r in rows], taken)
            taken.add(story)
        for row in rows:
            out[corpus.ids[row]] = story
    return out


def _fresh_id(members: list[str], taken: set[str]) -> str:
    for candidate in members:
        if candidate not in taken:
            return candidate
    n = 2
    while f"{members[0]}-{n}" in taken:
        n += 1
    return f"{members[0]}-{n}"


# -- the API ------------------------------------------------------------------------------------
def assign_stories(
    articles: Sequence[StoryArticle],
    vectors: np.ndarray,
    config: StoryConfig = DEFAULT,
    previous: Mapping[str, str] | None = None,
) -> StoryAssignment:
    """Stories of all ``articles`` (``vectors``: their unit embeddings, row for row).

    With ``previous`` (article id -> story id), stories keep their former ids where they can.
    """
    corpus = _Corpus.build(articles, vectors)
    present = set(corpus.ids)
    previous = {a: s for a, s in (previous or {}).items() if a in present}
    stories = _recompute(corpus, config, np.arange(len(corpus.ids)), {}, previous, reserved=())
    return StoryAssignment(stories, examined=len(previous), recomputed=len(stories))


def update_stories(
    previous: Mapping[str, str],
    articles: Sequence[StoryArticle],
    vectors: np.ndarray,
    changed: Collection[str],
    removed: Collection[str] = (),
    config: StoryConfig = DEFAULT,
) -> StoryAssignment:
    """Stories after adding or changing the articles ``changed`` and removing ``removed``.

    ``previous`` maps every article of the index before the update to its story. ``articles`` (with
    their ``vectors``) must hold the changed articles and at least every article published within
    ``context_days(config)`` of them and of the removed ones' story mates (passing all articles is
    simplest). Only the stories within ``config.reach_days`` of a changed or removed article are
    recomputed; any other story keeps its id and its articles (it may gain new ones). Returns the
    story of every article: those of ``previous`` (less the removed) and the changed ones.
    """
    corpus = _Corpus.build(articles, vectors)
    row_of = {a: r for r, a in enumerate(corpus.ids)}
    missing = [a for a in changed if a not in row_of]
    if missing:
        raise ValueError(f"changed article {missing[0]!r} is not among the articles")
    gone = set(removed)
    touched = {previous[a] for a in set(changed) | gone if a in previous}
    previous = {a: s for a, s in previous.items() if a not in gone}
    seeds = {row_of[a] for a in changed} | {row_of[a] for a, s in previous.items() if s in touched and a in row_of}
    region = _region(corpus, config, previous, row_of, seeds)
    in_region = set(region.tolist())
    fixed = {r: previous[a] for a, r in row_of.items() if a in previous and r not in in_region}
    recomputed = _recompute(corpus, config, region, fixed, previous, reserved=None)
    stories = {**previous, **recomputed}
    examined = sum(1 for r in in_region if corpus.ids[r] in previous and corpus.ids[r] not in changed)
    return StoryAssignment(stories, examined=examined, recomputed=len(in_region))


def cosine_baseline(
    articles: Sequence[StoryArticle], vectors: np.ndarray, threshold: float = 0.75, days: float = 7.0
) -> dict[str, str]:
    """The baseline of issue 10: link every two articles at most ``days`` apart whose cosine is at least
    ``threshold``, and take the connected groups (no model, no span limit). Story ids as above."""
    corpus = _Corpus.build(articles, vectors)
    config = StoryConfig(window_days=days, neighbours=max(len(corpus.ids), 1))
    left, right, sim = candidate_pairs(corpus, config)
    forest = _Forest(corpus.days)
    for i, j in zip(left[sim >= threshold].tolist(), right[sim >= threshold].tolist(), strict=True):
        forest.join(i, j)
    groups: dict[int, list[int]] = {}
    for r in range(len(corpus.ids)):
        groups.setdefault(forest.root(r), []).append(r)
    return _name(corpus, list(groups.values()), {})


def context_days(config: StoryConfig = DEFAULT) -> float:
    """An update needs the articles published within this many days of each changed article."""
    return config.reach_days + config.max_span_days + config.window_days + config.background_days


def _region(
    corpus: _Corpus, config: StoryConfig, previous: Mapping[str, str], row_of: Mapping[str, int], seeds: set[int]
) -> np.ndarray:
    """The seed rows, the dated rows within ``reach_days`` of a dated seed, then the whole stories of these."""
    days = corpus.days[: corpus.dated]
    marked = np.zeros(len(corpus.ids), dtype=bool)
    for r in seeds:
        marked[r] = True
        if r < corpus.dated:
            lo = np.searchsorted(days, corpus.days[r] - config.reach_days, side="left")
            hi = np.searchsorted(days, corpus.days[r] + config.reach_days, side="right")
            marked[lo:hi] = True
    stories = {previous[corpus.ids[r]] for r in np.flatnonzero(marked) if corpus.ids[r] in previous}
    for a, s in previous.items():
        if s in stories and a in row_of:
            marked[row_of[a]] = True
    return np.flatnonzero(marked)


def _recompute(
    corpus: _Corpus,
    config: StoryConfig,
    rows: np.ndarray,
    fixed: Mapping[int, str],
    previous: Mapping[str, str],
    reserved: Collection[str] | None,
) -> dict[str, str]:
    """Stories of ``rows`` and of the fixed stories they join, named against ``previous``.

    ``reserved`` story ids may not be claimed; None means the ids of every previous article outside
    the recomputed stories.
    """
    dated = rows[rows < corpus.dated]
    inside = np.zeros(len(corpus.ids), dtype=bool)
    inside[rows] = True
    left, right, strength = linked(corpus, pair_features(corpus, config, dated), config)
    keep = inside[left] | inside[right]
    roots = cluster(corpus, (left[keep], right[keep], strength[keep]), config.max_span_days, fixed)
    groups: dict[int, list[int]] = {}
    for r in range(len(corpus.ids)):
        groups.setdefault(roots[r], []).append(r)
    touched = [g for g in groups.values() if inside[g].any()]
    if reserved is None:
        ids = {corpus.ids[r] for g in touched for r in g}
        reserved = {s for a, s in previous.items() if a not in ids}
    return _name(corpus, touched, previous, reserved)
