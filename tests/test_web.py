"""The HTML pages: search, facets, filters, paging, the article page, error pages, escaping."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup

from conftest import fake_settings
from search.embedding import HashEmbedder
from search.indexer import Indexer
from search.service import SearchService
from web.app import create_app
from web.filters import iso_date, nice_date, safe_url
from web.highlight import highlight, query_terms, snippet, stem
from web.inputs import READINESS_KEY, SERVICE_KEY
from webutil import IBM_ID, IBM_TITLE, XSS_ID, XSS_TITLE


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def links(body: str, css_class: str | None = None) -> list[str]:
    pattern = r'<a(?: class="%s")? href="([^"]*)"' % (re.escape(css_class) if css_class else '[^"]*')
    return [html.unescape(h) for h in re.findall(pattern, body)]


def params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def hit_titles(body: str) -> list[str]:
    titles = re.findall(r'<li class="hit">\s*<h2>(?:<a [^>]*>)?(.*?)(?:</a>)?</h2>', body, re.S)
    return [html.unescape(re.sub(r"</?mark>", "", t)) for t in titles]


# -- highlighting (pure) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "query", "expected"),
    [
        ("New export controls", "export controls", "New <mark>export controls</mark>"),
        ("The control of exports", "controls export", "The <mark>control</mark> of <mark>exports</mark>"),
        ("Controlled, CONTROLLING", "control", "<mark>Controlled</mark>, <mark>CONTROLLING</mark>"),
        ("cats in a category", "cat", "<mark>cats</mark> in a category"),
        ("new policies", "policy", "new <mark>policies</mark>"),
        ("the end of the road", "the road", "the end of the <mark>road</mark>"),
        ("IBM's plan", "title:ibm", "<mark>IBM</mark>&#39;s plan"),
        ("nothing here", "", "nothing here"),
        ("Politicians in U.S. politics", "topic:Politics", "Politicians in U.S. politics"),  # a filter, not words
        ("World news from the U.S.", 'topic:"World News" U.S.', "World news from the <mark>U.S</mark>."),
        ("AP reports", "provider:AP title:reports", "AP <mark>reports</mark>"),
        ("FBI agents and the F.B.I.", "F.B.I.", "<mark>FBI</mark> agents and the <mark>F.B.I</mark>."),
        ("U.S. troops near us", "US troops", "<mark>U.S</mark>. <mark>troops</mark> near us"),
    ],
)
def test_highlight_marks_query_words(text: str, query: str, expected: str) -> None:
    assert highlight(text, query) == Markup(expected)


def test_highlight_escapes_first_and_never_marks_inside_entities() -> None:
    assert highlight("<b>control</b>", "control") == "&lt;b&gt;<mark>control</mark>&lt;/b&gt;"
    for query in ("lt gt", "amp", "quot 34 39", "script"):
        out = str(highlight("a < b > c & \"d\" 'e'", query))
        assert "<mark>" not in out, query
    assert str(highlight("<script>alert(1)</script>", "script")) == (
        "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;"
    )


@given(st.text(max_size=80), st.text(max_size=30))
def test_highlight_only_adds_marks(text: str, query: str) -> None:
    plain = str(highlight(text, query)).replace("<mark>", "").replace("</mark>", "")
    assert "<" not in plain and ">" not in plain  # the marks are the only tags
    assert html.unescape(plain) == text


def test_highlight_marks_the_correction_of_a_misspelled_word() -> None:
    assert highlight("A vaccine for the virus", "vacine virus", {"vacine": "vaccine"}) == Markup(
        "A <mark>vaccine</mark> for the <mark>virus</mark>"
    )


def test_query_terms_and_stem() -> None:
    assert query_terms('"export controls" AND title:ibm OR the') == ("export", "control", "ibm")
    assert [stem(w) for w in ("controls", "boxes", "policies", "press", "walking", "used")] == [
        "control",
        "box",
        "policy",
        "press",
        "walk",
        "used",
    ]


def test_snippet_and_filters() -> None:
    assert snippet("short") == "short"
    long_text = "word " * 100
    cut = snippet(long_text, 50)
    assert cut.endswith("…") and len(cut) <= 51
    assert safe_url("https://example.com/a") == "https://example.com/a"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.com", "ftp://x", "", None, "http://"):
        assert safe_url(bad) is None
    assert iso_date("2020-01-31T00:00:00Z") == "2020-01-31" and iso_date("nonsense") == ""
    assert nice_date(None) == ""


# -- search page ------------------------------------------------------------------------------
def test_home_page_has_an_empty_search_box(client) -> None:
    body = page(client, "/")
    assert 'name="q" value=""' in body and "Search the news" in body
    assert "Search the news" in page(client, "/search?q=+")


def test_home_page_examples_come_from_the_live_index(tmp_path) -> None:
    """The example searches are the index's most frequent topics, and the newest stories are listed."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stories = [("Quokkas", 5, "2021-01-0{}"), ("Wombats", 3, "2020-06-0{}"), ("Echidnas", 2, "2019-03-0{}")]
    for topic, count, day in stories:
        for n in range(1, count + 1):
            (corpus / f"{topic}-{n}.md").write_text(
                f'---\ntitle: "{topic} story {n}"\nwebUrl: "https://x.example/{topic}/{n}"\n'
                f'publishedDateTime: "{day.format(n)}T10:00:00Z"\ntopics: ["{topic}"]\n---\n',
                encoding="utf-8",
            )
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, HashEmbedder()).index([corpus])
    service = SearchService(settings, HashEmbedder())
    try:
        client = create_app(settings, service).test_client()
        body = page(client, "/")
        examples = re.search(r'<p class="examples">(.*?)</p>', body, re.S).group(1)
        # an example is its topic as a filter, newest first, not the topic's name searched as words
        assert [params(u)["q"] for u in links(examples)] == ['topic:"Quokkas"', 'topic:"Wombats"', 'topic:"Echidnas"']
        assert {params(u)["sort"] for u in links(examples)} == {"newest"}
        wombats = page(client, html.unescape(links(examples)[1]))
        assert "3 articles in 3 stories" in wombats and "<mark>" not in wombats
        assert re.findall(r"<h2><a [^>]*>([^<]+)</a></h2>", wombats) == [f"Wombats story {n}" for n in (3, 2, 1)]
    finally:
        service.close()
    assert "Quokkas</a>, <a" in examples and "Wombats</a> or <a" in examples
    newest = re.search(r'<section class="newest".*?</section>', body, re.S).group(0)
    assert re.findall(r'class="story-title"[^>]*>([^<]+)<', newest) == [f"Quokkas story {n}" for n in (5, 4, 3)]
    assert "export controls" not in body  # no example hard-coded from the seed corpus


