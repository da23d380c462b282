"""Property tests: hostile input never escapes the loader or the query parser as a crash.

The loader, given any bytes, text, YAML-ish front matter or JSON Lines, returns records or
raises ArticleError (``load_file`` never raises at all), and whatever records it returns can
be merged, hashed and stored: the indexer must not be the one to trip over them. The query
parser, given any string, answers or raises InvalidQuery, within a second.

Each property counts the examples it tried; run with ``-s`` to see them.
"""

from __future__ import annotations

import gzip
import json
import string
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.errors import ArticleError, InvalidQuery
from search.loader import MARKDOWN_SUFFIXES, Record, load_file, parse_markdown, records_from_mapping
from search.local import Filters, LocalReader
from search.matching import resolve
from search.merge import merge_records
from search.query import parse as parse_query
from search.store import ArticleStore

QUERY_SECONDS = 1.0  # a behaviour bound on one query, not a benchmark
CHECKS = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def report_examples():
    yield
    print("\nhypothesis examples per property: " + ", ".join(f"{k} {v}" for k, v in EXAMPLES.items()))


def run_property(name: str, prop, record_property) -> None:
    """Run a hypothesis-wrapped ``prop``, then record how many examples it tried."""
    EXAMPLES[name] = 0
    prop()
    record_property("hypothesis_examples", EXAMPLES[name])
    assert EXAMPLES[name] > 0


def tried(name: str) -> None:
    EXAMPLES[name] += 1


# -- what the loader produced must be usable downstream -----------------------------------------
def assert_usable(records: list[Record]) -> None:
    """Records merge into articles whose hashes and rows can be computed and stored."""
    assert all(isinstance(r, Record) and r.url for r in records)
    store = ArticleStore(Path(":memory:"))
    try:
        store.replace_source("source", "digest", records)
        articles = merge_records(records)
        for article in articles.values():
            assert article.title and article.content_hash and article.text_hash
        store.upsert(articles.values())
        store.commit()
        assert store.ids() == set(articles)
    finally:
        store.close()


def assert_only_article_errors(parse, *args) -> list[Record]:
    try:
        records = parse(*args)
    except ArticleError:
        return []
    assert_usable(records)
    return records


# -- strategies: YAML-ish documents -------------------------------------------------------------
KNOWN_KEYS = (
    "title", "excerpt", "webUrl", "originalUrl", "url", "publishedDateTime", "published_date", "provider",
    "topics", "images", "quality", "related", "name", "domain",
)  # fmt: skip
RAW_SCALARS = (
    "~", "null", "true", "no", "yes", "0x1F", "0o17", "1_000", "-0", ".inf", "-.inf", ".nan", "1e999", "-1e-999",
    "9" * 5000, "-" + "9" * 400, "2020-01-01", "2020-02-30", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00",
    "2021-06-01 12:00:00.123456789 +14:00", "12:30:45", "'quoted: string'", '"esc \\" \\u263a \\x00 \\ud800"',
    "!!binary aGVsbG8=", "!!binary '!!!'", "!!python/object:os.system ls", "!!python/name:os.system ''",
    "!!python/object/apply:os.system [ls]", "!!timestamp 2020-01-01", "!!int '12'", "!!float 'x'", "!!str 5",
    "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]", "!custom thing", "!<tag:yaml.org,2002:str> x", "*undefined",
    "|\n  block\n  text", ">\n  folded", "{a: [1, {b: c}]}", "[[[[[]]]]]", "{? [a]: b}", "&", "*", "@reserved", "`x`",
    "http://[::1", "https://x.org:99999/a", "ftp://[fe80::1%eth0]/", "https://EXAMPLE.com/a/?utm_source=x#frag",
    "javascript:alert(1)", "file:///etc/passwd", "'\u202eevil'", "'🚀 東京 مرحبا'",
)  # fmt: skip


