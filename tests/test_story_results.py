"""Stories in the index and in results: detection at index time, collapsing, "more like this" by story,
the story lookup, and stable story ids across incremental updates (hash embedder)."""

import json

import pytest
from click.testing import CliRunner

from conftest import fake_settings
from search.cli import main
from search.indexer import Indexer
from search.service import SearchService
from search.stories import DEFAULT, context_days
from search.urls import article_id

STORY = (
    '---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "{url}"\npublishedDateTime: "{date}"\n'
    'provider:\n  name: "{provider}"\n---\n'
)
BAN = "Council votes to ban facial recognition cameras in city shops after a long debate."
FLOOD = "River floods the old town as heavy rain continues for a third day and roads close."


def write(folder, name, **fields):
    (folder / f"{name}.md").write_text(STORY.format(**fields), encoding="utf-8")


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n, provider in enumerate(("Alpha News", "Beta Wire", "Gamma Post")):  # one event, three outlets
        title = "Portland council bans facial recognition in shops"
        write(docs, f"ban{n}", title=title, excerpt=BAN, url=f"https://{n}.example/ban", date=f"2020-09-0{n + 1}",
              provider=provider)  # fmt: skip
    write(docs, "flood", title="Floods close roads in the old town", excerpt=FLOOD, url="https://f.example/flood",
          date="2020-09-02", provider="Alpha News")  # fmt: skip
    write(docs, "ban-later", title="A year on, shops report on the facial recognition ban", excerpt=BAN[:40],
          url="https://l.example/later", date="2021-10-01", provider="Delta Daily")  # fmt: skip
    return docs