def test_home_page_without_an_index_has_no_examples(tmp_path) -> None:
    settings = fake_settings(tmp_path / "none")
    service = SearchService(settings, HashEmbedder())
    body = page(create_app(settings, service).test_client(), "/")
    assert "Search the news" in body and 'class="examples"' not in body and 'class="newest"' not in body


def test_search_page_shows_highlighted_hits_with_more_like_this(client) -> None:
    body = page(client, "/search?q=export+controls")
    assert 'name="q" value="export controls"' in body
    assert IBM_TITLE in hit_titles(body)
    assert "<mark>export controls</mark>" in body
    assert f"/articles/{IBM_ID}?q=export+controls" in links(body, "more")
    assert re.search(r'<h1 class="visually-hidden">Results for “export controls”</h1>', body)
    assert re.search(r"<strong>\d+</strong> (stories|story)", body)
    assert '<a href="/search?q=export+controls&amp;mode=hybrid" class="active" aria-current="page">Hybrid</a>' in body


def test_more_like_this_leads_back_to_the_same_results(client) -> None:
    """The article page's way back returns to the search it came from: mode, sort, filters, grouping and page."""
    search = "/search?q=recognition&mode=keyword&sort=newest&collapse=false&limit=2&page=2&since=2020-01-01"
    body = page(client, search)
    more = [html.unescape(u) for u in re.findall(r'<a class="more" href="([^"]+)"', body)]
    assert more and all(params(u) == params(search) for u in more)
    article = page(client, more[0])
    back = re.search(r'<nav class="crumbs">\s*<a href="([^"]+)"', article).group(1)
    assert params(html.unescape(back)) == params(search) and urlsplit(html.unescape(back)).path == "/search"


def test_a_new_query_or_date_range_keeps_every_article_shown(client) -> None:
    body = page(client, "/search?q=recognition&collapse=false")
    header = re.search(r'<form class="searchbox".*?</form>', body, re.S).group(0)
    dates = re.search(r'<form class="dates".*?</form>', body, re.S).group(0)
    for form in (header, dates):
        assert '<input type="hidden" name="collapse" value="false">' in form


