"""The JSON API: the CLI's dicts, one error shape, and no 500 for anything a client sends."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import MethodNotAllowed, UnsupportedMediaType
from werkzeug.exceptions import NotFound as HTTPNotFound

import search.errors
from search import generations as gen
from search.config import Settings
from search.errors import (
    ArticleError,
    ConfigError,
    DiskFull,
    IndexCorrupt,
    IndexLocked,
    IndexMissing,
    IndexReadOnly,
    InvalidQuery,
    ModelError,
    NotFound,
    SearchError,
)
from web.app import create_app
from web.errors import ERRORS, describe
from webutil import IBM_ID, IBM_TITLE, HashEmbedder, build_index, make_service


def get_json(client, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    return response.get_json()


def assert_error(body: dict, status: int, kind: str) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"status", "type", "message"}
    assert (body["error"]["status"], body["error"]["type"]) == (status, kind), body
    assert body["error"]["message"]


def without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "took_ms"}


def without_highlights(results: dict) -> dict:
    """The API's search dict as the CLI prints it: without the HTML fragments."""
    return dict(results, hits=[{k: v for k, v in h.items() if k != "highlights"} for h in results["hits"]])


def test_search_hits_carry_the_fragments_the_page_shows(client) -> None:
    body = get_json(client, "/api/search?q=export+controls&limit=5")
    page = client.get("/search?q=export+controls&limit=5").get_data(as_text=True)
    shown = re.findall(
        r'<li class="hit">\s*<h2>(?:<a [^>]*>)?(.*?)(?:</a>)?</h2>.*?<p class="excerpt">(.*?)</p>', page, re.S
    )
    assert len(shown) == len(body["hits"]) > 0
    for hit, (title, excerpt) in zip(body["hits"], shown, strict=True):
        assert hit["highlights"] == {"title": title, "excerpt": excerpt}
    assert "<mark>export controls</mark>" in body["hits"][0]["highlights"]["title"]
    hostile = get_json(client, "/api/search?q=control+panels&mode=keyword")
    for hit in hostile["hits"]:
        fragments = hit["highlights"]["title"] + hit["highlights"]["excerpt"]
        assert "<script" not in fragments and "<b>" not in fragments and "<img" not in fragments
    related = get_json(client, f"/api/articles/{IBM_ID}/related")
    assert all("highlights" not in h for h in related["hits"])


# -- the error table, pinned ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (InvalidQuery("bad"), 400, "invalid_query"),
        (NotFound("gone"), 404, "not_found"),
        (IndexMissing("none"), 503, "index_missing"),
        (IndexCorrupt("broken"), 503, "index_corrupt"),
        (IndexLocked("busy"), 503, "index_locked"),
        (DiskFull("full"), 503, "disk_full"),
        (IndexReadOnly("read-only"), 503, "index_read_only"),
        (ConfigError("setting"), 500, "config_error"),
        (ModelError("model"), 500, "model_error"),
        (ArticleError("file"), 500, "article_error"),
        (SearchError("other"), 500, "search_error"),
        (HTTPNotFound(), 404, "not_found"),
        (MethodNotAllowed(["GET"]), 405, "method_not_allowed"),
        (UnsupportedMediaType(), 415, "unsupported_media_type"),
        (RuntimeError("secret detail"), 500, "internal_error"),
    ],
)
def test_error_table(exc: Exception, status: int, kind: str) -> None:
    info = describe(exc)
    assert (info.status, info.type) == (status, kind)
    assert "secret" not in info.message


def test_every_library_error_has_a_status() -> None:
    classes = {c for _, c in inspect.getmembers(search.errors, inspect.isclass) if issubclass(c, SearchError)}
    assert classes == set(ERRORS), "map each new error type in web/errors.py ERRORS"


# -- the same dicts as the CLI ----------------------------------------------------------------
def test_search_returns_results_to_dict(client, web_service) -> None:
    url = "/api/search?q=export+controls&mode=keyword&limit=3&offset=0&sort=relevance"
    body = get_json(client, url)
    expected = web_service.search("export controls", mode="keyword", limit=3).to_dict()
    assert without_timing(without_highlights(body)) == without_timing(expected)
    assert body["hits"][0]["title"] == IBM_TITLE
    assert {"provider", "topic"} <= set(body["facets"])


