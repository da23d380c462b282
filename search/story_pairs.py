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
PAIR_FEATURES = ("cosine", "days", "burst", "same_section", "other_section", "rarest")


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


def _numbered(texts: Sequence[str]) -> tuple[list[frozenset[int]], list[str]]:
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
    return out, list(vocab)


def _day(published: datetime | None) -> float:
    return published.timestamp() / DAY if published is not None else math.nan


# -- the corpus as arrays -----------------------------------------------------------------------
@dataclass
class StoryCorpus:
    """Articles sorted by date (undated last), with what the pair features need."""

    ids: list[str]
    days: np.ndarray  # float days since the epoch, nan when undated
    vectors: np.ndarray  # unit rows
    words: list[frozenset[int]]  # word numbers
    vocabulary: list[str]  # word number -> word
    topics: list[frozenset[str]]
    figures: list[frozenset[str]]  # decimal figures the text states
    dated: int  # the first ``dated`` rows have a date
    occ_row: np.ndarray  # every (row, word) of the dated rows, by row
    occ_word: np.ndarray

    @classmethod
    def build(cls, articles: Sequence[StoryArticle], vectors: np.ndarray) -> StoryCorpus:
        if len(articles) != len(vectors):
            raise ValueError(f"{len(articles)} articles but {len(vectors)} vectors")
        days = np.array([_day(a.published) for a in articles], dtype=np.float64)
        order = np.lexsort((np.array([a.id for a in articles]), np.nan_to_num(days, nan=np.inf)))
        arts = [articles[i] for i in order]
        texts = [f"{a.title}. {a.excerpt}" for a in arts]
        numbered, vocabulary = _numbered(texts)
        dated = int(np.count_nonzero(~np.isnan(days)))
        sizes = np.fromiter((len(numbered[r]) for r in range(dated)), dtype=np.int64, count=dated)
        flat = (w for r in range(dated) for w in numbered[r])
        return cls(
            ids=[a.id for a in arts],
            days=days[order],
            vectors=np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[order]),
            words=numbered,
            vocabulary=vocabulary,
            topics=[frozenset(a.topics) for a in arts],
            figures=[frozenset(_FIGURE.findall(t)) for t in texts],
            dated=dated,
            occ_row=np.repeat(np.arange(dated), sizes),
            occ_word=np.fromiter(flat, dtype=np.int64, count=int(sizes.sum())),
        )


# -- word weights: burst and rarity ------------------------------------------------------------
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
    measured around the article, so an update that passes the articles of ``context_days`` sees a rebuild's."""
    n = corpus.dated
    if n == 0 or len(rows) == 0:
        return WordWeights({}, [], [])
    day0 = corpus.days[0]
    span = float(corpus.days[n - 1] - day0) + 4 * max(config.background_days, config.rarity_days) + 1.0
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
    """Candidate pairs with cosine, days apart, burst of shared words, same section, other section, and the
    rarity of the rarest word they share."""
    left, right, sim = candidate_pairs(corpus, config, rows)
    weights = word_weights(corpus, config, np.unique(np.concatenate([left, right])))
    at, bursts, rarity = weights.at, weights.burst, weights.rarity
    feats = np.zeros((len(left), len(PAIR_FEATURES)), dtype=np.float64)
    feats[:, 0] = sim
    feats[:, 1] = np.abs(corpus.days[left] - corpus.days[right])
    burst, topics = feats[:, 2], corpus.topics
    for p, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        wi, wj = at.get(i, _NONE), at.get(j, _NONE)
        shared = wi.keys() & wj.keys()
        if shared:
            burst[p] = sum(bursts[wi[w]] + bursts[wj[w]] for w in shared) / 2
            feats[p, 5] = max(rarity[wi[w]] + rarity[wj[w]] for w in shared) / 2
        if topics[i] and topics[j]:
            feats[p, 3 if topics[i] & topics[j] else 4] = 1.0
    return Pairs(left, right, feats)


def link_probability(features: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The pair model: logistic of intercept + features . weights."""
    w = np.asarray(weights, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(w[0] + features @ w[1:])))
