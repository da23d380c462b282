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
  successive updates of an event share such words even when their wording differs. Then the
  *rarity* of the rarest word they share: log(articles within ``rarity_days`` / those holding it),
  a document frequency measured around the article; and the burst of the words their *titles*
  share: a headline names the happening (the lockdown, the funeral, the verdict), an excerpt
  often only its setting.

Series: two articles whose titles are alike but for their numbers (month names are no words) and
which are at least ``series_days`` apart are two editions of a series (a weekly list and the next
week's: the rules keep them apart, and they read alike), never linked, whatever the cosine or the
model. An article with such an edition between ``series_days`` and ``series_reach_days`` away is
itself an edition, linked to its copies only (alike by cosine, and titled alike but for numbers):
the same week's lists of two series share the week's bursty words, and the model alone would join
them. So is an article whose title names a span of dates ("... this week (Sept. 17-23)"): a roundup
of its period, an edition even when the index holds no other edition of its series (the newest
week's lists). The marks are made over the whole period around the recomputed articles, so a slice
or an update marks as one pass does.

Stories are built from the links, strongest first. A link joins its two articles' groups unless
the story it would make spans more than ``max_span_days`` (a chain of weekly links cannot run
through unrelated events for months), or it is a model link (weaker than ``copy_cosine``) and
fewer than ``min_link_share`` of the pairs across the two groups are links: a story grows by
articles tied to a good part of it, not by a chain of pairwise links through an ongoing
situation's separate events (an outbreak's daily counts, a crisis's strike, protests and
downing of an airliner). An article without a date is a story of its own.

Story ids: a new story takes the id of its earliest article (ties: the smaller id). Given the
previous assignment, each story keeps the previous id that most of its articles had (ties: the
story whose earliest article is older, then the smaller previous id), each previous id going to
one story at most: a story that only gained articles keeps its id; on a merge the larger former story's id
wins; on a split the part with most of the former articles keeps it and the others take their
earliest article's id.

Incremental updates (``update_stories``) recompute only the stories within ``reach_days`` of the
new, changed or removed articles (whole stories, so none is cut in two); every other story keeps
its id and its articles, and may gain new ones. Word bursts are measured against the articles
around each one, so an update can differ from a rebuild near its edges (adding huffpost-10k's
newest 1,000 articles to the other 8,998 found 98.3% of a rebuild's same-story pairs, and 99.9% of
the pairs it found are a rebuild's: ``python -m bench.run_all stories`` at 11e058f, ``bench/results/stories.json``).

Memory: ``assign_all`` and ``update_all`` read the articles from a ``StorySource`` a slice of the
timeline at a time. They first count the words of the period around the recomputed articles into
a ``WordTable`` (a sorted array of word x day keys), then find the links of each slice (its articles
and those within ``window_days`` of them), weighing words against that table, and finally group the
links over the ``Timeline`` (ids and days only). The stories are the ones a single pass over all
the articles finds; ``assign_stories`` and ``update_stories`` are the same over articles in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from search.story_pairs import (
    PAIR_FEATURES,
    Lexicon,
    Pairs,
    StoryCorpus,
    WordCounter,
    WordTable,
    candidate_pairs,
    day_of,
    editions,
    link_probability,
    names_a_period,
    pair_features,
    series_key,
    words,
)

__all__ = [
    "DEFAULT",
    "PAIR_FEATURES",
    "PAIR_WEIGHTS",
    "StoryArticle",
    "StoryAssignment",
    "StoryConfig",
    "StorySource",
    "Timeline",
    "assign_all",
    "assign_stories",
    "candidate_features",
    "context_days",
    "cosine_baseline",
    "link_probability",
    "model_key",
    "stories_from_pairs",
    "update_all",
    "update_stories",
    "words",
]


class StoryArticle(Protocol):
    """What story detection reads of an article (``search.models.Article`` has all of it)."""

    id: str
    title: str
    excerpt: str
    published: datetime | None
    provider: str
    topics: tuple[str, ...]


# Pair model: intercept, cosine, days apart, burst of shared words, same section, different sections, rarity of
# the rarest shared word, burst of the words both titles hold. Fitted with `python -m bench.stories --fit` (L2 10)
# on both labellings of the nineteen HuffPost dev months (eval/stories-huffpost and its second/), which also chose
# the link threshold; features, rarity_days, window_days and min_link_share chosen by leaving one month out of the
# first eight (min_link_share checked again on sixteen), L2 of sixteen (checked again on nineteen).
PAIR_WEIGHTS = (-6.308, 2.171, -0.288, 0.216, 0.288, -0.288, 0.442, 0.380)


@dataclass(frozen=True)
class StoryConfig:
    window_days: float = 10.0  # articles further apart are never linked directly
    neighbours: int = 20  # candidates per article: its most similar articles of the window
    min_cosine: float = 0.2  # less similar pairs are never candidates
    copy_cosine: float = 0.75  # at or above: copies, linked without the model
    link_probability: float = 0.35  # the pair model's threshold for a link
    max_span_days: float = 14.0  # no story spans more than this (first to last article)
    min_link_share: float = 0.25  # a model link joins two groups only if this share of the pairs across them are links
    series_days: float = 5.0  # titles alike but for their numbers, this many days apart or more: a series
    series_reach_days: float = 14.0  # ... and at most this many apart: each an edition, linked to its copies only
    burst_days: float = 7.0  # a word's "now": within this many days of the article
    background_days: float = 90.0  # ... compared with its frequency within this many days
    rarity_days: float = 730.0  # a word's rarity: its document frequency within this many days
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
            "min_link_share": self.min_link_share,
            "series_days": self.series_days,
            "series_reach_days": self.series_reach_days,
            "burst_days": self.burst_days,
            "background_days": self.background_days,
            "rarity_days": self.rarity_days,
            "weights": dict(zip(("intercept", *PAIR_FEATURES), self.weights, strict=True)),
        }


DEFAULT = StoryConfig()


def model_key(config: StoryConfig = DEFAULT) -> str:
    """A short name of the story model (its weights and settings). An index records the model its stories were
    assigned with; the indexer assigns them all again when the running model differs."""
    blob = json.dumps(config.to_dict(), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


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


def candidate_features(
    articles: Sequence[StoryArticle], vectors: np.ndarray, config: StoryConfig = DEFAULT
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Every candidate pair as (article id, article id) with its PAIR_FEATURES row: what the pair model
    is fitted on (``search.story_eval``)."""
    corpus = StoryCorpus.build(articles, vectors)
    pairs = pair_features(corpus, config)
    ids = [(corpus.ids[i], corpus.ids[j]) for i, j in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)]
    return ids, pairs.features


def linked(corpus: StoryCorpus, pairs: Pairs, config: StoryConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, strength) of the pairs that are links: copies, or the model's probability over the threshold."""
    prob = link_probability(pairs.features, config.weights)
    copy = (pairs.cosine >= config.copy_cosine) & (pairs.days <= config.window_days)
    figures = corpus.figures
    for p in np.flatnonzero(copy).tolist():
        a, b = figures[pairs.left[p]], figures[pairs.right[p]]
        if a and b and not a & b:
            copy[p] = False
    marks = corpus.editions
    if marks is None:
        marks = editions(corpus.titles, corpus.days, corpus.periods, corpus.lexicon, config)
    edition = marks[pairs.left] | marks[pairs.right]
    keep = copy | (prob >= config.link_probability)
    for p in np.flatnonzero(keep & (edition | (pairs.days >= config.series_days))).tolist():
        same = _same_series(corpus, pairs.left[p], pairs.right[p])
        if (same and pairs.days[p] >= config.series_days) or (edition[p] and not (same and copy[p])):
            keep[p] = False  # two editions of a series, or an edition and anything but its copies
    strength = np.maximum(prob, np.where(copy, pairs.cosine, 0.0))
    return pairs.left[keep], pairs.right[keep], strength[keep]


def _same_series(corpus: StoryCorpus, i: int, j: int) -> bool:
    """Whether the titles of rows ``i`` and ``j`` are alike but for their numbers (``series_key``)."""
    a, b = series_key(corpus.titles[i], corpus.lexicon), series_key(corpus.titles[j], corpus.lexicon)
    return len(a) >= 2 and a == b


# -- clustering ---------------------------------------------------------------------------------
class _Forest:
    """Union-find over rows that remembers each group's first and last day and its rows."""

    def __init__(self, days: np.ndarray):
        self.parent = list(range(len(days)))
        self.first = days.tolist()
        self.last = days.tolist()
        self.rows: dict[int, list[int]] = {}  # root -> its rows, for groups of two or more

    def root(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def span(self, a: int, b: int) -> float:
        """Days from the first to the last article of the groups of roots ``a`` and ``b`` together."""
        return max(self.last[a], self.last[b]) - min(self.first[a], self.first[b])

    def join(self, i: int, j: int) -> bool:
        a, b = self.root(i), self.root(j)
        if a == b:
            return False
        a, b = min(a, b), max(a, b)
        self.parent[b] = a
        self.first[a], self.last[a] = min(self.first[a], self.first[b]), max(self.last[a], self.last[b])
        self.rows.setdefault(a, [a]).extend(self.rows.pop(b, [b]))
        return True

    def members(self, root: int) -> list[int]:
        return self.rows.get(root, [root])


def _share_of_links(forest: _Forest, a: int, b: int, links: set[tuple[int, int]]) -> float:
    """The share of the pairs across the groups of roots ``a`` and ``b`` that are links."""
    left, right = forest.members(a), forest.members(b)
    found = sum(1 for x in left for y in right if (min(x, y), max(x, y)) in links)
    return found / (len(left) * len(right))


def cluster(
    corpus: Timeline | StoryCorpus,
    links: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: StoryConfig,
    fixed: Mapping[int, str] | None = None,
) -> list[int]:
    """Root row of every row. Rows in ``fixed`` start grouped by their story; then links join groups,
    strongest first, skipping any that would make a story span more than ``max_span_days`` and any model
    link (weaker than ``copy_cosine``) across groups too few of whose pairs are links (``min_link_share``)."""
    forest = _Forest(corpus.days)
    first_of: dict[str, int] = {}
    for row, story in sorted((fixed or {}).items()):
        forest.join(first_of.setdefault(story, row), row)
    left, right, strength = links
    known = set(zip(left.tolist(), right.tolist(), strict=True))
    order = np.lexsort((right, left, -strength))
    for i, j, s in zip(left[order].tolist(), right[order].tolist(), strength[order].tolist(), strict=True):
        a, b = forest.root(i), forest.root(j)
        if a == b or forest.span(a, b) > config.max_span_days:
            continue
        if s < config.copy_cosine and _share_of_links(forest, a, b, known) < config.min_link_share:
            continue
        forest.join(a, b)
    return [forest.root(x) for x in range(len(corpus.ids))]


def _name(
    corpus: Timeline | StoryCorpus, groups: list[list[int]], previous: Mapping[str, str], reserved: Collection[str] = ()
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


# -- the timeline and the sources of articles -------------------------------------------------
@dataclass(frozen=True)
class Timeline:
    """Every article's id and day, sorted by date (undated last, ties by id): all that grouping and naming
    need. Row r of the timeline is row r of a StoryCorpus of all the articles."""

    ids: list[str]
    days: np.ndarray  # float days since the epoch, nan when undated
    dated: int

    @classmethod
    def of(cls, published: Mapping[str, datetime | None]) -> Timeline:
        ids = list(published)
        days = np.array([day_of(published[i]) for i in ids], dtype=np.float64)
        order = np.lexsort((np.array(ids, dtype=object), np.nan_to_num(days, nan=np.inf))) if ids else []
        return cls([ids[i] for i in order], days[order], int(np.count_nonzero(~np.isnan(days))))

    def rows_within(self, first: float, last: float) -> tuple[int, int]:
        """[lo, hi): the dated rows published within [first, last]."""
        days = self.days[: self.dated]
        return int(np.searchsorted(days, first, side="left")), int(np.searchsorted(days, last, side="right"))


class StorySource(Protocol):
    """Where story detection reads articles and their vectors from, a slice at a time."""

    def articles(self, ids: Sequence[str]) -> list[StoryArticle]: ...  # in the order of ``ids``
    def vectors(self, ids: Sequence[str]) -> np.ndarray: ...  # unit rows, in the order of ``ids``


class _InMemory:
    """A StorySource over articles and vectors already in memory."""

    def __init__(self, articles: Sequence[StoryArticle], vectors: np.ndarray):
        if len(articles) != len(vectors):
            raise ValueError(f"{len(articles)} articles but {len(vectors)} vectors")
        self.row = {a.id: r for r, a in enumerate(articles)}
        self._articles, self._vectors = articles, np.asarray(vectors, dtype=np.float32)

    def articles(self, ids: Sequence[str]) -> list[StoryArticle]:
        return [self._articles[self.row[i]] for i in ids]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        return self._vectors[[self.row[i] for i in ids]]


SLICE = 4096  # articles held at once: a slice of the timeline and the window (window_days) on either side of it


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
    source = _InMemory(articles, vectors)
    return assign_all(Timeline.of({a.id: a.published for a in articles}), source, config, previous)


def assign_all(
    timeline: Timeline,
    source: StorySource,
    config: StoryConfig = DEFAULT,
    previous: Mapping[str, str] | None = None,
    slice_size: int = SLICE,
) -> StoryAssignment:
    """Stories of every article of ``timeline``, reading ``source`` a slice of about ``slice_size`` articles
    at a time: memory holds the timeline, a table of word counts and the links, never all the articles."""
    present = set(timeline.ids)
    previous = {a: s for a, s in (previous or {}).items() if a in present}
    rows = np.arange(len(timeline.ids))
    stories = _recompute(timeline, source, config, rows, {}, previous, (), slice_size)
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
    source = _InMemory(articles, vectors)
    timeline = Timeline.of({a.id: a.published for a in articles})
    return update_all(timeline, source, previous, changed, removed, config)


def update_all(
    timeline: Timeline,
    source: StorySource,
    previous: Mapping[str, str],
    changed: Collection[str],
    removed: Collection[str] = (),
    config: StoryConfig = DEFAULT,
    slice_size: int = SLICE,
) -> StoryAssignment:
    """``update_stories`` over a timeline (it must hold what ``update_stories`` asks of its articles),
    reading ``source`` a slice at a time."""
    row_of = {a: r for r, a in enumerate(timeline.ids)}
    missing = [a for a in changed if a not in row_of]
    if missing:
        raise ValueError(f"changed article {missing[0]!r} is not among the articles")
    gone = set(removed)
    touched = {previous[a] for a in set(changed) | gone if a in previous}
    previous = {a: s for a, s in previous.items() if a not in gone}
    seeds = {row_of[a] for a in changed} | {row_of[a] for a, s in previous.items() if s in touched and a in row_of}
    region = _region(timeline, config, previous, row_of, seeds)
    in_region = set(region.tolist())
    fixed = {r: previous[a] for a, r in row_of.items() if a in previous and r not in in_region}
    recomputed = _recompute(timeline, source, config, region, fixed, previous, None, slice_size)
    stories = {**previous, **recomputed}
    examined = sum(1 for r in in_region if timeline.ids[r] in previous and timeline.ids[r] not in changed)
    return StoryAssignment(stories, examined=examined, recomputed=len(in_region))


def stories_from_pairs(corpus: StoryCorpus, pairs: Pairs, config: StoryConfig = DEFAULT) -> dict[str, str]:
    """Stories of the whole ``corpus`` from its candidate pairs (``pair_features(corpus, config)``): what
    ``assign_stories`` does once the pairs are featured. An evaluation trying several weights and
    thresholds features the pairs once (the features do not depend on either)."""
    left, right, strength = linked(corpus, pairs, config)
    roots = cluster(corpus, (left, right, strength), config)
    return _name(corpus, _groups(roots), {})


def cosine_baseline(
    articles: Sequence[StoryArticle], vectors: np.ndarray, threshold: float = 0.75, days: float = 7.0
) -> dict[str, str]:
    """The baseline of issue 10: link every two articles at most ``days`` apart whose cosine is at least
    ``threshold``, and take the connected groups (no model, no span limit). Story ids as above."""
    corpus = StoryCorpus.build(articles, vectors)
    config = StoryConfig(window_days=days, neighbours=max(len(corpus.ids), 1))
    left, right, sim = candidate_pairs(corpus, config)
    forest = _Forest(corpus.days)
    for i, j in zip(left[sim >= threshold].tolist(), right[sim >= threshold].tolist(), strict=True):
        forest.join(i, j)
    return _name(corpus, _groups([forest.root(r) for r in range(len(corpus.ids))]), {})


def context_days(config: StoryConfig = DEFAULT) -> float:
    """An update needs the articles published within this many days of each changed article."""
    return (
        config.reach_days
        + config.max_span_days
        + config.window_days
        + max(config.background_days, config.rarity_days, config.series_reach_days)
    )


def _groups(roots: list[int]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for r, root in enumerate(roots):
        groups.setdefault(root, []).append(r)
    return list(groups.values())


def _region(
    timeline: Timeline, config: StoryConfig, previous: Mapping[str, str], row_of: Mapping[str, int], seeds: set[int]
) -> np.ndarray:
    """The seed rows, the dated rows within ``reach_days`` of a dated seed, then the whole stories of these."""
    days = timeline.days[: timeline.dated]
    marked = np.zeros(len(timeline.ids), dtype=bool)
    for r in seeds:
        marked[r] = True
        if r < timeline.dated:
            lo = np.searchsorted(days, timeline.days[r] - config.reach_days, side="left")
            hi = np.searchsorted(days, timeline.days[r] + config.reach_days, side="right")
            marked[lo:hi] = True
    stories = {previous[timeline.ids[r]] for r in np.flatnonzero(marked) if timeline.ids[r] in previous}
    for a, s in previous.items():
        if s in stories and a in row_of:
            marked[row_of[a]] = True
    return np.flatnonzero(marked)


def _recompute(
    timeline: Timeline,
    source: StorySource,
    config: StoryConfig,
    rows: np.ndarray,
    fixed: Mapping[int, str],
    previous: Mapping[str, str],
    reserved: Collection[str] | None,
    slice_size: int,
) -> dict[str, str]:
    """Stories of ``rows`` and of the fixed stories they join, named against ``previous``.

    ``reserved`` story ids may not be claimed; None means the ids of every previous article outside
    the recomputed stories.
    """
    inside = np.zeros(len(timeline.ids), dtype=bool)
    inside[rows] = True
    left, right, strength = _links(timeline, source, config, rows[rows < timeline.dated], slice_size)
    keep = inside[left] | inside[right]
    roots = cluster(timeline, (left[keep], right[keep], strength[keep]), config, fixed)
    touched = [g for g in _groups(roots) if inside[g].any()]
    if reserved is None:
        ids = {timeline.ids[r] for g in touched for r in g}
        reserved = {s for a, s in previous.items() if a not in ids}
    return _name(timeline, touched, previous, reserved)


def _links(
    timeline: Timeline, source: StorySource, config: StoryConfig, rows: np.ndarray, slice_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The links of the dated ``rows`` (timeline rows), found a slice at a time: each slice holds some of
    the rows and every article within ``window_days`` of them; words are weighed against a table of the
    whole period around the rows, counted first, a slice at a time too."""
    empty = np.zeros(0, dtype=np.int64)
    if not len(rows):
        return empty, empty, np.zeros(0)
    lexicon, table, words, titles, marks = _word_table(timeline, source, config, rows, slice_size)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lo, hi, part in _slices(timeline, config, rows, slice_size):
        ids = timeline.ids[lo:hi]
        known = words.of(lo, hi), titles.of(lo, hi), marks[lo - words.first : hi - words.first]
        corpus = StoryCorpus.build(source.articles(ids), source.vectors(ids), lexicon, table, *known)
        if corpus.ids != ids:
            raise ValueError("the source's articles are not the timeline's (dates or ids differ)")
        left, right, strength = linked(corpus, pair_features(corpus, config, part - lo), config)
        found.append((left + lo, right + lo, strength))
    left, right, strength = (np.concatenate(x) for x in zip(*found, strict=True))
    _, first = np.unique(left * (len(timeline.ids) + 1) + right, return_index=True)  # a pair two slices found
    return left[first], right[first], strength[first]


def _slices(
    timeline: Timeline, config: StoryConfig, rows: np.ndarray, slice_size: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(lo, hi, part): consecutive parts of the sorted dated ``rows`` whose articles and those within
    ``window_days`` of them, timeline rows [lo, hi), number about ``slice_size`` (more when one day has more)."""
    days = timeline.days[: timeline.dated]
    at = days[rows]
    los = np.searchsorted(days, at - config.window_days, side="left")
    his = np.searchsorted(days, at + config.window_days, side="right")
    start = 0
    while start < len(rows):
        lo = int(los[start])
        end = max(int(np.searchsorted(his, lo + slice_size, side="right")), start + 1)  # his never decreases
        yield lo, int(his[end - 1]), rows[start:end]
        start = end


class _PackedWords:
    """The word numbers of a run of timeline rows, packed in one array (a few bytes a word)."""

    def __init__(self, first: int):
        self.first = first
        self._flat: list[np.ndarray] = []
        self._sizes: list[np.ndarray] = []
        self.flat, self.starts = np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)

    def extend(self, numbered: Sequence[frozenset[int]]) -> None:
        self._sizes.append(np.fromiter(map(len, numbered), dtype=np.int64, count=len(numbered)))
        self._flat.append(np.fromiter((w for ws in numbered for w in ws), dtype=np.int32))

    def pack(self) -> _PackedWords:
        self.flat = np.concatenate(self._flat) if self._flat else self.flat
        sizes = np.concatenate(self._sizes) if self._sizes else np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self._flat, self._sizes = [], []
        return self

    def of(self, lo: int, hi: int) -> list[frozenset[int]]:
        """The word numbers of timeline rows [lo, hi)."""
        bounds = self.starts[lo - self.first : hi - self.first + 1]
        part = self.flat[bounds[0] : bounds[-1]].tolist()
        bounds = (bounds - bounds[0]).tolist()
        return [frozenset(part[bounds[k] : bounds[k + 1]]) for k in range(hi - lo)]


def _word_table(
    timeline: Timeline, source: StorySource, config: StoryConfig, rows: np.ndarray, slice_size: int
) -> tuple[Lexicon, WordTable, _PackedWords, _PackedWords, np.ndarray]:
    """The word table of every dated article near enough to ``rows`` to count in their words' weights, the
    word numbers of these articles' texts and of their titles, and which of them are editions of a series
    (marked over the whole period, so that every slice sees the marks one pass over all the articles would)."""
    reach = config.window_days + max(
        config.background_days, config.burst_days, config.rarity_days, config.series_reach_days
    )
    days = timeline.days
    lo, hi = timeline.rows_within(days[rows[0]] - reach, days[rows[-1]] + reach)
    counter, words, titles = WordCounter(days[lo], days[hi - 1], config), _PackedWords(lo), _PackedWords(lo)
    periods = np.zeros(hi - lo, dtype=bool)
    for start in range(lo, hi, slice_size):
        articles = source.articles(timeline.ids[start : min(start + slice_size, hi)])
        words.extend(counter.add(articles))
        titles.extend(counter.lexicon.numbered([a.title for a in articles]))
        periods[start - lo : start - lo + len(articles)] = names_a_period([a.title for a in articles])
    titles.pack()
    marks = editions(titles.of(lo, hi), days[lo:hi], periods, counter.lexicon, config)
    return counter.lexicon, counter.table(), words.pack(), titles, marks
