"""Story detection (search.stories) on small hand-built corpora: which articles join, ids, updates."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from search.stories import (
    DEFAULT,
    StoryConfig,
    Timeline,
    assign_all,
    assign_stories,
    candidate_features,
    cluster,
    context_days,
    cosine_baseline,
    stories_from_pairs,
    update_all,
    update_stories,
    words,
)
from search.story_pairs import PAIR_FEATURES, StoryCorpus, names_a_period, pair_features

START = datetime(2020, 1, 1, 12, tzinfo=UTC)
DIM = 64


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    excerpt: str = ""
    published: datetime | None = None
    provider: str = "Outlet"
    topics: tuple[str, ...] = ()


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


class Space:
    """Random directions: ``shared(name, weight)`` mixes a named component into a fresh random vector,
    so two vectors with the same component of weight w have cosine close to w**2."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.named: dict[str, np.ndarray] = {}

    def noise(self) -> np.ndarray:
        return unit(self.rng.normal(size=DIM))

    def vector(self, name: str | None = None, weight: float = 0.0) -> np.ndarray:
        if name is None:
            return self.noise()
        base = self.named.setdefault(name, self.noise())
        return unit(weight * base + np.sqrt(1 - weight**2) * self.noise())


def corpus(rows: list[tuple[Item, np.ndarray]]) -> tuple[list[Item], np.ndarray]:
    return [r[0] for r in rows], np.stack([r[1] for r in rows])


def background(space: Space, days: int = 180, every: float = 1.0, recurring: str = "Colbert") -> list:
    """One unrelated article per ``every`` days; every fifth names ``recurring``."""
    rows = []
    for k in range(int(days / every)):
        name = f"{recurring} said " if k % 5 == 0 else ""
        item = Item(f"bg{k:04d}", f"{name}Filler{k} topic{k} words{k}", f"More{k} text{k}.", day(k * every))
        rows.append((item, space.vector()))
    return rows


def groups(stories: dict[str, str]) -> set[frozenset[str]]:
    out: dict[str, set[str]] = {}
    for article, story in stories.items():
        out.setdefault(story, set()).add(article)
    return {frozenset(g) for g in out.values()}


# -- words ------------------------------------------------------------------------------------
def test_words_drop_stopwords_possessives_and_plural_s():
    assert words("Hurricane Dorian's path: the storms hit The Bahamas, 2 of us") == {
        "hurricane",
        "dorian",
        "path",
        "storm",
        "hit",
        "bahama",
    }
    assert words("Boss’s class") == {"boss", "class"}
    assert words("") == frozenset()


# -- which articles join ----------------------------------------------------------------------
def test_copies_join_within_the_window_only():
    space = Space()
    v = space.vector("x", 1.0)
    items, vectors = corpus(
        [
            (Item("a", "Zoox settles with Tesla", published=day(0), provider="Reuters"), v),
            (Item("b", "Zoox settles with Tesla", published=day(1), provider="AP"), v),
            (Item("c", "Zoox settles with Tesla", published=day(12), provider="Verge"), v),
            (Item("d", "Something else entirely", published=day(1)), space.vector()),
        ]
    )
    stories = assign_stories(items, vectors).stories
    assert stories == {"a": "a", "b": "a", "c": "c", "d": "d"}
    assert cosine_baseline(items, vectors) == stories


def test_an_undated_article_is_a_story_of_its_own():
    space = Space()
    v = space.vector("x", 1.0)
    items, vectors = corpus([(Item("a", "Same", published=day(0)), v), (Item("b", "Same"), v)])
    assert assign_stories(items, vectors).stories == {"a": "a", "b": "b"}


def test_updates_sharing_bursty_words_join_but_a_recurring_name_does_not():
    space = Space(1)
    rows = background(space, every=0.25)  # four articles a day, about HuffPost's rate: words are rare against it
    event = [
        ("e1", "Hurricane Dorian nears the Bahamas", 100),
        ("e2", "Dorian death toll in Bahamas rises as Abaco floods", 102),
        ("e3", "Abaco residents rebuild after Hurricane Dorian", 104),
    ]
    rows += [(Item(i, t, "Storm news.", day(d)), space.vector("dorian", 0.7)) for i, t, d in event]
    host = [
        ("c1", "Colbert mocks the senator", "On his show.", 101),
        ("c2", "Colbert roasts a governor", "Tonight.", 103),
    ]
    rows += [(Item(i, t, x, day(d)), space.vector("colbert", 0.7)) for i, t, x, d in host]
    items, vectors = corpus(rows)
    stories = assign_stories(items, vectors).stories
    assert stories["e1"] == stories["e2"] == stories["e3"] == "e1"
    assert stories["c1"] == "c1" and stories["c2"] == "c2"
    assert {s for a, s in stories.items() if a.startswith("bg")} == {a for a in stories if a.startswith("bg")}