def test_mode_switch_keeps_the_query(client) -> None:
    body = page(client, "/search?q=export+controls&mode=keyword")
    modes = {params(u)["mode"]: params(u) for u in links(body) if "mode=" in u and "/search" in u}
    assert set(modes) >= {"hybrid", "semantic"} and all(p["q"] == "export controls" for p in modes.values())
    assert 'class="active" aria-current="page">Keyword</a>' in body
    assert hit_titles(body)[0] == IBM_TITLE  # the keyword side ranks the story naming both words first


def test_facet_link_adds_a_filter_and_the_chip_removes_it(client, web_service) -> None:
    body = page(client, "/search?q=facial+recognition")
    facet_links = [u for u in links(body, "label") if "provider=" in u]
    assert facet_links, "provider facets are links"
    assert re.search(r'class="label"[^>]*>[^<]+</a><span class="count">\d+</span>', body)
    url = next(u for u in facet_links if params(u)["provider"] == "Reuters")
    filtered = page(client, url)
    expected = web_service.search("facial recognition", provider="Reuters")
    assert hit_titles(filtered) == [h.article.title for h in expected.hits]
    assert "Provider: Reuters" in filtered
    remove = [u for u in links(filtered) if "provider" not in params(u) and params(u).get("q") == "facial recognition"]
    assert remove, "an active filter has a link that removes it"


def test_topic_facet_and_date_range(client) -> None:
    body = page(client, "/search?q=recognition&topic=Policy&since=2020-09-01&until=2020-09-30")
    assert "Topic: Policy" in body and "From: 2020-09-01" in body
    assert 'name="since" value="2020-09-01"' in body and 'name="until" value="2020-09-30"' in body
    dates = re.findall(r'<time datetime="(\d{4}-\d\d-\d\d)', body)
    assert dates and all("2020-09-01" <= d <= "2020-09-30" for d in dates)
    assert "Clear all" in body


def test_sort_by_newest(client) -> None:
    body = page(client, "/search?q=recognition&sort=newest&mode=keyword")
    dates = re.findall(r'<li class="hit">.*?<time datetime="([^"]+)"', body, re.S)
    assert len(dates) > 2 and dates == sorted(dates, reverse=True)


def test_pagination(client, web_service) -> None:
    total = web_service.search("recognition", mode="keyword", limit=2).total
    assert total > 4
    body = page(client, "/search?q=recognition&mode=keyword&limit=2&page=2")
    assert f"3–4 of <strong>{total}</strong>" in body
    assert '<ol class="hits" start="3">' in body
    assert '<span class="current" aria-current="page">2</span>' in body
    prev = re.search(r'<a class="step" href="([^"]+)" rel="prev">', body)
    assert prev and params(html.unescape(prev.group(1)))["page"] == "1"
    assert params(html.unescape(prev.group(1)))["limit"] == "2"


def test_no_results_suggests_what_to_try(client) -> None:
    body = page(client, "/search?q=zzqx+wvvy+kkpt&mode=keyword&provider=Reuters")
    assert "No stories match" in body
    assert any(params(u).get("mode") == "semantic" for u in links(body))
    assert any("provider" not in params(u) and params(u).get("q") for u in links(body) if "/search" in u)
    assert "Use fewer words" in body


# -- article page -----------------------------------------------------------------------------
def test_article_page(client, web_service) -> None:
    body = page(client, f"/articles/{IBM_ID}?q=export")
    article = web_service.get(IBM_ID)
    assert f"<h1>{html.escape(IBM_TITLE)}</h1>" in body.replace("&#39;", "'")
    assert "Reuters" in body and "20 Sep 2020" in body and "Computer Vision" in body
    assert f'href="{article.url}"' in body and "Read the story on cn.reuters.com" in body
    assert 'class="lead-image"' in body
    assert "<mark>export</mark>" in body and "Back to results" in body
    related = re.search(r'<section class="related" .*?</section>', body, re.S).group(0)
    assert related.count("<li>") >= 1
    listed = re.search(r'<section class="related listed" .*?</section>', body, re.S).group(0)
    assert "Montreal should restrict police use of facial recognition technology" in html.unescape(listed)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/articles/AAAAAAAAAAA", 404),
        ("/articles/not-an-id", 404),
        ("/articles/..%2F..%2Fetc", 404),
        ("/no/such/page", 404),
    ],
)
def test_not_found_pages_speak_to_editors(client, url: str, status: int) -> None:
    body = page(client, url, status)
    assert "We can't find that page" in body and "headline" in body
    assert "search-cli" not in body and "article id" not in body  # no operator's or developer's words
    form = re.search(r'<main.*?<form class="searchbox" action="/search"', body, re.S)
    assert form, "the page offers a search"


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("q=x&limit=0", "limit=0"),
        ("q=x&limit=abc", "not a whole number"),
        ("q=x&since=2020-13-45", "not a date"),
        ("q=x&mode=fuzzy", "mode=&#39;fuzzy&#39;"),
        ("q=x&sort=oldest", "sort"),
        ("q=" + "a" * 1001, "1001 characters"),
        ("q=x&page=0", "page=0"),
        ("q=x&page=999", "page=999 is out of range"),
    ],
)
def test_bad_input_renders_a_400_page(client, query: str, needle: str) -> None:
    body = page(client, f"/search?{query}", 400)
    assert needle in body and "didn't work" in body


