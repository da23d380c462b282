"""One contract, two backends: the service gives the same answers over the local files and over Qdrant
(in process, local mode). Every test runs once per backend; the last ones compare the two directly."""

import threading
from collections import Counter

import numpy as np
import pytest

from conftest import BACKENDS, IBM_TITLE, SEEDS, backend_settings
from search.errors import IndexMissing, InvalidQuery, NotFound
from search.indexer import Indexer
from search.service import SearchService
from search.stories import model_key
from search.urls import article_id, id_to_int

IBM = article_id("https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043")
MODES = ("keyword", "semantic", "hybrid")
STORY = (
    '---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "{url}"\npublishedDateTime: "{date}"\n'
    'provider:\n  name: "{provider}"\n---\n'
)
BAN = "Council votes to ban facial recognition cameras in city shops after a long debate."


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, tmp_path_factory, embedder):
    """The seed corpus indexed once per backend (read-only for the tests)."""
    settings = backend_settings(request.param, tmp_path_factory.mktemp(f"seed-{request.param}"))
    Indexer(settings, embedder).index([SEEDS])
    return settings


@pytest.fixture
def svc(seeded, embedder):
    with SearchService(seeded, embedder) as service:
        yield service


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path):
    """Settings for an empty index on each backend."""
    return backend_settings(request.param, tmp_path)


# -- search ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_export_controls_finds_the_ibm_story_first(svc, mode):
    results = svc.search("export controls", mode=mode)
    assert results.hits[0].article.title == IBM_TITLE and results.total_relation == "eq"


def test_hybrid_scores_recompute_from_their_components(svc):
    for hit in svc.search("facial recognition police", mode="hybrid").hits:
        c = hit.components
        expected = c.weight_keyword * c.keyword_normalised + c.weight_semantic * c.semantic_normalised
        assert hit.score == pytest.approx(expected)


def test_semantic_mode_ranks_by_similarity(svc):
    scores = [h.components.similarity for h in svc.search("facial recognition ban", mode="semantic").hits]
    assert scores and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", MODES)
def test_operators_bind_in_every_mode(svc, mode):
    assert all(h.article.id != IBM for h in svc.search("facial -export", mode=mode).hits)
    assert all(h.article.id != IBM for h in svc.search("facial NOT export", mode=mode).hits)
    phrase = svc.search('"facial recognition" police', mode=mode)
    assert phrase.hits and all("facial recognition" in h.article.text.lower() for h in phrase.hits)
    only = svc.search("provider:reuters recognition", mode=mode)
    assert only.hits and {h.article.provider for h in only.hits} == {"Reuters"}


def test_phrases_fields_groups_prefixes_and_domains(svc):
    assert svc.search('"export controls"', mode="keyword").total == 1
    assert svc.search("title:export", mode="keyword").hits[0].article.id == IBM
    assert svc.search("(export OR robotaxi) AND recognition", mode="keyword").hits[0].article.id == IBM
    assert svc.search("recogn*", mode="keyword").total >= 4
    domain = svc.search("domain:reuters.com recognition", mode="keyword")
    assert [h.article.id for h in domain.hits] == [IBM]
    assert svc.search('+the "export controls"', mode="keyword").total == 1  # a stop word constrains nothing


def test_filters_and_facets_describe_one_match_set(svc):
    first = svc.search("facial recognition", limit=2)
    seen = []
    for offset in range(0, first.total, 2):
        page = svc.search("facial recognition", limit=2, offset=offset)
        assert page.total == first.total and page.facets == first.facets
        seen += [h.article.id for h in page.hits]
    assert len(seen) == len(set(seen)) == first.total
    assert {h.article.provider for h in svc.search("recognition", provider="reuters").hits} == {"Reuters"}
    hits = svc.search("recognition", topic="computer vision", mode="keyword").hits
    assert hits and all("Computer Vision" in h.article.topics for h in hits)
    dated = svc.search("recognition", since="2020-09-19", until="2020-09-20", mode="semantic").hits
    assert dated and all("2020-09-19" <= h.article.published.date().isoformat() <= "2020-09-20" for h in dated)