def test_a_chain_of_links_never_spans_more_than_max_span_days():
    space = Space()
    v = space.vector("x", 1.0)
    items, vectors = corpus([(Item(f"a{k:02d}", "Same words", published=day(5 * k)), v) for k in range(8)])
    stories = assign_stories(items, vectors).stories
    for members in groups(stories):
        dates = [items[int(a[1:])].published for a in members]
        assert max(dates) - min(dates) <= timedelta(days=DEFAULT.max_span_days)
    assert len(groups(stories)) > 1
    assert len(groups(assign_stories(items, vectors, replace(DEFAULT, max_span_days=100)).stories)) == 1


def test_a_chain_of_model_links_joins_a_story_only_where_enough_of_it_is_linked():
    timeline = Timeline.of({f"a{k}": day(k / 4) for k in range(5)})
    chain = (np.arange(4), np.arange(1, 5), np.array([0.6, 0.55, 0.5, 0.45]))  # a0-a1, a1-a2, a2-a3, a3-a4
    half = replace(DEFAULT, min_link_share=0.5)
    # a2 is linked to one of {a0, a1} (a half); a3 to one of {a0, a1, a2} (a third): it starts a group of its own
    assert cluster(timeline, chain, half) == [0, 0, 0, 3, 3]
    assert cluster(timeline, chain, replace(DEFAULT, min_link_share=0.0)) == [0] * 5
    copies = (chain[0], chain[1], np.full(4, DEFAULT.copy_cosine))  # copies join whatever the share
    assert cluster(timeline, copies, half) == [0] * 5
    closer = (np.array([0, 1, 2, 0]), np.array([1, 2, 3, 3]), np.array([0.6, 0.55, 0.5, 0.4]))  # a3 also tied to a0
    # at 0.6 a2 stays out of {a0, a1} (1 of 2), joins a3, and {a0, a1} x {a2, a3} has 2 links of 4
    assert cluster(timeline, closer, replace(half, min_link_share=0.6)) == [0, 0, 2, 2, 4]
    assert cluster(timeline, closer, replace(half, min_link_share=0.3)) == [0, 0, 0, 0, 4]  # a3: 2 of 3


def test_editions_of_a_weekly_series_are_never_one_story():
    space = Space(5)
    v = space.vector("list", 1.0)  # the same vector: copies by cosine
    rows = background(space, days=60)
    rows += [
        (Item("w1", "The 20 funniest tweets from women this week (Oct. 9-15)", "Laughs.", day(20)), v),
        (Item("w2", "The 20 funniest tweets from women this week (Oct. 16-22)", "Laughs.", day(27)), v),
        (Item("d1", "Storm death toll rises to 41", "Rescuers dig.", day(40)), v),
        (Item("d2", "Storm death toll rises to 56", "Rescuers dig.", day(41)), v),
    ]
    items, vectors = corpus(rows)
    stories = assign_stories(items, vectors).stories
    assert stories["w1"] != stories["w2"]  # a week apart, alike but for their numbers: two editions
    assert stories["d1"] == stories["d2"]  # a day apart: an update, not a series
    assert assign_stories(items, vectors, replace(DEFAULT, series_days=11.0)).stories["w2"] == stories["w1"]


def test_the_same_weeks_editions_of_two_series_are_two_stories_yet_each_joins_its_copies():
    space = Space(6)
    rows = background(space, days=60)
    jokes = "Jokes about Dunkin coffee, toddlers and Zoom."  # the week's bursty words, in both series' lists
    for start, week in ((20.0, "(June 4-10)"), (27.0, "(June 11-17)")):
        rows += [
            (Item(f"w{start:.0f}", f"The 20 funniest tweets from women this week {week}", jokes, day(start)),
             space.vector("lists", 0.8)),
            (Item(f"p{start:.0f}", f"The funniest tweets from parents this week {week}", jokes, day(start + 0.5)),
             space.vector("lists", 0.8)),
        ]  # fmt: skip
    copy = Item("w27-copy", "The 20 funniest tweets from women this week (June 11-17)", jokes, day(27.2), "Other")
    other = Item("p27-other", "The funniest tweets from parents this week (June 11-17)", jokes, day(27.3), "Other")
    rows += [(copy, rows[-2][1]), (other, rows[-2][1])]  # both read as w27 does
    items, vectors = corpus(rows)
    unmarked = assign_stories(items, vectors, replace(DEFAULT, series_reach_days=0.0)).stories
    assert unmarked["w27"] == unmarked["p27"]  # alike and bursty: the model alone links the two lists of one week
    assert unmarked["w20"] != unmarked["w27"]  # one series' editions, apart as before
    stories = assign_stories(items, vectors).stories
    assert stories["w27"] != stories["p27"] and stories["w20"] != stories["p20"]
    assert stories["w27-copy"] == stories["w27"]  # an edition still joins its copies
    assert stories["p27-other"] != stories["w27"]  # ... but not another series' edition, however alike