def test_wrong_method_renders_a_405_page(client) -> None:
    response = client.post("/search?q=x")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert "That request didn't work" in response.get_data(as_text=True) and response.headers["Allow"]


# -- safety -----------------------------------------------------------------------------------
def test_hostile_article_is_shown_as_text(client) -> None:
    body = page(client, "/search?q=control+panels&mode=keyword")
    assert XSS_TITLE in hit_titles(body)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script" not in body
    assert "&lt;i&gt;Evil&lt;/i&gt; News" in body and "<img src=x" not in body
    assert "javascript:" not in body
    article = page(client, f"/articles/{XSS_ID}")
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in article
    assert "javascript:" not in article and "<script" not in article and "Read the story" not in article


def test_reflected_input_is_escaped(client) -> None:
    body = page(client, "/search?q=%3Cscript%3Ealert(1)%3C/script%3E&provider=%22%3E%3Cb%3E")
    assert "<script" not in body and '"><b>' not in body
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in body


def test_security_headers(client) -> None:
    response = client.get("/")
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- the app factory --------------------------------------------------------------------------
def test_create_app_builds_one_service_and_never_debugs(web_settings, monkeypatch) -> None:
    made: list[SearchService] = []

    class Counted(SearchService):
        def __init__(self, *args, **kwargs) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("web.app.SearchService", Counted)
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(web_settings)
    assert app.debug is False
    assert app.extensions[READINESS_KEY].wait(30)  # it warmed up the service it made
    client = app.test_client()
    for url in ("/search?q=export&mode=keyword", "/api/search?q=robots", "/api/health", "/"):
        assert client.get(url).status_code == 200
    assert len(made) == 1 and made[0].settings == web_settings  # one service for the app's lifetime
    assert app.extensions[SERVICE_KEY] is made[0]
    made[0].close()


def test_no_results_page_offers_a_did_you_mean_from_the_index(client) -> None:
    body = page(client, '/search?q="export+contrls"')
    assert "No stories match" in body and "Did you mean" in body and "export controls" in body
    corrected = page(client, "/search?q=export+contrlos")
    assert "Including results for" in corrected and IBM_TITLE in hit_titles(corrected)


def test_the_last_page_that_can_be_reached_says_so(client) -> None:
    from types import SimpleNamespace

    from web.pages import Pager

    capped = Pager.of(SimpleNamespace(total=1821, limit=10, offset=1000))
    assert (capped.page, capped.last, capped.capped) == (101, 101, True)
    assert not Pager.of(SimpleNamespace(total=95, limit=10, offset=90)).capped
    body = page(client, "/search?q=recognition&page=102", 400)
    assert "pages 1 to 101 can be browsed" in body and "sort by newest" in body


def test_a_query_string_that_is_not_utf8_is_refused(client) -> None:
    assert "not valid UTF-8" in page(client, "/search?q=hurricane%FF", 400)
    response = client.get("/api/search?q=caf%E9")
    assert response.status_code == 400 and "not valid UTF-8" in response.get_json()["error"]["message"]
    assert client.get("/api/search?q=caf%C3%A9").status_code == 200  # café, encoded as UTF-8


@pytest.mark.parametrize("value", ["5_0", "+5", "５", "٥", " 5"])
def test_numbers_are_ascii_digits(client, value) -> None:
    response = client.get("/api/search", query_string={"q": "recognition", "limit": value})
    assert response.status_code == 400 and "is not a whole number" in response.get_json()["error"]["message"]
