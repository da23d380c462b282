"""SearchService on the seed index, with the deterministic hash embedder."""

import pytest

from conftest import IBM_TITLE, fake_settings
from search.errors import IndexMissing, InvalidQuery, NotFound
from search.service import SearchService
from search.urls import article_id

IBM = article_id("https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043")


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_export_controls_finds_the_ibm_story_first(service, mode):
    results = service.search("export controls", mode=mode)
    assert results.hits[0].article.title == IBM_TITLE
    assert results.hits[0].rank == 1


def test_hits_carry_score_components_that_recompute_the_score(service):
    results = service.search("export controls", mode="hybrid")
    hit = results.hits[0]
    c = hit.components
    assert c.keyword_rank == 1 and c.keyword_score > 0 and c.matched_by in ("words", "both")
    assert c.semantic_rank is not None and -1.0 <= c.semantic_score <= 1.0
    for h in results.hits:  # hybrid's score is exactly the weighted sum of the normalised sides
        c = h.components
        expected = c.weight_keyword * c.keyword_normalised + c.weight_semantic * c.semantic_normalised
        assert h.score == pytest.approx(expected, abs=1e-6)
    assert results.fusion == {"method": "convex", "weight_keyword": pytest.approx(0.1), "weight_semantic": 0.9}
    d = hit.to_dict()
    assert {"keyword_score", "keyword_normalised", "semantic_score", "semantic_normalised", "similarity"} <= set(
        d["components"]
    )
    assert {"id", "title", "excerpt", "url", "provider", "published", "score"} <= set(d)


def test_semantic_mode_ranks_the_match_set_by_similarity(service):
    results = service.search("facial recognition ban", mode="semantic", limit=5)
    assert results.hits
    scores = [h.components.similarity for h in results.hits]
    assert scores == sorted(scores, reverse=True)
    assert [h.score for h in results.hits] == scores


def test_rrf_fusion_setting(seed_index, embedder):
    svc = SearchService(seed_index.with_overrides(fusion="rrf"), embedder)
    results = svc.search("export controls")
    hit = results.hits[0]
    c = hit.components
    assert hit.article.id == IBM and results.fusion == {"method": "rrf", "k": 60}
    assert hit.score == pytest.approx(1 / (60 + c.keyword_rank) + 1 / (60 + c.semantic_rank))
    svc.close()


def test_long_queries_need_most_of_their_words(service):
    one_word = service.search("export xyzzyplugh", mode="keyword")  # two words: both needed, or close in meaning
    assert all(h.components.matched_by != "words" for h in one_word.hits)
    either = service.search("export OR xyzzyplugh", mode="keyword")  # an explicit OR: one is enough
    assert either.hits[0].article.id == IBM and either.hits[0].components.matched_by in ("words", "both")


def test_query_syntax_phrase_field_and_not(service):
    assert service.search('"export controls"', mode="keyword").total == 1
    assert service.search("provider:Reuters", mode="keyword").hits[0].article.id == IBM
    for mode in ("keyword", "semantic", "hybrid"):  # operators bind in every mode
        assert all(h.article.id != IBM for h in service.search("facial -export", mode=mode).hits)
        assert all(h.article.id != IBM for h in service.search("facial NOT export", mode=mode).hits)
        phrase = service.search('"facial recognition" police', mode=mode)
        assert phrase.hits and all("facial recognition" in h.article.text.lower() for h in phrase.hits)
        only = service.search("provider:reuters recognition", mode=mode)
        assert only.hits and {h.article.provider for h in only.hits} == {"Reuters"}


@pytest.mark.parametrize(
    "text", ['"unbalanced', "((", "title:", "AND OR NOT", "nosuchfield:value", "[a TO", "}{", "^~", "a*b?c"]
)
def test_malformed_syntax_never_raises(service, text):
    service.search(text, mode="keyword")


def test_ranges_are_refused_with_a_reason(service):
    with pytest.raises(InvalidQuery, match="range"):
        service.search("title:[a TO z] OR excerpt:[a TO z]")


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_nonsense_finds_nothing_in_every_mode(service, mode):
    for text in ("xqzv", "qwrtzpl mnbvc"):
        results = service.search(text, mode=mode)
        assert results.total == 0 and results.hits == () and results.total_relation == "eq"