def test_titles_that_name_a_span_of_dates_are_roundups():
    roundups = [
        "The funniest tweets from parents this week (Sept. 17-23)",
        "36 Of The Funniest Tweets About Cats And Dogs This Week (Dec. 26-Jan. 1)",
        "What to watch on Netflix that's new this week (May 29 - June 4)",
        "All the movies coming to Netflix this week (March 27–April 2)",
    ]
    events = [
        "Storm death toll rises to 41",
        "Jury finds him guilty on Oct. 12 of 3 counts",
        "Biden's first 100 days: 5-4 court ruling looms",
        "Mayday call at 10-11 minutes past the hour",
        "Mariners beat Angels 5-3 as Junior 2-1 streak ends",
        "",
    ]
    assert names_a_period(roundups).tolist() == [True] * len(roundups)
    assert names_a_period(events).tolist() == [False] * len(events)


def test_the_newest_weeks_lists_of_two_series_are_two_stories_with_no_earlier_edition_indexed():
    space = Space(7)
    rows = background(space, days=60)
    jokes = "Jokes about Dunkin coffee, toddlers and Zoom."
    cats = Item("c50", "23 of the funniest tweets about cats and dogs this week (Sept. 17-23)", jokes, day(50))
    parents = Item("p50", "The funniest tweets from parents this week (Sept. 17-23)", jokes, day(50.2))
    copy = Item("p50-copy", "The funniest tweets from parents this week (Sept. 17-23)", jokes, day(50.4), "Other")
    rows += [(cats, space.vector("lists", 0.8)), (parents, space.vector("lists", 0.8))]
    rows += [(copy, rows[-1][1])]
    items, vectors = corpus(rows)
    unmarked = assign_stories(items, vectors, replace(DEFAULT, series_reach_days=0.0)).stories
    assert unmarked["c50"] == unmarked["p50"]  # the model alone joins them: alike, and bursty the same week
    stories = assign_stories(items, vectors).stories
    assert stories["c50"] != stories["p50"]  # each names its week: roundups, linked to their copies only
    assert stories["p50-copy"] == stories["p50"]


def test_candidates_grow_with_the_corpus_not_its_square():
    space = Space()
    rows = [(Item(f"a{k:04d}", f"Words{k}", published=day(k / 20)), space.vector("one", 0.9)) for k in range(600)]
    items, vectors = corpus(rows)
    config = replace(DEFAULT, neighbours=5)
    pairs, features = candidate_features(items, vectors, config)
    assert len(pairs) <= 600 * 5
    assert features.shape == (len(pairs), len(PAIR_FEATURES))
    assert all(f[1] <= config.window_days for f in features)


def test_input_order_does_not_matter():
    space = Space(2)
    rows = background(space, days=60)
    rows += [
        (Item(f"e{k}", "Hurricane Dorian Bahamas Abaco", published=day(30 + k)), space.vector("e", 0.8))
        for k in range(3)
    ]
    items, vectors = corpus(rows)
    first = assign_stories(items, vectors).stories
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    assert assign_stories([items[i] for i in order], vectors[order]).stories == first


def test_mismatched_vectors_are_an_error():
    with pytest.raises(ValueError, match="2 articles but 1 vectors"):
        assign_stories([Item("a", "x", published=day(0)), Item("b", "y", published=day(0))], np.ones((1, DIM)))


# -- ids and updates --------------------------------------------------------------------------
def two_events(space: Space) -> list:
    """Copies of event A on days 50-51 and of event B on days 120-121, over a background."""
    rows = background(space)
    a, b = space.vector("A", 1.0), space.vector("B", 1.0)
    rows += [(Item(f"a{k}", "Event A happens", published=day(50 + k / 2)), a) for k in range(3)]
    rows += [(Item(f"b{k}", "Event B happens", published=day(120 + k / 2)), b) for k in range(3)]
    return rows


