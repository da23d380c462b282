"""Each input format, read record by record; the export fixtures in tests/data/exports hold one set of articles."""

import gzip
import io
import json
from datetime import UTC, datetime

import pytest

from conftest import ROOT
from search.formats import CHUNK, MAX_RECORD_BYTES, format_of, guess_format
from search.loader import MAX_KEPT, Source, SourceReader, load_file
from search.mapping import html_text
from search.merge import merge_records

EXPORTS = ROOT / "tests" / "data" / "exports"


def articles(records) -> dict[str, dict]:
    """Merged articles as dicts, without the provider (a feed names its channel as the provider)."""
    drop = ("provider", "provider_domain")
    return {a.id: {k: v for k, v in a.to_dict().items() if k not in drop} for a in merge_records(records).values()}


def read(name: str, data: bytes) -> SourceReader:
    reader = SourceReader(Source(name, name, format_of(name)), data=data)
    reader.records = list(reader)
    return reader


@pytest.fixture(scope="module")
def expected() -> dict[str, dict]:
    result = load_file(EXPORTS / "news.jsonl")
    assert result.ok and not result.warnings
    return articles(result.records)


@pytest.mark.parametrize("name", ["news.csv", "news.rss", "news.atom"])
def test_every_export_format_gives_the_same_articles(name, expected):
    result = load_file(EXPORTS / name)
    assert result.ok and not result.warnings, result.errors + result.warnings
    assert articles(result.records) == expected


def test_expected_fields_of_the_exports(expected):
    chess = next(a for a in expected.values() if "chess" in a["url"])
    assert chess["excerpt"] == "She beat three grandmasters on the way to the final round."
    assert chess["published"] == datetime(2023, 3, 6, tzinfo=UTC).isoformat()
    assert chess["topics"] == ["SPORTS"] and chess["authors"] == ["Lee Park, Wire Service"]
    assert sum(1 for a in expected.values() if not a["authors"]) == 1


def test_feeds_name_their_channel_as_provider():
    for name in ("news.rss", "news.atom"):
        story = merge_records(load_file(EXPORTS / name).records)
        assert {(a.provider, a.provider_domain) for a in story.values()} == {("Example News", "news.example.com")}


def test_a_json_object_wrapping_a_list_of_articles():
    result = load_file(EXPORTS / "newsapi.json")
    assert result.ok
    first = merge_records(result.records)
    bridge = next(a for a in first.values() if "bridge" in a.url)
    assert (bridge.provider, bridge.authors, bridge.image) == (
        "Example News",
        ("Ana Ruiz",),
        "https://news.example.com/img/bridge.jpg",
    )


def test_gzip_is_read_through(expected):
    plain = (EXPORTS / "news.jsonl").read_bytes()
    reader = read("news.jsonl.gz", gzip.compress(plain))
    assert not reader.errors and articles(reader.records) == expected


def test_jsonl_has_no_file_size_limit_and_skips_bad_lines_with_their_numbers():
    line = json.dumps({"title": "T {}", "url": "https://x.org/{}", "excerpt": "e" * 300})
    lines = [line.replace("{}", str(i)) for i in range(4000)]  # about 1.3 MB
    lines[10] = "{not json"
    lines[20] = json.dumps({"title": "x" * (MAX_RECORD_BYTES + 10), "url": "https://x.org/big"})
    lines[30] = "[1, 2]"
    lines[40] = json.dumps({"url": "https://x.org/untitled"})
    data = "\n".join(lines).encode()
    assert len(data) > MAX_RECORD_BYTES
    reader = read("big.jsonl", data)
    assert [e.line for e in reader.errors] == [11, 21, 31, 41]
    assert "invalid JSON" in str(reader.errors[0]) and "1 MiB" in str(reader.errors[1])
    assert "not a JSON object" in str(reader.errors[2]) and "no title" in str(reader.errors[3])
    assert "--field title=" in str(reader.errors[3])
    assert len(reader.records) == 3996 and reader.records[-1].line == 4000


def test_json_array_is_streamed_across_chunks():
    items = [{"title": f"T{i}", "url": f"https://x.org/{i}", "excerpt": "é" * 50} for i in range(2000)]
    data = json.dumps(items, indent=1, ensure_ascii=False).encode()
    assert len(data) > 3 * CHUNK
    reader = read("all.json", data)
    assert not reader.errors and len(reader.records) == 2000
    starts = [n for n, line in enumerate(data.decode().splitlines(), start=1) if line == " {"]
    assert [r.line for r in reader.records[:3]] == starts[:3]  # where each item starts