def test_a_misspelled_word_finds_its_articles_and_says_so(service):
    results = service.search("export contrlos", mode="keyword")
    assert results.hits[0].article.id == IBM and results.corrections == {"contrlos": "controls"}


def test_no_results_suggest_a_query_from_the_index_words(service):
    results = service.search('"export contrls" recognitoin', mode="keyword")
    assert results.total == 0 and results.suggestion == '"export controls" recognition'
    assert service.search('"export controls" recognition', mode="keyword").total  # the suggestion finds something
    # a suggestion that would find nothing either is not offered: xqzv stays unknown
    assert service.search('"export contrls" xqzv', mode="keyword").suggestion is None


def test_total_facets_and_pages_describe_one_match_set(service):
    first = service.search("facial recognition", limit=2)
    assert first.total >= 4
    seen: list[str] = []
    for offset in range(0, first.total, 2):
        page = service.search("facial recognition", limit=2, offset=offset)
        assert page.total == first.total and page.facets == first.facets
        seen += [h.article.id for h in page.hits]
    assert len(seen) == len(set(seen)) == first.total  # no repeats, no gaps, stops at the total
    assert service.search("facial recognition", limit=2, offset=first.total).hits == ()
    counted = sum(n for _, n in first.facets["provider"])
    assert counted <= first.total and first.facets["provider"][0][1] >= 1


def test_newest_first_orders_the_whole_match_set(service):
    every = service.search("facial recognition", limit=100)
    newest = service.search("facial recognition", sort="newest", limit=100)
    assert {h.article.id for h in newest.hits} == {h.article.id for h in every.hits}
    dates = [h.article.published for h in newest.hits if h.article.published]
    assert dates == sorted(dates, reverse=True)


def test_provider_filter_ignores_case(service):
    assert service.search("recognition", provider="reuters").hits[0].article.provider == "Reuters"


def test_filters(service):
    assert {h.article.provider for h in service.search("recognition", provider="Reuters").hits} == {"Reuters"}
    hits = service.search("recognition", topic="computer vision", mode="keyword").hits
    assert hits and all("Computer Vision" in h.article.topics for h in hits)
    dated = service.search("recognition", since="2020-09-19", until="2020-09-20", mode="semantic").hits
    assert dated and all("2020-09-19" <= h.article.published.date().isoformat() <= "2020-09-20" for h in dated)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 101},
        {"mode": "fuzzy"},
        {"since": "last week"},
        {"offset": -1},
        {"sort": "oldest"},
        {"since": "2021-01-01", "until": "2020-01-01"},
    ],
)
def test_bad_parameters(service, kwargs):
    with pytest.raises(InvalidQuery):
        service.search("export", **kwargs)


def test_query_length_and_empty(service):
    with pytest.raises(InvalidQuery, match="1000"):
        service.search("x" * 1001)
    with pytest.raises(InvalidQuery, match="empty"):
        service.search("   ")


def test_related_excludes_itself_and_finds_facial_recognition_stories(service):
    results = service.related(IBM, limit=4)
    ids = [h.article.id for h in results.hits]
    assert IBM not in ids and len(ids) == 4
    assert sum("facial recognition" in h.article.title.lower() for h in results.hits) >= 3


def test_related_text(service):
    results = service.related_text("police facial recognition ban", limit=3)
    assert len(results.hits) == 3
    assert any("facial recognition" in h.article.title.lower() for h in results.hits)


def test_get_unknown_and_malformed_ids(service):
    assert service.get(IBM).title == IBM_TITLE
    with pytest.raises(NotFound):
        service.get("AAAAAAAAAAA")
    with pytest.raises(InvalidQuery):
        service.get("../../etc")


def test_publisher_links_are_kept(service):
    article = service.get(IBM)
    listed = service.get_many(list(article.related))
    assert len(listed) == 4 and all(a.is_stub for a in listed)


def test_stats(service):
    stats = service.stats()
    assert stats["articles"] >= 10 and stats["model"] == "hash-v1" and stats["generation"].startswith("gen-")


def test_missing_index_names_the_fix(tmp_path, embedder):
    svc = SearchService(fake_settings(tmp_path / "nothing"), embedder)
    with pytest.raises(IndexMissing, match="search-cli index"):
        svc.search("x")