def test_search_filters_pass_through(client, web_service) -> None:
    body = get_json(client, "/api/search?q=recognition&provider=Reuters&topic=AI&since=2020-01-01&until=2020-12-31")
    expected = web_service.search("recognition", provider="Reuters", topic="AI", since="2020-01-01", until="2020-12-31")
    assert without_timing(without_highlights(body)) == without_timing(expected.to_dict())
    assert body["filters"]["provider"] == "Reuters" and body["filters"]["topic"] == "AI"


def test_article_has_its_listed_related_items(client, web_service) -> None:
    body = get_json(client, f"/api/articles/{IBM_ID}")
    article = web_service.get(IBM_ID)
    listed = web_service.get_many(list(article.related))
    assert body == dict(article.to_dict(), related_articles=[a.to_dict() for a in listed], related_omitted=0)
    assert len(body["related_articles"]) == 4


def test_related_endpoints(client, web_service) -> None:
    body = get_json(client, f"/api/articles/{IBM_ID}/related?limit=3")
    assert without_timing(body) == without_timing(web_service.related(IBM_ID, limit=3).to_dict())
    assert 1 <= len(body["hits"]) <= 3 and IBM_ID not in [h["id"] for h in body["hits"]]
    response = client.post("/api/related", json={"text": "facial recognition bans", "limit": 2})
    assert response.status_code == 200
    expected = web_service.related_text("facial recognition bans", limit=2).to_dict()
    assert without_timing(response.get_json()) == without_timing(expected)


def test_health_and_stats(client, web_service) -> None:
    stats = web_service.stats()
    assert get_json(client, "/api/health") == {
        "status": "ok",
        "ready": True,  # an app given its service does not warm it up
        "generation": stats["generation"],
        "articles": stats["articles"],
    }
    assert get_json(client, "/api/health/ready") == {
        "status": "ready",
        "generation": stats["generation"],
        "articles": stats["articles"],
    }
    assert get_json(client, "/api/stats") == {k: v for k, v in stats.items() if k != "index_dir"}


def test_no_response_reveals_a_server_path(tmp_path) -> None:
    """Stats and every server-side error name no file or directory of the server (search-cli may)."""
    root = tmp_path.resolve()
    settings = build_index(root)
    index = Path(settings.index_dir)
    assert index.is_absolute()
    service = make_service(settings)
    client = create_app(settings, service).test_client()
    bodies = [client.get("/api/stats").get_data(as_text=True)]
    assert str(index) in json.dumps(service.stats())  # search-cli stats shows it
    (index / gen.CURRENT).write_text("gen-999999\n")  # names a generation that is not there: IndexCorrupt
    missing = create_app(Settings(index_dir=str(root / "none"), query_embedder="hash")).test_client()
    for app_client, url, status in [
        (client, "/api/search?q=x", 503),
        (client, "/api/stats", 503),
        (client, "/search?q=x", 503),
        (missing, "/api/search?q=x", 503),
        (missing, f"/api/articles/{IBM_ID}", 503),
        (missing, "/search?q=x", 503),
    ]:
        response = app_client.get(url)
        assert response.status_code == status, response.get_data(as_text=True)
        bodies.append(response.get_data(as_text=True))
    service.close()
    for body in bodies:
        assert str(root) not in body and "/tmp" not in body and str(Path.home()) not in body, body[:300]


# -- errors -----------------------------------------------------------------------------------
BAD_SEARCHES = [
    "q=x&limit=0",
    "q=x&limit=101",
    "q=x&limit=abc",
    "q=x&limit=1.5",
    "q=x&offset=-1",
    "q=x&offset=1001",
    "q=x&since=yesterday",
    "q=x&until=2020-13-01",
    "q=x&since=2021-01-01&until=2020-01-01",
    "q=" + "a" * 1001,
    "q=x&mode=fuzzy",
    "q=x&sort=oldest",
    "q=",
    "mode=keyword",
]


@pytest.mark.parametrize("query", BAD_SEARCHES)
def test_bad_search_parameters_are_400(client, query: str) -> None:
    assert_error(get_json(client, f"/api/search?{query}", 400), 400, "invalid_query")