def test_json_array_errors():
    bad_item = read(
        "a.json", b'[{"title": "ok", "url": "https://x.org/a"}, 5, {"title": "b", "url": "https://x.org/b"}]'
    )
    assert len(bad_item.records) == 2 and "not a JSON object" in str(bad_item.errors[0])
    broken = read("b.json", b'[{"title": "ok", "url": "https://x.org/a"},\n {"title": ]')
    assert len(broken.records) == 1 and broken.errors[0].line == 2 and "rest of the file" in str(broken.errors[0])
    assert "not a JSON array" in str(read("c.json", b"42").errors[0])


def test_csv_rows_and_bad_rows():
    data = (
        b"headline,link,date\n"
        b'"Two\nlines",https://x.org/1,2020-01-01\n'
        b"Too,many,cells,here\n"
        b"\n"
        b"Caf\xe9,https://x.org/2,2020-01-02\n"
        b"Fine,https://x.org/3,not a date\n"
    )
    reader = read("t.csv", data)
    assert [r.fields["title"] for r in reader.records] == ["Two lines", "Fine"]
    assert [r.line for r in reader.records] == [2, 7]
    assert [(e.line, e.reason.split(" ")[0]) for e in reader.errors] == [(4, "4"), (6, "not")]
    assert len(reader.warnings) == 1 and reader.warnings[0].line == 7 and "not a date" in str(reader.warnings[0])


def test_csv_without_header_and_html_that_is_not_a_feed():
    assert "no CSV header" in str(read("e.csv", b"\n\n").errors[0])
    page = read("page.xml", b"<html><body><p>not a feed</p></body></html>")
    assert not page.records and "not an RSS or Atom feed" in str(page.errors[0])


@pytest.mark.parametrize(
    ("head", "fmt"),
    [(b"---\ntitle: x", "markdown"), (b"\xef\xbb\xbf  [{", "json"), (b'{"a":1}\n', "jsonl"), (b"<?xml", "feed"),
     (b"title,url\n", "csv")],
)  # fmt: skip
def test_guess_format(head, fmt):
    assert guess_format(head) == fmt


def test_standard_input_is_guessed_and_gunzipped(expected):
    stream = io.BytesIO(gzip.compress((EXPORTS / "news.rss").read_bytes()))
    reader = SourceReader(Source("-"), stdin=stream)
    records = list(reader)
    assert not reader.errors and articles(records) == expected
    assert reader.key.startswith("<stdin ") and reader.name == "<stdin>" and records[0].source == reader.key
    assert reader.digest and not stream.closed


def test_digest_is_of_the_bytes_read():
    data = (EXPORTS / "news.csv").read_bytes()
    assert read("a.csv", data).digest == read("b.csv", data).digest != read("c.csv", data + b"\n").digest


def test_html_text():
    assert html_text("<p>A &amp; <b>B</b></p>\n<p>C</p>") == "A & B C"


def test_a_reader_keeps_the_first_errors_and_counts_them_all():
    data = b"\n".join([b"{bad"] * (MAX_KEPT + 500) + [b'{"title": "ok", "url": "https://x.org/ok"}'])
    reader = read("noisy.jsonl", data)
    assert len(reader.records) == 1
    assert reader.error_count == MAX_KEPT + 500 and len(reader.errors) == MAX_KEPT
    assert reader.errors[-1].line == MAX_KEPT


def test_json_array_item_over_the_limit_stops_with_a_reason():
    big = json.dumps({"title": "x" * (MAX_RECORD_BYTES + 10), "url": "https://x.org/big"})
    data = ('[{"title": "ok", "url": "https://x.org/a"}, ' + big + "]").encode()
    reader = read("big.json", data)
    assert len(reader.records) == 1 and "over the 1 MiB limit" in str(reader.errors[0])
    skipped = read("big2.json", ("[" + big + ', {"title": "after", "url": "https://x.org/b"}]').encode())
    assert [r.fields["title"] for r in skipped.records] == ["after"] and "over the 1 MiB" in str(skipped.errors[0])


def test_a_feed_entry_with_a_relative_link_takes_the_channel_address(tmp_path):
    feed = tmp_path / "f.rss"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title><link>https://feed.example/</link>'
        "<item><title>Relative</title><link>/2024/story</link></item></channel></rss>"
    )
    result = load_file(feed)
    assert [r.url for r in result.records] == ["https://feed.example/2024/story"] and not result.warnings


def test_a_url_that_is_no_web_address_is_indexed_with_a_warning(tmp_path):
    lines = tmp_path / "a.jsonl"
    lines.write_text(
        json.dumps({"title": "Relative", "url": "/relative/path"})
        + "\n"
        + json.dumps({"title": "Web", "url": "https://x.org/w"})
        + "\n"
    )
    result = load_file(lines)
    assert len(result.records) == 2 and len(result.warnings) == 1
    assert "'/relative/path' is not a web address" in str(result.warnings[0])