PLAIN = st.text(alphabet=string.ascii_letters + string.digits + " _.", min_size=1, max_size=20).filter(
    lambda t: t[0].isalnum() and t[-1] != " "
)
PRINTABLE = st.characters(blacklist_categories=["Cc", "Cs", "Cn"])  # what YAML accepts unescaped
QUOTED = st.text(PRINTABLE, max_size=30).map(lambda t: json.dumps(t, ensure_ascii=False))
URLS = st.sampled_from([
    "https://news.example.com/a", "HTTPS://Example.COM/b/?utm_source=x#top", "http://[::1]:8080/c", "http://[::1",
    "https://x.org:99999/a", "ftp://[fe80::1%eth0]/", "x", "//host/path",
])  # fmt: skip
DATES = st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-14))])).map(str)
CLEAN = st.one_of(
    PLAIN, PLAIN, QUOTED, QUOTED, URLS.map(json.dumps), DATES, st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr), st.sampled_from(["~", "null", "true", "no", ".inf", "-.inf", ".nan", "0x1F", "1_000"]),
)  # fmt: skip
HOSTILE = st.one_of(CLEAN, st.sampled_from(RAW_SCALARS), st.text(max_size=20))  # unquoted text: often invalid YAML


def flow_value(scalar: st.SearchStrategy[str], depth: int) -> st.SearchStrategy[str]:
    """A YAML value in flow style: a scalar, a [list] or a {mapping}, maybe an alias of an anchor."""
    if depth == 0:
        return scalar
    inner = flow_value(scalar, depth - 1)
    key = st.one_of(st.sampled_from(KNOWN_KEYS), PLAIN)
    return st.one_of(
        scalar,
        scalar,
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(key, inner), max_size=4).map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
        st.sampled_from(["*one", "*many"]),  # aliases of the anchors every document defines
    )


TAGS = st.sampled_from(
    ["!!str ", "!!python/tuple ", "!!set ", "!!binary ", "!!timestamp ", "!!python/object:os.system "]
)
STYLES = {
    "clean": (CLEAN, flow_value(CLEAN, 2), st.just("")),
    "hostile": (HOSTILE, flow_value(HOSTILE, 2), st.one_of(st.just(""), st.just(""), TAGS)),
}


OTHER_KEYS = st.sampled_from([k for k in KNOWN_KEYS if k != "title"])
SHAPED = (
    "publishedDateTime: {0}", "published_date: {1}", "quality: {0}", "excerpt: {0}", "topics: [{0}, {1}, *one]",
    "topics: {0}", "provider:\n  name: {0}\n  domain: {1}", "provider: {0}", "images:\n  - url: {url}\n  - {0}",
    "related:\n  - title: {0}\n    webUrl: {url}\n    provider: {1}\n  - title: {2}\n    url: {url}\n  - {0}",
)  # fmt: skip


@st.composite
def front_matter(draw) -> str:
    """A Markdown article: --- front matter with random keys and values --- body. Two in three
    documents are valid YAML; the rest carry hostile scalars, tags, bad closing lines."""
    scalar, value, tag = STYLES[draw(st.sampled_from(["clean", "clean", "hostile"]))]
    field = st.tuples(OTHER_KEYS, tag, flow_value(scalar, 1)).map(lambda t: f"{t[0]}: {t[1]}{t[2]}")
    lines = [f"anchors: [&one {draw(scalar)}, &many [*one, *one, *one]]"]
    if draw(st.integers(0, 7)) < 7:  # hypothesis favours 0: make it the common case
        lines.append(f"title: {draw(st.one_of(PLAIN, scalar))}")
    if draw(st.integers(0, 3)) < 3:
        lines.append(f"{draw(st.sampled_from(['webUrl', 'originalUrl', 'url']))}: {draw(URLS.map(json.dumps))}")
    for shaped in SHAPED:  # the fields the loader reads, in their usual shapes but hostile values
        if draw(st.integers(0, 2)) < 2:
            lines.append(shaped.format(*(draw(scalar) for _ in range(3)), url=draw(URLS.map(json.dumps))))
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.one_of(OTHER_KEYS, OTHER_KEYS, PLAIN, scalar))
        if draw(st.integers(0, 3)) == 0:  # a block sequence of mappings
            items = draw(st.lists(st.lists(field, max_size=3), max_size=3))
            lines.append(f"{key}:" + "".join("\n  - " + ("\n    ".join(item) or "~") for item in items))
        else:
            lines.append(f"{key}: {draw(tag)}{draw(value)}")
    body = draw(st.text(max_size=200))
    closing = draw(st.sampled_from(["---", "---", "---", "---", "...", "---  ", "", "- - -"]))
    return "---\n" + "\n".join(lines) + f"\n{closing}\n{body}"