def test_related_drops_copies_of_the_story(tmp_path, embedder):
    from search.indexer import Indexer

    docs = tmp_path / "docs"
    docs.mkdir()
    story = '---\ntitle: "{title}"\nexcerpt: "Councils vote on facial recognition rules."\nwebUrl: "{url}"\n---\n'
    (docs / "a.md").write_text(story.format(title="Ban on facial recognition advances", url="https://a.org/1"))
    (docs / "b.md").write_text(story.format(title="Ban on Facial Recognition Advances!", url="https://b.org/2"))
    (docs / "c.md").write_text(story.format(title="City weighs facial recognition limits", url="https://c.org/3"))
    (docs / "d.md").write_text(story.format(title="City Weighs Facial Recognition Limits", url="https://d.org/4"))
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([docs])
    svc = SearchService(settings, embedder)
    titles = [h.article.title for h in svc.related(article_id("https://a.org/1")).hits]
    assert sorted(t.lower() for t in titles) == ["city weighs facial recognition limits"] * 2
    assert len(svc.related_text("facial recognition rules").hits) == 4
    svc.close()


def test_a_search_past_its_time_budget_gives_up_with_a_reason(seed_index, embedder, monkeypatch):
    from search.errors import QueryTimeout
    from search.local import LocalReader

    slow = LocalReader.keyword_match

    def sleepy(self, *args, **kwargs):
        import time

        time.sleep(0.3)
        return slow(self, *args, **kwargs)

    with SearchService(seed_index.with_overrides(request_budget_ms=250), embedder) as svc:
        svc.search("export controls")  # opens the index and embeds once: within the budget
        monkeypatch.setattr(LocalReader, "keyword_match", sleepy)
        with pytest.raises(QueryTimeout, match="matching the query's words"):
            svc.search("export controls")
    with SearchService(seed_index.with_overrides(request_budget_ms=0), embedder) as svc:  # 0: no budget
        assert svc.search("export controls").hits


def test_loading_the_vocabulary_is_not_counted_against_a_request(seed_index, embedder, monkeypatch):
    """The first misspelled word opens the index's vocabulary, once per generation (5.1 s for a 2,045-article
    index in Qdrant's local mode): shared work, not the request's."""
    from search.local import LocalReader

    load = LocalReader.vocabulary

    def slow_first_load(self):
        import time

        time.sleep(0.4)
        return load(self)

    with SearchService(seed_index.with_overrides(request_budget_ms=250), embedder) as svc:
        svc.search("export controls")
        monkeypatch.setattr(LocalReader, "vocabulary", slow_first_load)
        results = svc.search("export contrlos", mode="keyword")
        assert results.corrections == {"contrlos": "controls"} and results.hits


def test_waiting_for_the_query_model_is_not_counted_against_a_request(seed_index, monkeypatch):
    """On a first start the server's warm-up exports the query model (18 s here): a search sent meanwhile waits
    for it and answers, instead of running out of its time budget and blaming the query's words."""
    import time

    import search.embedding

    def slow_load(*args, **kwargs):
        time.sleep(0.4)
        return search.embedding.HashEmbedder()

    monkeypatch.setattr(search.embedding, "load_embedder", slow_load)
    with SearchService(seed_index.with_overrides(request_budget_ms=250, query_embedder="hash")) as svc:
        assert svc.search("export controls").hits


def test_a_keyword_side_with_no_scores_normalises_to_zero(seed_index, embedder):
    """Text none of whose words the index holds: its keyword scores are all 0, and "normalised" they stay 0 (they
    were 1.0, which let every article above related_keyword_similarity through as a key-term match)."""
    with SearchService(seed_index.with_overrides(related_floor=-1.0), embedder) as svc:  # every article passes
        related = svc.related_text("xqzvbnm plorf")
        assert related.hits and all(h.components.keyword_score == 0 for h in related.hits)
        assert all(h.components.keyword_normalised == 0 for h in related.hits)
        searched = svc.search("AT&T")  # searched by meaning only: no keyword side
        assert all(h.components.keyword_normalised in (0, None) for h in searched.hits)


def test_a_query_model_that_is_not_the_index_s_says_how_to_fix_it(seed_index, embedder):
    from search.errors import ConfigError

    class OtherModel(type(embedder)):
        model_name = "another-model"

    with SearchService(seed_index, OtherModel()) as svc, pytest.raises(ConfigError) as failed:
        svc.search("export controls", mode="semantic")
    assert "query_embedder" in str(failed.value) and "search-cli index PATHS --rebuild" in str(failed.value)
