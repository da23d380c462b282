"""What story detection compares: the articles as arrays, their words and the burst of each word,
the candidate pairs and their features (pure functions, numpy only). The rule that links pairs and
the grouping into stories are in ``search.stories``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from search.stories import StoryArticle, StoryConfig

DAY = 86400.0
PAIR_FEATURES = ("cosine", "days", "burst", "same_section", "other_section", "rarest", "title_burst")


# -- words --------------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_FIGURE = re.compile(r"\d+\.\d+")
_MONTH = (  # a month's name or its abbreviation, as a whole word ("Mariners 5-3" is a score, not a date)
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_PERIOD = re.compile(rf"\b{_MONTH}\s+\d{{1,2}}\s*[-–]\s*(?:{_MONTH}\s+)?\d{{1,2}}\b", re.IGNORECASE)
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
    those he she they we you i his her their our your my me him them us who whom whose which what when where why how
    not no nor so than too very can will just should would could may might must do does did has have had having over
    after before into about against between through during up down out off again further then once here there all any
    both each few more most other some such only own same now new says said say one two get got gets also like make
    makes made way really people year years day days time week weeks"""
    # month names: bursty in their month whatever happens (a weekly list's dates), never an event's words
    """ jan january feb february mar march apr april jun june jul july aug august sep sept september oct october
    nov november dec december""".split()
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


class Lexicon:
    """Numbers the content words of texts, one number per distinct word, shared by every corpus built on it."""

    def __init__(self) -> None:
        self.number: dict[str, int] = {}  # raw token -> word number, -1 for no content word
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []  # word number -> word

    def numbered(self, texts: Sequence[str]) -> list[frozenset[int]]:
        """The content words of each text as word numbers."""
        number, out = self.number, []
        for text in texts:
            found = set()
            for raw in _WORD.findall(text.lower()):
                n = number.get(raw)
                if n is None:
                    word = _normal(raw)
                    n = number[raw] = self._word(word) if word else -1
                found.add(n)
            found.discard(-1)
            out.append(frozenset(found))
        return out

    def _word(self, word: str) -> int:
        n = self.vocab.get(word)
        if n is None:
            n = self.vocab[word] = len(self.words)
            self.words.append(word)
        return n


def text_of(article: StoryArticle) -> str:
    """The text story detection reads of an article."""
    return f"{article.title}. {article.excerpt}"


def day_of(published: datetime | None) -> float:
    return published.timestamp() / DAY if published is not None else math.nan


