"""Story evaluation (search.story_eval and `search-cli eval` on a story gold file), with the hash embedder."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CORPUS, SHARED, shared_or_skip
from search.cli import main
from search.embedding import HashEmbedder
from search.errors import ConfigError
from search.stories import DEFAULT, PAIR_FEATURES, assign_stories, cosine_baseline
from search.story_eval import (
    L2,
    FeaturedSets,
    agreement,
    article_vectors,
    cross_validate,
    eval_sets,
    fit_logistic,
    format_cross_validation,
    format_stories,
    forward_in_time,
    gold_grouping,
    gold_pairs,
    gold_scope,
    is_story_gold,
    load_articles,
    load_gold,
    load_golds,
    pair_examples,
    pooled,
    relabelled,
    run_stories,
    score,
    scored_set,
    with_second,
)

STORY_URLS = ["https://a.example/zoox-tesla", "https://b.example/zoox-tesla", "https://c.example/zoox"]


def write_corpus(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for url, title, published, provider in rows:
        lines.append(json.dumps({"webUrl": url, "title": title, "publishedDateTime": published, "provider": provider}))
    (folder / "articles.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def tiny(tmp_path):
    """Three copies of one settlement, a copy published a month later, and an unrelated article."""
    write_corpus(
        tmp_path / "corpus",
        [
            (STORY_URLS[0], "Zoox settles trade secrets lawsuit with Tesla", "2020-04-15", "Reuters"),
            (STORY_URLS[1], "Zoox settles trade secrets lawsuit with Tesla", "2020-04-16", "AP"),
            (STORY_URLS[2], "Zoox settles trade secrets lawsuit with Tesla", "2020-05-20", "Verge"),
            ("https://d.example/robots", "Warehouse robots learn to walk", "2020-04-15", "Wired"),
        ],
    )
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps({"corpus": "corpus", "articles": 4, "stories": [STORY_URLS]}))
    return gold


def test_gold_files_are_recognised_and_loaded(tiny, tmp_path):
    assert is_story_gold(tiny) and is_story_gold(tiny.parent)
    assert not is_story_gold(tmp_path / "corpus")
    gold = load_gold(tiny)
    assert gold.name == "gold" and gold.corpus == tmp_path / "corpus" and gold.articles == 4
    assert gold.stories == (tuple(STORY_URLS),)
    assert [g.name for g in load_golds(tmp_path)] == ["gold"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"corpus": "corpus", "stories": [["https://x.org/a"]]}, "lists of two or more URLs"),
        ({"corpus": "corpus", "stories": [["https://x.org/a", "https://x.org/b"], ["https://x.org/b", "x"]]}, "two"),
        ({"stories": []}, "no 'corpus'"),
        ({"corpus": "nowhere", "stories": []}, "does not exist"),
        ({"corpus": "corpus", "stories": [], "published": {"from": "May"}}, "'published' must be"),
    ],
)
def test_bad_gold_files_say_what_is_wrong(tiny, data, message):
    tiny.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_gold(tiny)


def test_gold_urls_missing_from_the_corpus_are_an_error(tiny):
    data = json.loads(tiny.read_text())
    data["stories"][0].append("https://nowhere.example/x")
    tiny.write_text(json.dumps(data))
    gold = load_gold(tiny)
    with pytest.raises(ConfigError, match="1 story URL"):
        gold_grouping(gold, load_articles(gold.corpus))


def test_news_category_lines_are_read_with_their_field_names(tmp_path):
    row = {
        "link": "https://www.huffpost.com/entry/a_n_1",
        "headline": "Hurricane Dorian Batters The Bahamas",
        "short_description": "The storm made landfall.",
        "date": "2019-09-02",
        "category": "WORLD NEWS",
        "authors": "",
    }
    path = tmp_path / "news.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(dict(row, link=row["link"] + "2", date="2019-10-01")) + "\n")
    articles = load_articles(path)
    assert [a.title for a in articles] == [row["headline"]] * 2
    first = articles[0]
    assert first.excerpt == row["short_description"] and first.topics == ("WORLD NEWS",)
    assert first.provider == "huffpost.com" and first.published.date() == date(2019, 9, 2)  # the URL's site
    assert len(load_articles(path, (date(2019, 9, 1), date(2019, 9, 30)))) == 1


def test_run_stories_scores_and_lists_the_wrong_clusters(tiny, tmp_path):
    result = run_stories(tiny, HashEmbedder(), cache_dir=tmp_path / "cache")
    (gold,) = result["golds"]
    assert gold["scored_articles"] == 4 and gold["context_articles"] == 4
    stories = gold["methods"]["stories"]
    # predicted {a, b}; gold {a, b, c}: one pair of three found, none wrong
    assert stories["pairwise"] == {"precision": 1.0, "recall": pytest.approx(0.3333, abs=1e-4), "f1": 0.5}
    assert stories["bcubed"]["precision"] == 1.0
    assert gold["methods"]["cosine_baseline"]["pairwise"]["f1"] == 0.5
    (error,) = gold["errors"]
    assert error["kind"] == "split"
    assert [[a["date"] for a in part] for part in error["parts"]] == [["2020-04-15", "2020-04-16"], ["2020-05-20"]]
    assert (tmp_path / "cache" / "cache" / "embeddings.sqlite").is_file()
    text = format_stories(result)
    assert "pair F1" in text and "gold story split into 2 parts" in text and "2020-05-20 Zoox settles" in text


def test_vectors_come_from_the_cache_the_second_time(tiny, tmp_path):
    articles = load_articles(tmp_path / "corpus")

    class Counting(HashEmbedder):
        calls = 0

        def embed(self, texts, batch_size=64):
            assert batch_size == 1 and len(texts) <= 2
            Counting.calls += len(texts)
            return super().embed(texts, batch_size)

    first = article_vectors(articles, Counting(), tmp_path / "c")
    assert Counting.calls == 2  # two distinct texts: the three copies share one
    again = article_vectors(articles, Counting(), tmp_path / "c")
    assert Counting.calls == 2
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, HashEmbedder().embed([a.text for a in articles]), atol=1e-6)


def test_pair_examples_and_the_logistic_fit(tiny, tmp_path):
    articles = load_articles(tmp_path / "corpus")
    vectors = article_vectors(articles, HashEmbedder())
    gold = gold_grouping(load_gold(tiny), articles)
    features, labels = pair_examples(articles, vectors, gold, DEFAULT)
    assert features.shape[1] == len(PAIR_FEATURES) and set(labels) <= {0.0, 1.0} and labels.sum() >= 1
    # one feature, labels 1 above 0.5: the fitted boundary sits near 0.5 and the weight is positive
    x = np.linspace(0, 1, 201)[:, None]
    y = (x[:, 0] > 0.5) ^ (np.arange(201) % 10 == 0)  # a little noise
    intercept, weight = fit_logistic(x, y, l2=0.01)
    assert weight > 0 and abs(-intercept / weight - 0.5) < 0.05
    p = 1 / (1 + np.exp(-(intercept + weight * x[:, 0])))
    gradient = np.array([np.sum(p - y), np.sum((p - y) * x[:, 0]) + 0.01 * weight])
    assert np.abs(gradient).max() < 1e-6


# -- the command line -------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.setenv("SEARCH_QUERY_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(main, [str(a) for a in args])


def test_cli_eval_on_a_story_gold_file(cli, tiny, tmp_path):
    result = cli("eval", tiny)
    assert result.exit_code == 0, result.output
    assert "stories on gold: 4 articles scored" in result.output and "cosine_baseline" in result.output
    data = json.loads(cli("eval", tiny.parent, "--json", "--keep-index", tmp_path / "keep").output)
    assert data["kind"] == "stories" and data["golds"][0]["methods"]["stories"]["pairwise"]["f1"] == 0.5


def test_cli_eval_corpus_override_and_errors(cli, tiny, tmp_path):
    other = write_corpus(tmp_path / "other", [(u, "Same title", "2020-04-15", "X") for u in STORY_URLS])
    result = cli("eval", tiny, "--corpus", other, "--json")
    assert json.loads(result.output)["golds"][0]["methods"]["stories"]["pairwise"]["f1"] == 1.0
    not_gold = tmp_path / "x.json"
    not_gold.write_text("{}")
    bad = cli("eval", not_gold)
    assert (
        bad.exit_code == 1 and "neither a folder nor a story gold file" in bad.output and "Traceback" not in bad.output
    )
    missing = cli("eval", tiny, "--corpus", tmp_path / "corpus" / "articles.jsonl")
    assert missing.exit_code == 0  # a file works as a corpus too


# -- the shared gold --------------------------------------------------------------------------
def test_the_shared_gold_matches_the_corpus_without_embedding():
    gold = load_gold(shared_or_skip(SHARED / "eval" / "stories" / "smartable-ai.json"))
    assert gold.corpus.resolve() == shared_or_skip(CORPUS).resolve()
    articles = load_articles(gold.corpus)
    truth = gold_grouping(gold, articles)
    assert len(truth) == gold.articles == 367
    assert len({s for s in truth.values()}) == 150 + 54


def test_the_huffpost_months_match_their_corpus():
    from conftest import ROOT

    folder = ROOT / "eval" / "stories-huffpost"
    golds = load_golds(folder)
    assert [g.name for g in golds] == sorted(p.stem for p in folder.glob("huffpost-*.json"))
    assert len(golds) == 19 and sum(g.published[1].year < 2022 for g in golds) == 16  # the issue asks for two
    tests = {g.name for g in load_golds(ROOT / "eval" / "stories-huffpost-2022")}
    assert not tests & {g.name for g in golds}  # the 2022 dev months are the months the test months leave
    shared_or_skip(golds[0].corpus)
    articles = load_articles(golds[0].corpus)
    for gold in golds:
        scope = [a for a in articles if gold.published[0] <= a.published.date() <= gold.published[1]]
        assert len(gold_grouping(gold, scope)) == gold.articles


# -- cross-validation across gold sets ----------------------------------------------------------
@pytest.fixture
def three_months(tmp_path):
    """One outlet, three months: in each a three-part storm story (shared words, days apart) among fillers."""
    rows = []
    for month in (7, 8, 9):
        for n in range(20):
            storm = n in (3, 5, 7)
            title = f"Hurricane Storm{month} floods the coast, day {n}" if storm else f"Filler{month}x{n} item{n}"
            rows.append((f"https://outlet.example/{month}/{n}", title, f"2019-{month:02d}-{n + 1:02d}", "Outlet"))
    write_corpus(tmp_path / "corpus", rows)
    folder = tmp_path / "months"
    folder.mkdir()
    for month in (7, 8, 9):
        (folder / f"m{month}.json").write_text(
            json.dumps(
                {
                    "corpus": "../corpus",
                    "published": {"from": f"2019-{month:02d}-01", "to": f"2019-{month:02d}-30"},
                    "stories": [[f"https://outlet.example/{month}/{n}" for n in (3, 5, 7)]],
                }
            )
        )
    return eval_sets(load_golds(folder), HashEmbedder())


def test_eval_sets_share_one_corpus_and_score_their_month(three_months):
    assert [s.name for s in three_months] == ["m7", "m8", "m9"]
    assert len({id(s.articles) for s in three_months}) == 1 and len(three_months[0].articles) == 60
    assert [len(s.gold) for s in three_months] == [20, 20, 20]
    assert [gold_pairs(s.gold) for s in three_months] == [3, 3, 3]


def test_a_month_labelled_in_a_longer_corpus_is_scored_on_its_months_when_no_range_is_given(three_months, tmp_path):
    august = [[f"https://outlet.example/8/{n}" for n in (3, 5, 7)]]
    articles = three_months[0].articles

    def scope(**fields):
        path = tmp_path / "months" / "august.json"
        path.write_text(json.dumps({"corpus": "../corpus", "stories": august, **fields}))
        return gold_scope(load_gold(path), articles)

    gold, scoped, note = scope(articles=20)
    assert len(scoped) == 20 and {a.published.month for a in scoped} == {8}
    assert gold.published == (date(2019, 8, 1), date(2019, 8, 31)) and "2019-08-01..2019-08-31" in note
    assert len(gold_grouping(gold, scoped)) == 20
    gold, scoped, note = scope()  # no count: the month holds less than half the corpus
    assert len(scoped) == 20 and "the gold gives no article count" in note
    for fields in ({"articles": 60}, {"articles": 45}):  # the whole corpus is nearer the count
        gold, scoped, note = scope(**fields)
        assert len(scoped) == 60 and gold.published is None and note is None
    august[0].append("https://outlet.example/9/2")  # two months of three: more than half, and no count
    gold, scoped, note = scope()
    assert len(scoped) == 60 and note is None
    gold, scoped, note = scope(articles=60, published={"from": "2019-08-10", "to": "2019-09-30"})
    assert len(scoped) == 31 and note is None  # a range given is the range used


def test_cli_eval_says_which_months_it_scored(cli, three_months, tmp_path):
    gold = tmp_path / "months" / "august.json"
    gold.write_text(
        json.dumps(
            {"corpus": "../corpus", "articles": 20, "stories": [[f"https://outlet.example/8/{n}" for n in (3, 5, 7)]]}
        )
    )
    result = cli("eval", gold)
    assert result.exit_code == 0, result.output
    assert "20 articles scored (60 in the corpus)" in result.output
    assert "scope: no 'published' range: scored on 2019-08-01..2019-08-31" in result.output
    assert "warning" not in result.output


def test_featured_examples_and_predictions_match_the_plain_path(three_months):
    featured = FeaturedSets(three_months)
    s = three_months[1]
    features, labels = featured.examples(s)
    plain_features, plain_labels = pair_examples(s.articles, s.vectors, s.gold, DEFAULT)
    np.testing.assert_array_equal(labels, plain_labels)
    np.testing.assert_allclose(features, plain_features)
    predicted = featured.predict(DEFAULT.weights, DEFAULT.link_probability)[s.corpus]
    assert predicted == assign_stories(s.articles, s.vectors).stories


def test_leave_one_out_fits_on_the_other_sets_only(three_months):
    featured = FeaturedSets(three_months)
    result = cross_validate(three_months, featured=featured, thresholds=(0.2, 0.5, 0.8))
    assert list(result["held_out"]) == ["m7", "m8", "m9"]
    for s in three_months:
        others = [o for o in three_months if o is not s]
        examples = [pair_examples(o.articles, o.vectors, o.gold, DEFAULT) for o in others]
        expected = fit_logistic(np.vstack([e[0] for e in examples]), np.concatenate([e[1] for e in examples]), L2)
        held = result["held_out"][s.name]
        np.testing.assert_allclose(held["weights"], expected, atol=1e-4)
        # the threshold is the training sets' best; the held-out score is that threshold's
        f1 = {float(t): v for t, v in held["training_f1"].items()}
        assert f1[held["threshold"]] == max(f1.values())
        predicted = featured.predict(expected, held["threshold"])[s.corpus]
        assert held["stories"] == score(predicted, s.gold)
        assert held["cosine_baseline"] == score(cosine_baseline(s.articles, s.vectors), s.gold)
    # the storm stories share bursty words: held out, each month still finds its story
    assert result["pooled"]["stories"]["pairwise"]["f1"] == 1.0
    assert set(result["fixed_threshold"]) == {"0.2", "0.5", "0.8"}
    text = format_cross_validation(result)
    assert "m8" in text and text.splitlines()[-1].startswith("pooled")


def test_forward_in_time_fits_only_on_the_sets_before(three_months):
    featured = FeaturedSets(three_months)
    result = forward_in_time(three_months, featured=featured, first=1)
    assert list(result["held_out"]) == ["m8", "m9"]
    predictions = []
    for k, s in enumerate(three_months[1:], start=1):
        examples = [pair_examples(o.articles, o.vectors, o.gold, DEFAULT) for o in three_months[:k]]
        expected = fit_logistic(np.vstack([e[0] for e in examples]), np.concatenate([e[1] for e in examples]), L2)
        held = result["held_out"][s.name]
        assert held["fitted_on"] == k
        predictions.append(featured.predict(expected, held["threshold"])[s.corpus])
        assert held["stories"] == score(predictions[-1], s.gold)
    assert result["pooled"] == pooled(three_months[1:], predictions)
    with pytest.raises(ConfigError, match="more than 3 sets"):
        forward_in_time(three_months, first=3)


def test_pooled_scores_keep_each_sets_stories_apart(three_months):
    a, b = three_months[:2]
    everything_one = {x: "one" for x in list(a.gold) + list(b.gold)}
    merged = pooled([a, b], [everything_one, everything_one])
    pairs = gold_pairs(a.gold) + gold_pairs(b.gold)
    assert merged["pairwise"]["recall"] == 1.0
    assert merged["pairwise"]["precision"] == pytest.approx(pairs / (2 * 20 * 19 / 2), abs=1e-4)


def test_cross_validation_needs_two_sets(three_months):
    with pytest.raises(ConfigError, match="two gold sets"):
        cross_validate(three_months[:1])


def test_featured_pairs_regrouped_under_other_grouping_settings(three_months):
    featured = FeaturedSets(three_months)
    s = three_months[0]
    for config in (replace(DEFAULT, min_link_share=1.0), replace(DEFAULT, max_span_days=1.0)):
        regrouped = featured.grouped_by(config)
        assert regrouped.corpora is featured.corpora and featured.config == DEFAULT
        predicted = regrouped.predict(DEFAULT.weights, DEFAULT.link_probability)[s.corpus]
        assert predicted == assign_stories(s.articles, s.vectors, config).stories
    with pytest.raises(ConfigError, match="grouping settings"):
        featured.grouped_by(replace(DEFAULT, window_days=3.0))


# -- a second labelling of the same sets --------------------------------------------------------
def write_second(folder, stories_by_month, corpus="../../corpus"):
    """A second labelling of the three months: ``stories_by_month`` maps a month to its stories (article numbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    for month, stories in stories_by_month.items():
        (folder / f"m{month}.json").write_text(
            json.dumps(
                {
                    "corpus": corpus,
                    "published": {"from": f"2019-{month:02d}-01", "to": f"2019-{month:02d}-30"},
                    "stories": [[f"https://outlet.example/{month}/{n}" for n in story] for story in stories],
                }
            )
        )
    return load_golds(folder)


def test_a_second_labelling_is_scored_as_if_it_predicted_the_first(three_months, tmp_path):
    # the first labelling: the storm days 3, 5 and 7 of each month are one story (3 pairs)
    second = relabelled(
        three_months,
        write_second(tmp_path / "months" / "second", {7: [[3, 5]], 8: [[3, 5, 7]], 9: [[3, 5, 7, 9]]}),
    )
    assert [s.name for s in second] == ["m7", "m8", "m9"]
    assert all(
        b.articles is a.articles and b.gold.keys() == a.gold.keys() for a, b in zip(three_months, second, strict=True)
    )
    assert [gold_pairs(s.gold) for s in second] == [1, 3, 6]
    result = agreement(three_months, second)
    m7, m8, m9 = (result["sets"][m]["pairwise"] for m in ("m7", "m8", "m9"))
    assert result["sets"]["m9"]["gold_pairs"] == [3, 6]
    assert (m7["precision"], m7["recall"], m7["f1"]) == (1.0, pytest.approx(1 / 3, abs=1e-4), 0.5)
    assert m8["f1"] == 1.0
    assert (m9["precision"], m9["recall"]) == (0.5, 1.0)
    # pooled: 7 of the second's 10 pairs are the first's, and 7 of the first's 9 are the second's
    assert result["pooled"]["pairwise"]["precision"] == pytest.approx(0.7, abs=1e-4)
    assert result["pooled"]["pairwise"]["recall"] == pytest.approx(7 / 9, abs=1e-4)
    # the F1s do not depend on which labelling is taken as the truth
    assert agreement(second, three_months)["pooled"]["pairwise"]["f1"] == result["pooled"]["pairwise"]["f1"]


def test_held_out_predictions_are_scored_against_the_second_labelling_too(three_months, tmp_path):
    second = relabelled(three_months, write_second(tmp_path / "second", {m: [[3, 5]] for m in (7, 8, 9)}, "../corpus"))
    result = cross_validate(three_months, thresholds=(0.2, 0.5), second=second)
    assert "against_second" not in cross_validate(three_months, thresholds=(0.2, 0.5))
    # every held-out month finds its whole storm story: against a second labelling that holds two of
    # its three days, each month's one pair is found and two more are wrongly joined
    against = result["against_second"]
    assert list(against["held_out"]) == ["m7", "m8", "m9"]
    assert result["pooled"]["stories"]["pairwise"]["f1"] == 1.0
    assert against["pooled"]["pairwise"]["recall"] == 1.0
    assert against["pooled"]["pairwise"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    same = cross_validate(three_months, thresholds=(0.2, 0.5), second=three_months)
    assert same["against_second"]["pooled"] == same["pooled"]["stories"]
    # a second labelling of some of the sets scores those sets' held-out predictions only
    some = cross_validate(three_months, thresholds=(0.2, 0.5), second=second[1:])
    assert list(some["against_second"]["held_out"]) == ["m8", "m9"]
    assert some["against_second"]["held_out"]["m8"] == against["held_out"]["m8"]
    assert some["against_second"]["pooled"]["pairwise"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    with pytest.raises(ConfigError, match="some of the same sets"):
        cross_validate(three_months, second=[second[0], second[0]])
    with pytest.raises(ConfigError, match="some of the same sets"):
        cross_validate(three_months[:2], second=second)


def test_each_fold_can_fit_on_both_labellings_of_its_training_sets_only(three_months, tmp_path):
    # the second labelling splits the storm differently in each month, so every fold's fit depends on it
    stories = {7: [[3, 5]], 8: [[5, 7]], 9: [[3, 7]]}
    second = relabelled(three_months, write_second(tmp_path / "second", stories, "../corpus"))
    featured = FeaturedSets(three_months)
    result = cross_validate(three_months, featured=featured, thresholds=(0.2, 0.5), second=second, fit_second=True)
    assert result["fitted_on"] == "both labellings"
    assert cross_validate(three_months, featured=featured, thresholds=(0.2, 0.5))["fitted_on"] == "first labelling"
    again = {s.name: s for s in second}
    for s in three_months:
        others = [o for o in three_months if o is not s]
        expected = featured.fit(others + [again[o.name] for o in others])
        assert with_second(others, second[1:]) == others + [again[o.name] for o in others if o.name != "m7"]
        held = result["held_out"][s.name]
        np.testing.assert_allclose(held["weights"], expected, atol=1e-4)
        # neither the first labelling alone nor one with the held-out set's second labelling gives these weights
        assert not np.allclose(held["weights"], featured.fit(others), atol=1e-3)
        assert not np.allclose(held["weights"], featured.fit(others + second), atol=1e-3)
        # the threshold is chosen over both labellings of the training sets too
        _, f1 = featured.choose_threshold(others + [again[o.name] for o in others], expected, (0.2, 0.5))
        assert {float(t): v for t, v in held["training_f1"].items()} == pytest.approx(f1, abs=1e-4)
    assert "against_second" in result
    with pytest.raises(ConfigError, match="needs a second labelling"):
        cross_validate(three_months, fit_second=True)


def test_a_second_labelling_must_match_the_first(three_months, tmp_path):
    other = write_second(tmp_path / "months" / "other", {6: [[3, 5]]})
    with pytest.raises(ConfigError, match="no first labelling named m6"):
        relabelled(three_months, other)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "articles.jsonl").write_text((tmp_path / "corpus" / "articles.jsonl").read_text())
    moved = write_second(tmp_path / "months" / "moved", {7: [[3, 5]]}, corpus="../../elsewhere")
    with pytest.raises(ConfigError, match="its first labelling"):
        relabelled(three_months, moved)
    with pytest.raises(ConfigError, match="same sets"):
        agreement(three_months, three_months[::-1])


def test_the_second_labelling_of_the_huffpost_months_matches_the_first():
    from conftest import ROOT

    folder = ROOT / "eval" / "stories-huffpost"
    first, second = load_golds(folder), load_golds(folder / "second")
    assert len(second) == 19 and {g.name for g in second} <= {g.name for g in first}
    shared_or_skip(first[0].corpus)
    articles = load_articles(first[0].corpus)
    vectors = np.zeros((len(articles), 4), dtype=np.float32)
    sets = [scored_set(g, str(g.corpus), articles, vectors) for g in first]
    again = relabelled(sets, second)
    assert [len(s.gold) for s in again] == [g.articles for g in second]
    assert all(gold_pairs(s.gold) > 0 for s in again)


def test_the_2022_test_months_match_their_corpus_and_are_no_dev_month():
    from conftest import ROOT

    folder = ROOT / "eval" / "stories-huffpost-2022"
    first, second = load_golds(folder), load_golds(folder / "second")
    assert len(first) == 6 and len(second) == 3 and {g.name for g in second} <= {g.name for g in first}
    assert not {g.name for g in first} & {g.name for g in load_golds(ROOT / "eval" / "stories-huffpost")}
    assert all(g.published[0].year == 2022 for g in first + second)
    shared_or_skip(first[0].corpus)
    articles = load_articles(first[0].corpus)
    vectors = np.zeros((len(articles), 4), dtype=np.float32)
    sets = [scored_set(g, str(g.corpus), articles, vectors) for g in first]
    assert [len(s.gold) for s in sets] == [g.articles for g in first]
    assert all(gold_pairs(s.gold) > 0 for s in relabelled(sets, second))