@pytest.fixture
def service(corpus, tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix", related_floor=0.0)
    Indexer(settings, embedder).index([corpus])
    svc = SearchService(settings, embedder)
    yield svc
    svc.close()


def ban(n: int) -> str:
    return article_id(f"https://{n}.example/ban")


def test_copies_from_three_outlets_are_one_story(service):
    stories = {service.get(ban(n)).story for n in range(3)}
    assert len(stories) == 1 and stories == {ban(0)}  # named after its earliest article
    assert service.get(article_id("https://l.example/later")).story not in stories  # a year later: another story


def test_results_collapse_by_story_and_list_the_other_versions(service):
    results = service.search("facial recognition ban shops", mode="keyword")
    stories = [h.article.story for h in results.hits]
    assert len(stories) == len(set(stories)) and results.collapse
    first = next(h for h in results.hits if h.article.story == ban(0))
    assert len(first.versions) == 2 and {v.provider for v in first.versions} | {first.article.provider} == {
        "Alpha News",
        "Beta Wire",
        "Gamma Post",
    }
    assert results.total == len(stories) and results.total_articles == results.total + 2
    assert results.to_dict()["counts"] == "stories"
    every = service.search("facial recognition ban shops", mode="keyword", collapse=False)
    assert every.total == results.total_articles and all(not h.versions for h in every.hits)


def test_related_returns_other_stories_and_lists_the_own_story_apart(service):
    results = service.related(ban(0), limit=10)
    assert all(h.article.story != ban(0) for h in results.hits)
    assert {v.id for v in results.also_reported} == {ban(1), ban(2)}
    assert any(h.article.id == article_id("https://l.example/later") for h in results.hits)
    every = service.related(ban(0), limit=100)  # the counts are of what the hits show: not the anchor's story
    assert every.total == len(every.hits) and every.total_articles == sum(1 + len(h.versions) for h in every.hits)


def test_story_lookup_by_story_or_article_id(service):
    story = service.story(ban(2))
    assert story.id == ban(0) and [a.id for a in story.versions] == [ban(0), ban(1), ban(2)]
    assert story.to_dict()["providers"] == ["Alpha News", "Beta Wire", "Gamma Post"]


def test_incremental_update_keeps_story_ids_and_joins_a_new_copy(corpus, tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix2")
    Indexer(settings, embedder).index([corpus])
    write(corpus, "ban3", title="Portland council bans facial recognition in shops", excerpt=BAN,
          url="https://3.example/ban", date="2020-09-04", provider="Epsilon")  # fmt: skip
    report = Indexer(settings, embedder).index([corpus])
    assert report.added == 1 and report.stages["stories"] >= 0
    with SearchService(settings, embedder) as svc:
        assert svc.get(article_id("https://3.example/ban")).story == ban(0)
        assert svc.get(article_id("https://f.example/flood")).story == article_id("https://f.example/flood")


def test_story_api_page_and_cli(service, tmp_path):
    from web.app import create_app

    client = create_app(service.settings, service).test_client()
    body = client.get(f"/api/stories/{ban(1)}").get_json()
    assert body["id"] == ban(0) and [v["id"] for v in body["versions"]] == [ban(0), ban(1), ban(2)]
    assert client.get("/api/stories/AAAAAAAAAAA").status_code == 404
    page = client.get(f"/stories/{ban(0)}").get_data(as_text=True)
    assert "3 articles from Alpha News, Beta Wire, Gamma Post" in page
    search = client.get("/search?q=facial+recognition+ban&mode=keyword").get_data(as_text=True)
    assert "2 more matching versions of this story" in search and "<details" in search
    article = client.get(f"/articles/{ban(0)}").get_data(as_text=True)
    assert "Also reported by" in article
    result = CliRunner().invoke(main, ["story", ban(2), "--index-dir", service.settings.index_dir, "--json"],
                                env={"SEARCH_QUERY_EMBEDDER": "hash"})  # fmt: skip
    assert result.exit_code == 0 and json.loads(result.output)["articles"] == 3


def test_an_update_reexamines_only_the_articles_near_it_in_time(tmp_path, embedder):
    docs = tmp_path / "many"
    docs.mkdir()
    months = 120
    for n in range(months):  # one article a month for ten years
        year, month = 2012 + n // 12, n % 12 + 1
        write(docs, f"m{n}", title=f"Monthly report number {n}", excerpt=f"Figures for month {n}.",
              url=f"https://m.example/{n}", date=f"{year}-{month:02d}-15", provider="Alpha News")  # fmt: skip
    settings = fake_settings(tmp_path / "ix")
    first = Indexer(settings, embedder).index([docs])
    assert first.stories["articles"] == months
    write(docs, "late", title="A late report", excerpt="Filed at the end.", url="https://m.example/late",
          date="2017-06-20", provider="Alpha News")  # fmt: skip
    update = Indexer(settings, embedder).index([docs])
    assert update.added == 1
    within = 2 * context_days() / 30.4 + 2  # the months within the story context window of June 2017
    assert update.stories["considered"] <= within < months
    assert update.stories["examined"] <= 2 * DEFAULT.reach_days / 30.4 + 1  # re-examined: only nearer still


def test_related_counts_only_the_articles_of_the_stories_it_lists(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    titles = ("Portland council bans facial recognition in shops", "Portland council bans facial recognition in stores")
    for n, title in enumerate(titles):  # one story, told twice in other words: not a copy of the anchor
        write(docs, f"v{n}", title=title, excerpt=BAN, url=f"https://{n}.example/v", date=f"2020-09-0{n + 1}",
              provider="Alpha News")  # fmt: skip
    write(docs, "later", title="A year on, shops report on the facial recognition ban", excerpt=BAN[:40],
          url="https://l.example/later", date="2021-10-01", provider="Delta Daily")  # fmt: skip
    settings = fake_settings(tmp_path / "ix", related_floor=0.0)
    Indexer(settings, embedder).index([docs])
    svc = SearchService(settings, embedder)
    try:
        anchor, other = (article_id(f"https://{n}.example/v") for n in range(2))
        assert svc.get(other).story == svc.get(anchor).story  # the premise: one story
        results = svc.related(anchor, limit=100)
        assert [v.id for v in results.also_reported] == [other]
        assert results.total_articles == sum(1 + len(h.versions) for h in results.hits) == results.total == 1
    finally:
        svc.close()