# -- strategies: JSON Lines ---------------------------------------------------------------------
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from(KNOWN_KEYS),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda xs: st.lists(xs, max_size=4) | st.dictionaries(st.text(max_size=8), xs, max_size=4),
    max_leaves=12,
)
HOSTILE_LINES = (
    '{"title": "t\\ud800", "webUrl": "https://x.org/\\udfff"}', '{"title": "t", "url": "http://[::1"}',
    '{"title": ' + "9" * 5000 + "}", "[" * 5000, '{"title": 1e999, "url": "https://x.org/a"}',
    '{"title": "t", "webUrl": "https://x.org/a", "images": ["\\udc80"], "quality": 1e400}', "[]", "null", '"x"',
)  # fmt: skip


@st.composite
def jsonl_documents(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        obj = draw(st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), JSON_VALUES, max_size=8))
        if draw(st.integers(0, 3)):
            obj["title"] = draw(st.one_of(st.text(max_size=30), JSON_SCALARS))
        if draw(st.integers(0, 3)):
            obj[draw(st.sampled_from(["webUrl", "originalUrl", "url"]))] = draw(URLS | st.text(max_size=30))
        line = json.dumps(obj, ensure_ascii=draw(st.booleans()))
        roll = draw(st.integers(0, 5))
        if roll == 0:  # lone surrogates, huge numbers, deep nesting, not an object
            line = draw(st.sampled_from(HOSTILE_LINES))
        elif roll == 1:  # truncated
            line = line[: draw(st.integers(0, len(line)))]
        lines.append(line)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


# -- strategies: arbitrary Python mappings for records_from_mapping ------------------------------
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))])
PY_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**300]),
    st.floats(), st.text(alphabet=st.characters(blacklist_categories=[])), st.binary(max_size=20),
    st.dates(), st.datetimes(), st.datetimes(timezones=ZONES), st.sampled_from([date.min, date.max, datetime.min]),
    st.sampled_from(["http://[::1", "https://x.org:70000/", "ftp://[fe80::1%eth0]/", "\ud800", "https://ok.org/a"]),
)  # fmt: skip
KEYS = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
PY_VALUES = st.recursive(
    PY_SCALARS, lambda xs: st.lists(xs, max_size=4) | st.dictionaries(KEYS, xs, max_size=4), max_leaves=15
)


# -- loader properties --------------------------------------------------------------------------
SUFFIXES = st.sampled_from(
    [*MARKDOWN_SUFFIXES, ".jsonl", ".ndjson", ".MD", ".JSONL", ".json", ".csv", ".rss", ".atom", ".jsonl.gz", ""]
)


def test_load_file_never_raises_on_any_bytes(record_property):
    @settings(CHECKS, max_examples=400)
    @given(
        data=st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(lambda t: t.encode("utf-8"))),
        suffix=SUFFIXES,
        front=st.booleans(),
    )
    def prop(data: bytes, suffix: str, front: bool) -> None:
        tried("load_file(bytes)")
        data = b"---\n" + data if front else data
        result = load_file(f"article{suffix}", data)  # must not raise at all
        assert all(isinstance(e, ArticleError) for e in result.errors)
        assert result.records or result.errors
        assert_usable(result.records)

    run_property("load_file(bytes)", prop, record_property)


def test_parse_markdown_raises_only_article_error_on_any_text(record_property):
    @settings(CHECKS, max_examples=300)
    @given(text=st.text(max_size=400), prefix=st.sampled_from(["", "---\n", "---\ntitle: x\n", "---\nexcerpt: |\n"]))
    def prop(text: str, prefix: str) -> None:
        tried("parse_markdown(text)")
        assert_only_article_errors(parse_markdown, prefix + text, "any.md")

    run_property("parse_markdown(text)", prop, record_property)