@pytest.mark.parametrize(
    ("url", "status", "kind"),
    [
        ("/api/articles/AAAAAAAAAAA", 404, "not_found"),
        ("/api/articles/not-an-id", 404, "not_found"),
        ("/api/articles/AAAAAAAAAAA/related", 404, "not_found"),
        ("/api/articles/x%00y/related", 404, "not_found"),
        (f"/api/articles/{IBM_ID}/related?limit=0", 400, "invalid_query"),
        (f"/api/articles/{IBM_ID}/related?limit=many", 400, "invalid_query"),
        ("/api/nothing-here", 404, "not_found"),
        ("/api", 404, "not_found"),
    ],
)
def test_lookup_errors(client, url: str, status: int, kind: str) -> None:
    assert_error(get_json(client, url, status), status, kind)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("/api/search?q=x&limt=3", "'limt'"),
        ("/api/search?q=x&limit=3&page=2&Mode=keyword", "'Mode', 'page'"),
        (f"/api/articles/{IBM_ID}?limit=3", "'limit'"),
        (f"/api/articles/{IBM_ID}/related?limt=3", "'limt'"),
        ("/api/health?verbose=1", "'verbose'"),
        ("/api/stats?x=", "'x'"),
    ],
)
def test_unknown_parameters_are_named_in_a_400(client, url: str, named: str) -> None:
    body = get_json(client, url, 400)
    assert_error(body, 400, "invalid_query")
    assert named in body["error"]["message"]


def test_unknown_body_fields_are_named_in_a_400(client) -> None:
    response = client.post("/api/related", json={"text": "robots", "limt": 3})
    assert response.status_code == 400 and "'limt'" in response.get_json()["error"]["message"]


def test_wrong_method_is_405_with_allow(client) -> None:
    for method, url in (("post", "/api/search?q=x"), ("get", "/api/related"), ("delete", f"/api/articles/{IBM_ID}")):
        response = getattr(client, method)(url)
        assert response.status_code == 405 and response.mimetype == "application/json"
        assert_error(response.get_json(), 405, "method_not_allowed")
        assert response.headers["Allow"]


@pytest.mark.parametrize(
    ("kwargs", "status", "kind"),
    [
        ({"data": "text=x", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": "text=x"}, 415, "unsupported_media_type"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_query"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "invalid_query"),
        ({"json": ["a list"]}, 400, "invalid_query"),
        ({"json": {"limit": 3}}, 400, "invalid_query"),
        ({"json": {"text": "   "}}, 400, "invalid_query"),
        ({"json": {"text": 42}}, 400, "invalid_query"),
        ({"json": {"text": "x", "limit": "5"}}, 400, "invalid_query"),
        ({"json": {"text": "x", "limit": True}}, 400, "invalid_query"),
        ({"json": {"text": "x", "limit": 0}}, 400, "invalid_query"),
        ({"json": {"text": "a" * 1001}}, 400, "invalid_query"),
        ({"json": {"text": "x", "limt": 3}}, 400, "invalid_query"),
        ({"data": "[" * 1500 + "]" * 1500, "content_type": "application/json"}, 400, "invalid_query"),
        (
            {"data": '{"text": "x", "extra": ' + "[" * 1500 + "]" * 1500 + "}", "content_type": "application/json"},
            400,
            "invalid_query",
        ),
        (
            {"data": json.dumps({"text": "a" * 70_000}), "content_type": "application/json"},
            413,
            "request_entity_too_large",
        ),
    ],
)
def test_bad_related_bodies(client, kwargs: dict, status: int, kind: str) -> None:
    response = client.post("/api/related", **kwargs)
    assert response.status_code == status and response.mimetype == "application/json"
    assert_error(response.get_json(), status, kind)


def test_missing_index_is_503(tmp_path) -> None:
    settings = Settings(index_dir=str(tmp_path / "empty"), query_embedder="hash", index_embedder="hash")
    app = create_app(settings)
    client = app.test_client()
    app.extensions["search_readiness"].wait(10)
    for url in ("/api/health/ready", "/api/stats", "/api/search?q=x", f"/api/articles/{IBM_ID}"):
        assert_error(get_json(client, url, 503), 503, "index_missing")
    health = get_json(client, "/api/health")  # liveness: the process answers
    assert (health["status"], health["ready"], health["generation"]) == ("ok", False, None)
    page = client.get("/search?q=x")
    assert page.status_code == 503 and "search-cli index" in page.get_data(as_text=True)


class _Exploding:
    def search(self, *args, **kwargs):
        raise RuntimeError("secret internals")


def test_unexpected_errors_are_a_bland_500(web_settings) -> None:
    client = create_app(web_settings, _Exploding()).test_client()
    body = get_json(client, "/api/search?q=x", 500)
    assert_error(body, 500, "internal_error")
    assert "secret" not in json.dumps(body)
    page = client.get("/search?q=x")
    assert page.status_code == 500 and "secret" not in page.get_data(as_text=True)


def test_the_service_reloads_a_new_generation(tmp_path) -> None:
    settings = build_index(tmp_path)
    client = create_app(settings, make_service(settings)).test_client()
    before = get_json(client, "/api/health")
    (tmp_path / "corpus" / "950_new.md").write_text(
        '---\ntitle: "Brand new story about quokkas"\nwebUrl: "https://news.example.com/quokka"\n---\n',
        encoding="utf-8",
    )
    from search.indexer import Indexer

    Indexer(settings, HashEmbedder()).index([tmp_path / "corpus"])
    after = get_json(client, "/api/health")
    assert after["articles"] == before["articles"] + 1 and after["generation"] != before["generation"]
    assert get_json(client, "/api/search?q=quokkas&mode=keyword")["hits"][0]["title"] == "Brand new story about quokkas"


# -- fuzzing: a client can never cause a 500 --------------------------------------------------
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
PARAM = st.one_of(TEXT, st.integers(-5, 2000).map(str), st.sampled_from(["hybrid", "keyword", "semantic", "newest"]))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["q", "mode", "limit", "offset", "provider", "topic", "since", "until", "sort"]),
        PARAM,
        max_size=6,
    )
)
def test_search_never_500s(web_app, params: dict) -> None:
    with web_app.test_client() as client:
        for prefix in ("/api/search", "/search"):
            response = client.get(prefix, query_string=params)
            assert response.status_code in (200, 400), (params, response.get_data(as_text=True)[:300])
            if prefix.startswith("/api") and response.status_code == 400:
                assert_error(response.get_json(), 400, "invalid_query")


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=60),
        st.builds(json.dumps, st.dictionaries(st.sampled_from(["text", "limit"]), st.one_of(TEXT, st.integers()))),
    )
)
def test_related_text_never_500s(web_app, body) -> None:
    with web_app.test_client() as client:
        response = client.post("/api/related", data=body, content_type="application/json")
        assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]