def test_facets_list_their_most_frequent_values_and_count_the_others(svc, monkeypatch):
    monkeypatch.setattr("search.service.FACET_VALUES", 2)  # the corpus holds a handful of values, not eleven
    every = svc.search("recognition", limit=100, collapse=False)
    providers = Counter(h.article.provider for h in every.hits if h.article.provider)
    topics = Counter(t for h in every.hits for t in h.article.topics)
    assert every.total == len(every.hits) and len(providers) > 2 and len(topics) > 2
    for name, counts in (("provider", providers), ("topic", topics)):
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        assert every.facets[name] == ranked[:2], name
        assert every.facets_other[name] == sum(n for _, n in ranked[2:]) > 0, name


def test_newest_first_orders_the_whole_match_set(svc):
    every = svc.search("facial recognition", limit=100)
    newest = svc.search("facial recognition", sort="newest", limit=100)
    assert {h.article.id for h in newest.hits} == {h.article.id for h in every.hits}
    dates = [h.article.published for h in newest.hits if h.article.published]
    assert dates == sorted(dates, reverse=True)


def test_typos_and_suggestions(svc):
    results = svc.search("export contrlos", mode="keyword")
    assert results.hits[0].article.id == IBM and results.corrections == {"contrlos": "controls"}
    assert svc.search('"export contrls"', mode="keyword").suggestion == '"export controls"'
    assert svc.search('"export contrls" xqzv', mode="keyword").suggestion is None  # it would find nothing either


@pytest.mark.parametrize("mode", MODES)
def test_nonsense_finds_nothing(svc, mode):
    for text in ("xqzv", "qwrtzpl mnbvc"):
        results = svc.search(text, mode=mode)
        assert results.total == 0 and results.hits == () and results.total_relation == "eq"


def test_bad_parameters_are_refused(svc):
    with pytest.raises(InvalidQuery):
        svc.search("export", limit=0)
    with pytest.raises(InvalidQuery, match="range"):
        svc.search("title:[a TO z]")


# -- lookups, related, stats ---------------------------------------------------------------------
def test_get_related_and_stats(svc):
    assert svc.get(IBM).title == IBM_TITLE
    with pytest.raises(NotFound):
        svc.get("AAAAAAAAAAA")
    listed = svc.get_many(list(svc.get(IBM).related))
    assert len(listed) == 4 and all(a.is_stub for a in listed)
    related = svc.related(IBM, limit=4)
    assert IBM not in [h.article.id for h in related.hits] and len(related.hits) == 4
    assert sum("facial recognition" in h.article.title.lower() for h in related.hits) >= 3
    assert any("facial recognition" in h.article.title.lower() for h in svc.related_text("police facial ban").hits)
    stats = svc.stats()
    assert stats["articles"] == 11 and stats["stubs"] == 5 and stats["model"] == "hash-v1"
    assert stats["backend"] == svc.settings.backend and svc.health()["articles"] == 11
    assert stats["story_model"] == model_key()  # recorded by the build, in either backend
    suggestions = svc.suggestions()
    assert suggestions.topics and suggestions.newest and not any(a.is_stub for a in suggestions.newest)


def test_a_missing_index_names_the_fix(fresh, embedder):
    with SearchService(fresh, embedder) as service, pytest.raises(IndexMissing, match="search-cli index"):
        service.search("x")


# -- stories ---------------------------------------------------------------------------------------
def write(folder, name, **fields):
    (folder / f"{name}.md").write_text(STORY.format(**fields), encoding="utf-8")