def test_yaml_front_matter_raises_only_article_error(record_property):
    @settings(CHECKS, max_examples=600)
    @given(doc=front_matter())
    def prop(doc: str) -> None:
        tried("YAML front matter")
        assert_only_article_errors(parse_markdown, doc, "front.md")
        result = load_file("front.md", doc.encode("utf-8", "surrogatepass"))
        assert all(isinstance(e, ArticleError) for e in result.errors)
        assert_usable(result.records)

    run_property("YAML front matter", prop, record_property)


def test_jsonl_streams_never_raise(record_property):
    @settings(CHECKS, max_examples=300)
    @given(data=jsonl_documents())
    def prop(data: bytes) -> None:
        tried("JSON Lines")
        result = load_file("feed.jsonl", data)
        assert all(isinstance(e, ArticleError) for e in result.errors)
        assert_usable(result.records)

    run_property("JSON Lines", prop, record_property)


def test_json_arrays_csv_tables_and_feeds_never_raise(record_property):
    """The same hostile records as a JSON array, CSV rows under a header, or RSS items (maybe gzipped)."""

    @settings(CHECKS, max_examples=300)
    @given(data=jsonl_documents(), kind=st.sampled_from(["json", "csv", "rss"]), packed=st.booleans())
    def prop(data: bytes, kind: str, packed: bool) -> None:
        tried("JSON array, CSV, RSS")
        lines = data.split(b"\n")
        blob = {
            "json": b"[" + b",\n".join(lines) + b"]",
            "csv": b"title,url,date,category,authors\n" + data,
            "rss": b'<rss version="2.0"><channel><title>t</title>'
            + b"".join(b"<item><title>" + line + b"</title><link>https://x.org/a</link></item>" for line in lines)
            + b"</channel></rss>",
        }[kind]
        result = load_file(f"export.{kind}" + (".gz" if packed else ""), gzip.compress(blob) if packed else blob)
        assert all(isinstance(e, ArticleError) for e in result.errors)
        assert result.records or result.errors
        assert_usable(result.records)

    run_property("JSON array, CSV, RSS", prop, record_property)


def test_records_from_mapping_raises_only_article_error(record_property):
    # Integers over 4300 digits have no repr(), so hypothesis could not report one: they are
    # put in by name instead.
    huge = st.none() | st.sampled_from(["title", "excerpt", "quality", "provider", "topics", "published_date"])

    @settings(CHECKS, max_examples=400)
    @given(meta=st.dictionaries(KEYS, PY_VALUES, max_size=10), title=st.none() | PY_SCALARS,
           url=st.none() | PY_SCALARS, huge_field=huge)  # fmt: skip
    def prop(meta: dict, title, url, huge_field) -> None:
        tried("records_from_mapping")
        if title is not None:
            meta["title"] = title
        if url is not None:
            meta["webUrl"] = url
        if huge_field:
            meta[huge_field] = 10**5000
        assert_only_article_errors(records_from_mapping, meta, "code", 1)

    run_property("records_from_mapping", prop, record_property)


# -- query parser properties --------------------------------------------------------------------
SYNTAX = [
    '"', "'", "(", ")", "[", "]", "{", "}", ":", "^", "~", "*", "?", "\\", "/", "-", "+", "!", "&&", "||",
    "AND", "OR", "NOT", "ANDNOT", "ANDMAYBE", "TO", "title:", "excerpt:", "provider:", "topic:", "domain:", "site:",
    "source:", "topics:", "published:", "id:", "url:", "quality:", "nosuchfield:", "provider_exact:", "*:",
    "title:(", "[a TO", "TO b]", "{* TO}", "^2", "^-1", "^1e400", "~2", "\x00", "\x1b[31m", "\r\n", "\t", "\u200b",
    "\u202e", "\u2028", "\ufeff", "\ud7ff", "🚀", "👩‍👩‍👧", "مرحبا", "שלום", "東京", "Zürich", "ǅ", "ﬁ", "export",
    "controls", "facial", "recognition", "robotaxi", "IBM", "AI", "2020", "2020-01-01", "0", "-1", "1e999",
]  # fmt: skip
WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
TOKENS = st.one_of(st.sampled_from(SYNTAX), WORD)
SOUP = st.lists(st.tuples(TOKENS, st.sampled_from(["", " ", "  ", "\n"])), max_size=40).map(
    lambda parts: "".join(t + sep for t, sep in parts)
)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300)