# -- bounded responses ------------------------------------------------------------------------
LISTED = 300  # more publisher-listed items than one response carries


@pytest.fixture(scope="module")
def long_list(tmp_path_factory):
    """An index whose one main article lists LISTED related stories; yields (client, the article's id)."""
    from search.indexer import Indexer
    from search.loader import Record
    from search.urls import article_id

    urls = [f"https://news.example.com/listed-{n}" for n in range(LISTED)]
    fields = {"excerpt": "", "published": None, "provider": "Example", "provider_domain": "", "topics": ()}
    records = [Record(u, dict(fields, title=f"Listed story number {n}"), False, "code") for n, u in enumerate(urls)]
    main = Record("https://news.example.com/main", dict(fields, title="A story that lists many"), True, "code")
    records.append(Record(main.url, main.fields, True, "code", 0, tuple(urls)))
    root = tmp_path_factory.mktemp("long")
    settings = Settings(index_dir=str(root / "ix"), query_embedder="hash", index_embedder="hash")
    Indexer(settings, HashEmbedder()).index_records(records, "code")
    service = make_service(settings)
    yield create_app(settings, service).test_client(), article_id(main.url), settings
    service.close()


def test_an_article_response_carries_at_most_max_listed_related_items(long_list) -> None:
    from search.service import MAX_LISTED

    client, main_id, _ = long_list
    body = get_json(client, f"/api/articles/{main_id}")
    assert len(body["related"]) == LISTED
    assert len(body["related_articles"]) == MAX_LISTED and body["related_omitted"] == LISTED - MAX_LISTED
    assert [a["id"] for a in body["related_articles"]] == body["related"][:MAX_LISTED]


def test_the_article_page_shows_a_bounded_list_and_counts_the_rest(long_list) -> None:
    from web.pages import LISTED_SHOWN

    client, main_id, _ = long_list
    page = client.get(f"/articles/{main_id}").get_data(as_text=True)
    listed = page.split('id="listed-heading"', 1)[1]
    assert listed.count('class="story-title"') == LISTED_SHOWN
    assert f"and {LISTED - LISTED_SHOWN} more listed by the publisher" in listed


def test_show_json_is_the_article_api_dict(long_list) -> None:
    from click.testing import CliRunner

    from search.cli import main
    from search.service import MAX_LISTED

    client, main_id, settings = long_list
    result = CliRunner().invoke(main, ["show", main_id, "--json", "--index-dir", settings.index_dir])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == get_json(client, f"/api/articles/{main_id}")
    human = CliRunner().invoke(main, ["show", main_id, "--index-dir", settings.index_dir]).output
    assert f"and {LISTED - MAX_LISTED} more (not shown)" in human