def test_stories_collapse_results_and_relate(fresh, tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n, provider in enumerate(("Alpha News", "Beta Wire", "Gamma Post")):
        write(docs, f"ban{n}", title="Portland council bans facial recognition in shops", excerpt=BAN,
              url=f"https://{n}.example/ban", date=f"2020-09-0{n + 1}", provider=provider)  # fmt: skip
    write(docs, "later", title="A year on, shops report on the facial recognition ban", excerpt=BAN[:40],
          url="https://l.example/later", date="2021-10-01", provider="Delta Daily")  # fmt: skip
    settings = fresh.with_overrides(related_floor=0.0)
    Indexer(settings, embedder).index([docs])
    ban = [article_id(f"https://{n}.example/ban") for n in range(3)]
    with SearchService(settings, embedder) as svc:
        results = svc.search("facial recognition ban shops", mode="keyword")
        first = next(h for h in results.hits if h.article.story == ban[0])
        assert len(first.versions) == 2 and results.total_articles == results.total + 2
        assert [a.id for a in svc.story(ban[2]).versions] == ban
        related = svc.related(ban[0])
        assert {v.id for v in related.also_reported} == {ban[1], ban[2]}
        assert all(h.article.story != ban[0] for h in related.hits)


def test_items_related_by_key_terms_alone_need_some_similarity(fresh, article_dir, embedder):
    Indexer(fresh, embedder).index([article_dir])
    anchor = article_id("https://mobility.example.com/robotaxi-pilot-night-rides")
    by_terms = {"related_floor": 1.0, "related_keyword_floor": 0.0}  # shown for their key terms only
    with SearchService(fresh.with_overrides(**by_terms, related_keyword_similarity=-1.0), embedder) as svc:
        loose = svc.related(anchor, limit=50).hits
    similarities = sorted(h.components.similarity for h in loose)
    assert len(similarities) >= 2 and similarities[0] < similarities[-1]
    cut = similarities[-1]  # the most similar stays, the others go
    with SearchService(fresh.with_overrides(**by_terms, related_keyword_similarity=cut), embedder) as svc:
        kept = svc.related(anchor, limit=50).hits
    assert kept and len(kept) < len(loose) and all(h.components.similarity >= cut for h in kept)
    assert {h.article.id for h in kept} == {h.article.id for h in loose if h.components.similarity >= cut}


# -- writing ---------------------------------------------------------------------------------------
ARTICLE = '---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "{url}"\n---\n'


def test_incremental_add_update_delete_and_prune(fresh, article_dir, embedder):
    Indexer(fresh, embedder).index([article_dir])
    again = Indexer(fresh, embedder).index([article_dir])
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    target = article_dir / "003_robotaxi_pilot.md"
    target.write_text(target.read_text().replace("Robotaxi pilot expands", "Robotaxi service expands"))
    (article_dir / "new.md").write_text(
        ARTICLE.format(title="Quantum sensors map volcano", excerpt="Muons image magma.", url="https://q.example/v")
    )
    report = Indexer(fresh, embedder).index([article_dir])
    assert (report.added, report.updated, report.embedded) == (1, 1, 2)
    robotaxi = article_id("https://mobility.example.com/robotaxi-pilot-night-rides")
    with SearchService(fresh, embedder) as svc:
        assert "Robotaxi service expands" in svc.get(robotaxi).title
        assert svc.search("volcano magma", mode="keyword").hits[0].article.id == article_id("https://q.example/v")
        assert svc.search("robotaxi service", mode="keyword").hits[0].article.id == robotaxi
        total = svc.stats()["articles"]
    deleted = Indexer(fresh, embedder).delete([robotaxi, "AAAAAAAAAAA"])
    assert deleted.removed == 1 and deleted.not_found == ["AAAAAAAAAAA"]
    (article_dir / "new.md").unlink()
    pruned = Indexer(fresh, embedder).index([article_dir], prune=True)
    assert pruned.removed == 1
    with SearchService(fresh, embedder) as svc:
        assert svc.stats()["articles"] == total - 2
        with pytest.raises(NotFound):
            svc.get(robotaxi)
        assert svc.search("volcano magma", mode="keyword").total == 0
        assert svc.search("robotaxi service", mode="keyword").total == 0


def test_what_an_open_reader_sees_through_a_publish(fresh, article_dir, embedder):
    """Local: a reader keeps its snapshot, whole, through any publish. Qdrant: through a full build (the
    alias switches; the replaced collection stays); an update is written into the live collection, so
    an open reader sees it as it is written. Either way the service moves to the new version."""
    Indexer(fresh, embedder).index([article_dir])
    robotaxi = article_id("https://mobility.example.com/robotaxi-pilot-night-rides")
    target = article_dir / "003_robotaxi_pilot.md"
    steps = [("zeppelin", False)] + ([("hovercraft", True)] if fresh.backend == "qdrant" else [])
    with SearchService(fresh, embedder) as before:
        for word, rebuild in steps:
            reader = before.backend.open_reader()
            try:
                version, title = reader.version, reader.articles([robotaxi])[robotaxi].title
                target.write_text(target.read_text().replace(title.split()[1], word.capitalize(), 1))
                Indexer(fresh, embedder).index([article_dir], rebuild=rebuild)
                snapshot = fresh.backend == "local" or rebuild
                seen = reader.articles([robotaxi])[robotaxi].title
                assert seen == title if snapshot else word.capitalize() in seen
                term = reader.terms(word)[0]
                found = reader.keyword_match([[(term, 1.0)]], 1, [(term, 1.0)], None)
                assert (id_to_int(robotaxi) in found.keys.tolist()) is not snapshot
                assert before.search(f"robotaxi {word}", mode="keyword").hits[0].article.id == robotaxi
                assert before.health()["generation"] != version
            finally:
                reader.close()


def test_readers_never_see_a_half_built_index(fresh, article_dir, embedder):
    """While an update writes, every search answers, and the article count a reader reports moves only
    by whole published updates. Local: each search answers from one snapshot, whole. Qdrant: an update
    goes into the live collection batch by batch (as Elasticsearch's refresh shows documents), so a
    search may see some of its articles before the count does."""
    Indexer(fresh, embedder).index([article_dir])
    with SearchService(fresh, embedder) as svc:
        expected = svc.stats()["articles"]
        stop, seen = threading.Event(), set()

        def read():
            while not stop.is_set():
                results = svc.search("recognition", mode="keyword", limit=100)
                seen.add((svc.health()["articles"], results.total > 0))

        thread = threading.Thread(target=read)
        thread.start()
        try:
            for n in range(3):
                (article_dir / f"extra{n}.md").write_text(
                    ARTICLE.format(
                        title=f"Speech recognition story {n}", excerpt="Voices.", url=f"https://e.example/{n}"
                    )
                )
                Indexer(fresh, embedder).index([article_dir])
        finally:
            stop.set()
            thread.join()
        assert {count for count, _ in seen} <= {expected, expected + 1, expected + 2, expected + 3}
        assert all(found for _, found in seen)


# -- the two backends side by side -------------------------------------------------------------------
QUERIES = [
    "export controls", "facial recognition", "facial recognition police ban", '"facial recognition" police',
    "facial -export", "provider:reuters recognition", "recogn*", "export contrlos", 'topic:"computer vision"',
    "(export OR robotaxi) AND recognition", "speech languages", "xqzv",
]  # fmt: skip


@pytest.fixture(scope="module")
def both(tmp_path_factory, embedder):
    services = []
    for backend in BACKENDS:
        settings = backend_settings(backend, tmp_path_factory.mktemp(f"both-{backend}"))
        Indexer(settings, embedder).index([SEEDS])
        services.append(SearchService(settings, embedder))
    yield services
    for service in services:
        service.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sort", ["relevance", "newest"])
def test_both_backends_give_the_same_answers(both, mode, sort):
    local, qdrant = both
    for text in QUERIES:
        a, b = local.search(text, mode=mode, sort=sort, limit=20), qdrant.search(text, mode=mode, sort=sort, limit=20)
        assert [h.article.id for h in a.hits] == [h.article.id for h in b.hits], text
        assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-4), text
        assert (a.total, a.total_articles, a.facets, a.facets_other, a.corrections, a.suggestion) == (
            b.total, b.total_articles, b.facets, b.facets_other, b.corrections, b.suggestion
        ), text  # fmt: skip


def test_both_backends_relate_alike(both):
    local, qdrant = both
    for article in local.get_many([IBM, *local.get(IBM).related]):
        a, b = local.related(article.id), qdrant.related(article.id)
        assert [h.article.id for h in a.hits] == [h.article.id for h in b.hits]
        assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-4)
    text = "police use of facial recognition"
    ids = [[h.article.id for h in service.related_text(text).hits] for service in both]
    assert ids[0] == ids[1] and ids[0]