def test_story_id_is_the_earliest_article_and_previous_ids_are_kept():
    space = Space(3)
    items, vectors = corpus(two_events(space))
    stories = assign_stories(items, vectors).stories
    assert {stories[f"a{k}"] for k in range(3)} == {"a0"}
    again = assign_stories(items, vectors, previous={a: f"old-{s}" for a, s in stories.items()}).stories
    assert again == {a: f"old-{s}" for a, s in stories.items()}


def test_update_equals_a_rebuild_and_touches_only_nearby_stories():
    space = Space(4)
    rows = two_events(space)
    earlier = rows[:-1]  # b2 arrives later
    items, vectors = corpus(earlier)
    before = assign_stories(items, vectors).stories
    all_items, all_vectors = corpus(rows)
    after = update_stories(before, all_items, all_vectors, changed=["b2"])
    rebuilt = assign_stories(all_items, all_vectors).stories
    assert groups(after.stories) == groups(rebuilt)
    assert after.stories["b2"] == before["b0"] == "b0"
    assert {a: s for a, s in after.stories.items() if a != "b2"} == before
    assert 0 < after.examined < len(earlier) / 2
    assert after.recomputed == after.examined + 1


def test_an_early_article_joining_keeps_the_story_id():
    space = Space(5)
    rows = two_events(space)
    late = [r for r in rows if r[0].id != "a0"]
    items, vectors = corpus(late)
    before = assign_stories(items, vectors).stories
    assert before["a1"] == "a1"
    all_items, all_vectors = corpus(rows)
    after = update_stories(before, all_items, all_vectors, changed=["a0"]).stories
    assert after["a0"] == after["a1"] == after["a2"] == "a1"  # the story kept its id
    assert assign_stories(all_items, all_vectors).stories["a1"] == "a0"  # a rebuild names it anew


def test_removing_articles_and_splitting_keep_the_majority_id():
    space = Space(6)
    rows = two_events(space)
    items, vectors = corpus(rows)
    before = assign_stories(items, vectors).stories
    kept = [r for r in rows if r[0].id != "b0"]
    k_items, k_vectors = corpus(kept)
    after = update_stories(before, k_items, k_vectors, changed=[], removed=["b0"]).stories
    assert "b0" not in after
    assert after["b1"] == after["b2"] == "b0"  # the id outlives its first article
    # b2's text changes to something unrelated: it leaves, the two others keep the id
    moved = [(replace(r[0], title="Nothing alike"), space.vector()) if r[0].id == "b2" else r for r in rows]
    m_items, m_vectors = corpus(moved)
    split = update_stories(before, m_items, m_vectors, changed=["b2"]).stories
    assert split["b0"] == split["b1"] == "b0"
    assert split["b2"] == "b2"


def test_update_needs_the_changed_articles():
    with pytest.raises(ValueError, match="'zz' is not among the articles"):
        update_stories({}, [], np.zeros((0, DIM)), changed=["zz"])


def test_config_reports_its_rule():
    data = StoryConfig().to_dict()
    assert data["copy_cosine"] == 0.75
    assert list(data["weights"]) == ["intercept", *PAIR_FEATURES]
    assert {"cosine", "days", "burst", "rarest", "title_burst"} <= set(PAIR_FEATURES)
    assert context_days() > DEFAULT.reach_days > DEFAULT.max_span_days


def test_title_burst_counts_only_the_bursty_words_both_titles_hold():
    space = Space(3)
    rows = background(space, every=0.25)
    v = space.vector("quake", 0.9)
    rows += [
        (Item("t1", "Quake hits Almaty", "Rescuers search the rubble.", day(100)), v),
        (Item("t2", "Almaty quake toll rises", "Rescuers search the rubble.", day(101)), v),
        (Item("t3", "City counts the damage", "Rescuers search the rubble after the Almaty quake.", day(102)), v),
    ]
    items, vectors = corpus(rows)
    built = StoryCorpus.build(items, vectors)
    pairs = pair_features(built, DEFAULT)
    column = PAIR_FEATURES.index("title_burst")
    feature = {}
    for i, j, row in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.features, strict=True):
        feature[frozenset((built.ids[i], built.ids[j]))] = row
    both_titles, one_title = feature[frozenset(("t1", "t2"))], feature[frozenset(("t1", "t3"))]
    assert both_titles[column] > 0 and one_title[column] == 0.0  # "almaty" and "quake": t3 has them in its excerpt
    assert one_title[PAIR_FEATURES.index("burst")] > 0  # ... so its words' burst counts them
    assert both_titles[column] <= both_titles[PAIR_FEATURES.index("burst")]


