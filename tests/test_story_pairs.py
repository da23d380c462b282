"""What story detection compares (search.story_pairs): word bursts and candidate pairs, hand-computed."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from search import story_pairs
from search.stories import DEFAULT
from search.story_pairs import PAIR_FEATURES, StoryCorpus, burst_weights, candidate_pairs, pair_features, word_weights


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    excerpt: str = ""
    published: datetime | None = None
    provider: str = ""
    topics: tuple[str, ...] = ()


def daily(titles: list[str], topics: list[tuple[str, ...]] | None = None) -> StoryCorpus:
    """One article a day from 2020-01-01, random unit vectors."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    items = [
        Item(f"a{k:03d}", t, published=start + timedelta(days=k), topics=(topics or [()] * len(titles))[k])
        for k, t in enumerate(titles)
    ]
    vectors = np.random.default_rng(0).normal(size=(len(items), 16))
    return StoryCorpus.build(items, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_a_word_of_two_days_is_bursty_and_a_daily_word_is_not():
    titles = [f"daily filler{k}" + (" dorian" if k in (50, 51) else "") for k in range(100)]
    corpus = daily(titles)
    by_word = {corpus.vocabulary[n]: w for n, w in burst_weights(corpus, DEFAULT, np.array([50]))[50].items()}
    assert set(by_word) == {"daily", "filler50", "dorian"}
    # near: days 43-57 (15 articles, 2 with the word); background: days 0-99 (100 articles, 2 with it)
    assert by_word["dorian"] == pytest.approx(math.log((2 / 15) / (2 / 100)))
    assert by_word["filler50"] == pytest.approx(math.log((1 / 15) / (1 / 100)))
    assert by_word["daily"] == 0.0  # in every article: the same share near and far
    late = {corpus.vocabulary[n]: w for n, w in burst_weights(corpus, DEFAULT, np.array([99]))[99].items()}
    assert late["filler99"] == pytest.approx(math.log((1 / 8) / (1 / 91)))  # the corpus ends: days 92-99, 9-99


def test_rarity_is_the_inverse_document_frequency_around_the_article():
    titles = [f"daily filler{k}" + (" dorian" if k in (10, 80) else "") for k in range(100)]
    corpus = daily(titles)
    near = word_weights(corpus, replace(DEFAULT, rarity_days=20), np.array([10]))
    by_word = {corpus.vocabulary[w]: near.rarity[k] for w, k in near.at[10].items()}
    assert by_word["daily"] == 0.0  # in every article
    assert by_word["dorian"] == pytest.approx(math.log(31 / 1))  # days 0-30: 31 articles, one with the word
    wide = word_weights(corpus, DEFAULT, np.array([10]))  # two years: the whole corpus
    assert {corpus.vocabulary[w]: wide.rarity[k] for w, k in wide.at[10].items()}["dorian"] == pytest.approx(
        math.log(100 / 2)
    )


def test_the_rarest_shared_word_is_a_feature_and_wordless_articles_are_paired_too():
    corpus = daily(["Dorian storm daily", "Dorian storm daily", "the of and"] + [f"daily x{k}" for k in range(20)])
    pairs = pair_features(corpus, replace(DEFAULT, min_cosine=-1.0))
    rows = {(i, j): f for i, j, f in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.features, strict=True)}
    rarest = PAIR_FEATURES.index("rarest")
    assert rows[(0, 1)][rarest] == pytest.approx(math.log(23 / 2))  # "dorian" and "storm": 2 of 23 articles
    assert rows[(0, 3)][rarest] == pytest.approx(math.log(23 / 22))  # only "daily": in 22 of the 23
    assert rows[(0, 2)][rarest] == 0.0 and rows[(0, 2)][2] == 0.0  # nothing shared with the stopwords-only title


def test_candidates_stay_within_the_window_and_the_block_size_does_not_matter(monkeypatch):
    corpus = daily([f"t{k}" for k in range(300)])
    left, right, sim = candidate_pairs(corpus, DEFAULT)
    assert (left < right).all() and len(set(zip(left.tolist(), right.tolist(), strict=True))) == len(left)
    assert (np.abs(corpus.days[left] - corpus.days[right]) <= DEFAULT.window_days).all()
    assert (sim >= DEFAULT.min_cosine).all()
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", corpus.vectors[left], corpus.vectors[right]), rtol=1e-5)
    monkeypatch.setattr(story_pairs, "_BLOCK", 7)
    again = candidate_pairs(corpus, DEFAULT)
    assert np.array_equal(again[0], left) and np.array_equal(again[1], right)


def test_pair_features_sections_and_days():
    corpus = daily(["storm a", "storm b", "storm c"], topics=[("WORLD",), ("WORLD",), ("SPORTS",)])
    pairs = pair_features(corpus, replace(DEFAULT, min_cosine=-1.0))
    rows = {(i, j): f for i, j, f in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.features, strict=True)}
    assert rows[(0, 1)][1] == 1.0 and rows[(0, 2)][1] == 2.0
    assert (rows[(0, 1)][3], rows[(0, 1)][4]) == (1.0, 0.0)  # same section
    assert (rows[(1, 2)][3], rows[(1, 2)][4]) == (0.0, 1.0)  # different sections


def test_decimal_figures_are_kept_for_the_copy_rule():
    corpus = daily(["Market grows 41.4% to $51.3 billion", "No figures, 2021"])
    assert corpus.figures == [frozenset({"41.4", "51.3"}), frozenset()]