def timed(call, *args, **kwargs):
    """``call(*args, **kwargs)`` within QUERY_SECONDS. A call over the bound is timed once more and
    the faster run counts: a shared CI machine may pause the process, but a query that is slow
    by nature (quadratic parsing, say) is slow both times."""
    for _ in range(2):
        started = time.perf_counter()
        result = call(*args, **kwargs)
        took = time.perf_counter() - started
        if took < QUERY_SECONDS:
            return result
    raise AssertionError(f"{took:.2f}s (twice over {QUERY_SECONDS}s) for {args!r:.200}")


def test_service_search_raises_only_invalid_query(service, record_property):
    @settings(CHECKS, max_examples=500)
    @given(
        q=st.one_of(SOUP, ANY_TEXT, st.sampled_from(SYNTAX)),
        mode=st.sampled_from(["keyword", "keyword", "hybrid", "semantic"]),
    )
    def prop(q: str, mode: str) -> None:
        tried("SearchService.search(q)")
        try:
            results = timed(service.search, q, mode=mode, limit=10)
        except InvalidQuery:
            return
        assert len(results.hits) <= 10

    run_property("SearchService.search(q)", prop, record_property)


FILTER_VALUES = (
    "2020-01-01", "2020-13-45", "0001-01-01T00:00+01:00", "9999-12-31", "2021-06-01T12:00:00Z", "Reuters", "AI",
    "\x00", "🚀", "%", "_", "' OR 1=1 --",
)  # fmt: skip


def test_service_filters_raise_only_invalid_query(service, record_property):
    """Filters, sorting and paging as a web request can send them (no lone surrogates: see below)."""
    text = st.none() | ANY_TEXT | st.sampled_from(FILTER_VALUES)

    @settings(CHECKS, max_examples=300)
    @given(q=SOUP, provider=text, topic=text, since=text, until=text, sort=st.sampled_from(["relevance", "newest"]),
           limit=st.integers(-2, 102), offset=st.integers(-2, 1002))  # fmt: skip
    def prop(q, provider, topic, since, until, sort, limit, offset) -> None:
        tried("search filters")
        try:
            timed(service.search, q or "x", mode="keyword", provider=provider, topic=topic, since=since, until=until,
                  sort=sort, limit=limit, offset=offset)  # fmt: skip
        except InvalidQuery:
            return

    run_property("search filters", prop, record_property)


@pytest.mark.parametrize("field", ["provider", "topic"])
def test_filter_with_a_lone_surrogate_is_an_invalid_query(service, field):
    with pytest.raises(InvalidQuery):
        service.search("export", mode="hybrid", **{field: "\udcff"})


@pytest.fixture
def reader(seed_index):
    reader = LocalReader.open(seed_index.index_path)  # as the service opens a generation
    yield reader
    reader.close()


def test_keyword_side_takes_long_queries_in_bounded_time(reader, service, record_property):
    """The service refuses over 1,000 characters, so 1,001 to 10,000 go to the parser and the keyword side."""
    chunk = st.one_of(SOUP, ANY_TEXT, st.sampled_from(SYNTAX)).filter(bool)
    long = st.tuples(chunk, st.integers(1001, 10_000)).map(lambda t: (t[0] * (10_000 // len(t[0]) + 1))[: t[1]])
    worst = st.sampled_from(["x" * 10_000, "1" * 10_000, "(" * 10_000, '"a ' * 3333, "title:" * 1666, "a:b" * 3333])

    @settings(CHECKS, max_examples=120)
    @given(q=st.one_of(long, worst))
    def prop(q: str) -> None:
        tried("KeywordIndex long queries")
        try:
            plan = timed(parse_query, q)
        except InvalidQuery:
            return
        words = timed(resolve, plan, reader.terms, reader.known, reader.vocabulary)
        restriction = timed(reader.restrict, plan, Filters())
        found = timed(reader.keyword_match, words.groups, len(words.groups), words.scoring, restriction)
        assert len(found.keys) == len(found.scores) <= reader.size

    run_property("KeywordIndex long queries", prop, record_property)
    with pytest.raises(InvalidQuery, match="limit is 1000"):
        service.search("x" * 1001, mode="keyword")