def test_stories_from_featured_pairs_equal_a_full_assignment():
    space = Space(7)
    items, vectors = corpus(two_events(space))
    built = StoryCorpus.build(items, vectors)
    pairs = pair_features(built, DEFAULT)
    assert stories_from_pairs(built, pairs, DEFAULT) == assign_stories(items, vectors).stories
    strict = replace(DEFAULT, link_probability=0.999, copy_cosine=1.01)
    assert stories_from_pairs(built, pairs, strict) == assign_stories(items, vectors, strict).stories


# -- slices: bounded memory -------------------------------------------------------------------
class Counting:
    """A StorySource over in-memory articles that remembers the largest request."""

    def __init__(self, items: list[Item], vectors: np.ndarray):
        self.row = {a.id: r for r, a in enumerate(items)}
        self.items, self.vecs = items, vectors
        self.largest = 0

    def articles(self, ids):
        self.largest = max(self.largest, len(ids))
        return [self.items[self.row[i]] for i in ids]

    def vectors(self, ids):
        return self.vecs[[self.row[i] for i in ids]]


def eventful(space: Space, days: int = 240) -> list:
    """Four articles a day of background, an event of three updates every ten days, and the weekly editions
    of two series every 12 days, the same period's two alike (the model alone would link them), and so are
    two roundups a month that name their week."""
    rows = background(space, days=days, every=0.25)
    for e in range(days // 10):
        rows += [
            (
                Item(f"e{e}-{k}", f"Storm{e} hits Town{e}", f"Update {k} on storm{e}", day(10 * e + k)),
                space.vector(e, 0.9),
            )
            for k in range(3)
        ]
    for w in range(days // 12):
        for k, who in enumerate(("women", "parents")):
            title = f"The funniest tweets from {who} (Day {12 * w}-{12 * w + 11})"
            rows.append((Item(f"{who}{w}", title, "Laughs.", day(12 * w + 3 + k / 2)), space.vector(f"week{w}", 0.8)))
    for m in range(days // 30):  # and two roundups that name their week, a month from any other edition
        for k, who in enumerate(("cats", "quotes")):
            title = f"The best {who} this week (Sept. {m + 1}-{m + 7})"
            text = f"Jokes about Dunkin{m} and Zoom{m}."  # the week's bursty words
            rows.append((Item(f"{who}{m}", title, text, day(30 * m + 20 + k / 2)), space.vector(f"round{m}", 0.8)))
    rows.append((Item("undated", "No date at all"), space.vector()))
    return rows


def test_small_slices_find_the_stories_of_one_pass_and_read_little_at_a_time():
    items, vectors = corpus(eventful(Space(8)))
    whole = assign_stories(items, vectors).stories
    assert len(groups(whole)) < len(items) - 40  # the events were found
    source = Counting(items, vectors)
    timeline = Timeline.of({a.id: a.published for a in items})
    sliced = assign_all(timeline, source, slice_size=40)
    assert sliced.stories == whole
    assert not any(whole[f"women{w}"] == whole[f"parents{w}"] for w in range(240 // 12))  # editions, marked alike
    assert not any(whole[f"cats{m}"] == whole[f"quotes{m}"] for m in range(240 // 30))
    assert source.largest <= 40 + 2 * 4 * DEFAULT.window_days + 8  # a slice and its window of articles on either side


def test_small_slices_update_as_one_pass_does():
    rows = eventful(Space(9))
    items, vectors = corpus(rows)
    late = {a.id for a in items[-200:]}
    early = [r for r in rows if r[0].id not in late]
    before = assign_stories(*corpus(early)).stories
    expected = update_stories(before, items, vectors, changed=sorted(late))
    source = Counting(items, vectors)
    timeline = Timeline.of({a.id: a.published for a in items})
    sliced = update_all(timeline, source, before, sorted(late), slice_size=40)
    assert sliced.stories == expected.stories
    assert (sliced.examined, sliced.recomputed) == (expected.examined, expected.recomputed)


def test_a_source_that_disagrees_with_the_timeline_is_an_error():
    items, vectors = corpus(eventful(Space(10), days=30))
    timeline = Timeline.of({a.id: a.published for a in items})
    shifted = [replace(a, published=day(400)) if a.id == "e1-0" else a for a in items]
    with pytest.raises(ValueError, match="not the timeline's"):
        assign_all(timeline, Counting(shifted, vectors))
