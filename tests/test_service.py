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


def test_hits_carry_score_components(service):
    hit = service.search("export controls", mode="hybrid").hits[0]
    assert hit.keyword_rank == 1 and hit.keyword_score > 0
    assert hit.semantic_rank is not None and -1.0 <= hit.semantic_score <= 1.0
    d = hit.to_dict()
    assert set(d["components"]) == {"keyword_score", "keyword_rank", "semantic_score", "semantic_rank"}
    assert {"id", "title", "excerpt", "url", "provider", "published", "score"} <= set(d)


def test_semantic_mode_returns_ranked_vectors(service):
    results = service.search("facial recognition ban", mode="semantic", limit=5)
    assert len(results.hits) == 5
    scores = [h.semantic_score for h in results.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.keyword_rank is None for h in results.hits)


def test_rrf_fusion_setting(seed_index, embedder):
    svc = SearchService(seed_index.with_overrides(fusion="rrf"), embedder)
    hit = svc.search("export controls").hits[0]
    assert hit.article.id == IBM and hit.score == pytest.approx(1 / 61 + 1 / (60 + hit.semantic_rank))
    svc.close()


def test_plain_words_are_ored(service):
    assert service.search("export xyzzyplugh", mode="keyword").hits[0].article.id == IBM


def test_query_syntax_phrase_field_and_not(service):
    assert service.search('"export controls"', mode="keyword").total == 1
    assert service.search("provider:Reuters", mode="keyword").hits[0].article.id == IBM
    assert all(h.article.id != IBM for h in service.search("facial NOT export", mode="keyword").hits)


@pytest.mark.parametrize(
    "text", ['"unbalanced', "((", "title:", "AND OR NOT", "nosuchfield:value", "[a TO", "}{", "^~"]
)
def test_malformed_syntax_never_raises(service, text):
    service.search(text, mode="keyword")


def test_filters(service):
    assert {h.article.provider for h in service.search("recognition", provider="Reuters").hits} == {"Reuters"}
    hits = service.search("recognition", topic="computer vision", mode="keyword").hits
    assert hits and all("Computer Vision" in h.article.topics for h in hits)
    dated = service.search("recognition", since="2020-09-19", until="2020-09-20", mode="semantic").hits
    assert dated and all("2020-09-19" <= h.article.published.date().isoformat() <= "2020-09-20" for h in dated)


def test_facets_sort_and_pagination(service):
    results = service.search("facial recognition", mode="hybrid", limit=2)
    assert results.facets["provider"] and all(c > 0 for _, c in results.facets["provider"])
    page2 = service.search("facial recognition", mode="hybrid", limit=2, offset=2)
    assert page2.hits[0].rank == 3
    assert {h.article.id for h in page2.hits}.isdisjoint(h.article.id for h in results.hits)
    newest = service.search("facial recognition", sort="newest", limit=5).hits
    dates = [h.article.published for h in newest]
    assert dates == sorted(dates, reverse=True)


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