# -- the corpus as arrays -----------------------------------------------------------------------
@dataclass
class StoryCorpus:
    """Articles sorted by date (undated last), with what the pair features need."""

    ids: list[str]
    days: np.ndarray  # float days since the epoch, nan when undated
    vectors: np.ndarray  # unit rows
    words: list[frozenset[int]]  # word numbers
    titles: list[frozenset[int]]  # word numbers of the titles alone
    lexicon: Lexicon  # word number -> word
    topics: list[frozenset[str]]
    figures: list[frozenset[str]]  # decimal figures the text states
    dated: int  # the first ``dated`` rows have a date
    occ_row: np.ndarray  # every (row, word) of the dated rows, by row
    occ_word: np.ndarray
    table: WordTable | None = None  # the counts words are weighed against; None: this corpus's own
    editions: np.ndarray | None = None  # which rows are editions of a series (``editions``); None: not yet known
    periods: np.ndarray | None = None  # whose titles name a span of dates, to mark editions by; None: marked

    @classmethod
    def build(
        cls,
        articles: Sequence[StoryArticle],
        vectors: np.ndarray,
        lexicon: Lexicon | None = None,
        table: WordTable | None = None,
        numbered: Sequence[frozenset[int]] | None = None,
        titles: Sequence[frozenset[int]] | None = None,
        editions: np.ndarray | None = None,
    ) -> StoryCorpus:
        """The corpus of ``articles`` (``vectors`` row for row). With a ``table`` (and the ``lexicon`` it was
        counted with), words are weighed against the table's articles rather than these; ``numbered`` and
        ``titles``, the word numbers of the articles' texts and titles in that lexicon when already known,
        save reading them again; ``editions``, which articles are editions of a series, when marked over a
        wider period."""
        if len(articles) != len(vectors):
            raise ValueError(f"{len(articles)} articles but {len(vectors)} vectors")
        days = np.array([day_of(a.published) for a in articles], dtype=np.float64)
        order = np.lexsort((np.array([a.id for a in articles]), np.nan_to_num(days, nan=np.inf)))
        arts = [articles[i] for i in order]
        texts = [text_of(a) for a in arts]
        lexicon = lexicon or Lexicon()
        numbered = [numbered[i] for i in order] if numbered is not None else lexicon.numbered(texts)
        titles = [titles[i] for i in order] if titles is not None else lexicon.numbered([a.title for a in arts])
        editions = np.asarray(editions, dtype=bool)[order] if editions is not None else None
        dated = int(np.count_nonzero(~np.isnan(days)))
        occ_row, occ_word = _occurrences(numbered[:dated])
        return cls(
            ids=[a.id for a in arts],
            days=days[order],
            vectors=np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[order]),
            words=numbered,
            titles=titles,
            lexicon=lexicon,
            topics=[frozenset(a.topics) for a in arts],
            figures=[frozenset(_FIGURE.findall(t)) for t in texts],
            dated=dated,
            occ_row=occ_row,
            occ_word=occ_word,
            table=table,
            editions=editions,
            periods=names_a_period([a.title for a in arts]) if editions is None else None,
        )

    @property
    def vocabulary(self) -> list[str]:
        return self.lexicon.words


# -- series ---------------------------------------------------------------------------------------
def series_key(title: frozenset[int], lexicon: Lexicon) -> frozenset[int]:
    """A title's words less its numbers (month names are no words): what the editions of a series have in
    common ("The 20 funniest tweets from women this week (Oct. 9-15)", "... (Oct. 30-Nov. 5)")."""
    words = lexicon.words
    return frozenset(w for w in title if not words[w].isdigit())


def names_a_period(titles: Sequence[str]) -> np.ndarray:
    """Whether each title names a span of dates ("... this week (Sept. 25-Oct. 1)"): a roundup of that
    period, an edition of a series even when the index holds no other edition of it."""
    search = _PERIOD.search
    return np.fromiter(
        (("-" in t or "–" in t) and search(t) is not None for t in titles), dtype=bool, count=len(titles)
    )


def editions(
    titles: Sequence[frozenset[int]], days: np.ndarray, periods: np.ndarray, lexicon: Lexicon, config: StoryConfig
) -> np.ndarray:
    """Whether each row is an edition of a series: an article whose title is the same but for its numbers
    (``series_key``: two words or more) appeared between ``series_days`` and ``series_reach_days`` away
    from it, or its title names a span of dates (``periods``, from ``names_a_period``). Undated rows never
    are, and no row is when ``series_reach_days`` does not exceed ``series_days`` (the marks are off)."""
    marked = np.zeros(len(titles), dtype=bool)
    if config.series_reach_days <= config.series_days:
        return marked
    marked |= np.asarray(periods, dtype=bool) & ~np.isnan(days)
    runs: dict[frozenset[int], list[int]] = {}
    for row, title in enumerate(titles):
        key = series_key(title, lexicon)
        if len(key) >= 2 and not math.isnan(days[row]):
            runs.setdefault(key, []).append(row)
    for rows in runs.values():
        if len(rows) < 2:
            continue
        at = np.sort(days[rows])
        mine = days[rows]
        farther = np.searchsorted(at, mine + config.series_days, side="left")  # the first at series_days or more
        beyond = np.searchsorted(at, mine + config.series_reach_days, side="right")
        before = np.searchsorted(at, mine - config.series_days, side="right")  # after the last at series_days
        within = np.searchsorted(at, mine - config.series_reach_days, side="left")
        marked[rows] |= (beyond > farther) | (before > within)
    return marked


def _occurrences(numbered: Sequence[frozenset[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row, word) of every word of every row, by row."""
    sizes = np.fromiter((len(w) for w in numbered), dtype=np.int64, count=len(numbered))
    flat = (w for row in numbered for w in row)
    return np.repeat(np.arange(len(numbered)), sizes), np.fromiter(flat, dtype=np.int64, count=int(sizes.sum()))


# -- word weights: burst and rarity ------------------------------------------------------------
@dataclass(frozen=True)
class WordTable:
    """Which words the articles of a period hold and when, compactly: a word's share of the articles within
    some days of a date is two binary searches. ``keys`` are word * span + (day - day0), sorted."""

    day0: float
    span: float  # wider than the period plus twice the widest window looked at: one word's keys never reach the next's
    keys: np.ndarray
    days: np.ndarray  # the articles' days, sorted

    @staticmethod
    def spacing(first: float, last: float, config: StoryConfig) -> float:
        return float(last - first) + 4 * max(config.background_days, config.rarity_days) + 1.0

    @classmethod
    def of(cls, corpus: StoryCorpus, config: StoryConfig) -> WordTable:
        """The table of the corpus's own dated articles."""
        n = corpus.dated
        day0 = float(corpus.days[0])
        span = cls.spacing(day0, corpus.days[n - 1], config)
        keys = np.sort(_keys(corpus.occ_word, corpus.days[corpus.occ_row], day0, span))
        return cls(day0, span, keys, corpus.days[:n])


def _keys(words: np.ndarray, days: np.ndarray, day0: float, span: float) -> np.ndarray:
    """The WordTable key of each (word, day): one word's keys are a run, in order of day."""
    return words * span + (days - day0)


class WordCounter:
    """Builds the WordTable of a period from its dated articles, added a slice at a time in any order,
    numbering their words with one Lexicon (corpora weighed against the table must share it)."""

    def __init__(self, first: float, last: float, config: StoryConfig, lexicon: Lexicon | None = None):
        self.lexicon = lexicon or Lexicon()
        self.day0 = float(first)
        self.span = WordTable.spacing(first, last, config)
        self._keys: list[np.ndarray] = []
        self._days: list[np.ndarray] = []

    def add(self, articles: Sequence[StoryArticle]) -> list[frozenset[int]]:
        """Count the articles' words; returns their word numbers."""
        days = np.array([day_of(a.published) for a in articles], dtype=np.float64)
        if np.isnan(days).any():
            raise ValueError("only dated articles are counted")
        numbered = self.lexicon.numbered([text_of(a) for a in articles])
        occ_row, occ_word = _occurrences(numbered)
        self._keys.append(_keys(occ_word, days[occ_row], self.day0, self.span))
        self._days.append(days)
        return numbered

    def table(self) -> WordTable:
        keys = np.sort(np.concatenate(self._keys)) if self._keys else np.zeros(0)
        days = np.sort(np.concatenate(self._days)) if self._days else np.zeros(0)
        return WordTable(self.day0, self.span, keys, days)


@dataclass(frozen=True)
class WordWeights:
    """The burst and the rarity of each word of some rows: ``at[row][word]`` indexes ``burst`` and ``rarity``."""

    at: dict[int, dict[int, int]]
    burst: list[float]
    rarity: list[float]


def burst_weights(corpus: StoryCorpus, config: StoryConfig, rows: np.ndarray) -> dict[int, dict[int, float]]:
    """For each dated row of ``rows``: word -> max(0, log(share of the articles within ``burst_days`` of it
    that hold the word / share of the articles within ``background_days`` that do))."""
    weights = word_weights(corpus, config, rows)
    return {r: {w: weights.burst[k] for w, k in at.items()} for r, at in weights.at.items()}


def word_weights(corpus: StoryCorpus, config: StoryConfig, rows: np.ndarray) -> WordWeights:
    """Burst (as in ``burst_weights``) and rarity of each word of each dated row of ``rows``. The rarity is
    log(articles within ``rarity_days`` / those of them holding the word): an inverse document frequency
    measured around the article. Both count the corpus's table: its own articles, or a wider period's."""
    n = corpus.dated
    if n == 0 or len(rows) == 0:
        return WordWeights({}, [], [])
    table = corpus.table or WordTable.of(corpus, config)
    keys, days = table.keys, table.days
    wanted = np.zeros(n, dtype=bool)
    wanted[rows[rows < n]] = True
    pick = wanted[corpus.occ_row]
    occ_row, occ_word = corpus.occ_row[pick], corpus.occ_word[pick]
    at = corpus.days[occ_row]
    base = _keys(occ_word, at, table.day0, table.span)

    def share(before: float, after: float) -> np.ndarray:
        holding = np.searchsorted(keys, base + after, side="right") - np.searchsorted(keys, base - before, side="left")
        total = np.searchsorted(days, at + after, side="right") - np.searchsorted(days, at - before, side="left")
        return holding / np.maximum(total, 1)

    background = share(config.background_days, config.background_days)
    burst = np.maximum(np.log(share(config.burst_days, config.burst_days) / background), 0.0)
    rarity = -np.log(share(config.rarity_days, config.rarity_days))
    present, starts = np.unique(occ_row, return_index=True)  # occ_row is sorted: each row's words are a run
    ends = np.append(starts[1:], len(occ_row))
    word_list = occ_word.tolist()
    index = {
        r: dict(zip(word_list[s:e], range(s, e), strict=True))
        for r, s, e in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True)
    }
    return WordWeights(index, burst.tolist(), rarity.tolist())


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


_NONE: dict[int, int] = {}  # the words of a row without any
_BLOCK = 64  # rows compared at once: small blocks keep each block's time window narrow


def candidate_pairs(corpus: StoryCorpus, config: StoryConfig, rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
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


def _candidate_pairs(corpus: StoryCorpus, config: StoryConfig, rows: np.ndarray | None) -> tuple[np.ndarray, ...]:
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


def pair_features(corpus: StoryCorpus, config: StoryConfig, rows: np.ndarray | None = None) -> Pairs:
    """Candidate pairs with cosine, days apart, burst of shared words, same section, other section, the
    rarity of the rarest word they share, and the burst of the words their titles share."""
    left, right, sim = candidate_pairs(corpus, config, rows)
    weights = word_weights(corpus, config, np.unique(np.concatenate([left, right])))
    at, bursts, rarity = weights.at, weights.burst, weights.rarity
    feats = np.zeros((len(left), len(PAIR_FEATURES)), dtype=np.float64)
    feats[:, 0] = sim
    feats[:, 1] = np.abs(corpus.days[left] - corpus.days[right])
    burst, title_burst, topics, titles = feats[:, 2], feats[:, 6], corpus.topics, corpus.titles
    for p, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        wi, wj = at.get(i, _NONE), at.get(j, _NONE)
        shared = wi.keys() & wj.keys()
        if shared:
            burst[p] = sum(bursts[wi[w]] + bursts[wj[w]] for w in shared) / 2
            feats[p, 5] = max(rarity[wi[w]] + rarity[wj[w]] for w in shared) / 2
            in_titles = titles[i] & titles[j]  # title words are text words: each has its burst in wi and wj
            title_burst[p] = sum(bursts[wi[w]] + bursts[wj[w]] for w in in_titles) / 2
        if topics[i] and topics[j]:
            feats[p, 3 if topics[i] & topics[j] else 4] = 1.0
    return Pairs(left, right, feats)


def link_probability(features: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The pair model: logistic of intercept + features . weights."""
    w = np.asarray(weights, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(w[0] + features @ w[1:])))
