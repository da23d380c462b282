"""The real HuffPost export (../shared): indexed with no mapping written by hand, and the same articles
whether it arrives as JSON Lines, gzipped, on standard input, as CSV or as an RSS feed.

The converted copies are written from the real file at test time (nothing from ../shared is
committed); the hash embedder keeps indexing model-free.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner

from conftest import SHARED, shared_or_skip
from search import generations as gen
from search.cli import main
from search.loader import Source, SourceReader, find_sources
from search.merge import merge_records
from search.store import ArticleStore

HUFFPOST = SHARED / "corpus" / "huffpost-10k" / "news_category_v3_first10k.jsonl"
DISTINCT = 9_998  # 10,000 lines, two of them repeat a link
COLUMNS = ("link", "headline", "short_description", "category", "authors", "date")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with shared_or_skip(HUFFPOST).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def expected() -> dict[str, dict]:
    return articles(read(find_sources([shared_or_skip(HUFFPOST)]).sources[0]))


def read(source: Source, **kwargs) -> SourceReader:
    reader = SourceReader(source, **kwargs)
    reader.records = list(reader)
    assert not reader.errors and not reader.warnings, (reader.errors[:3], reader.warnings[:3])
    return reader


def articles(reader: SourceReader, drop: tuple[str, ...] = ()) -> dict[str, dict]:
    merged = merge_records(reader.records).values()
    return {a.id: {k: v for k, v in a.to_dict().items() if k not in drop} for a in merged}


def test_every_field_is_found_without_a_mapping(expected, rows):
    assert len(expected) == DISTINCT
    assert all(a["published"] and a["topics"] and a["title"] and a["excerpt"] for a in expected.values())
    last = {row["link"]: row for row in rows}  # a later line of the same link wins
    with_authors = {link for link, row in last.items() if row["authors"].strip()}
    assert sum(1 for a in expected.values() if a["authors"]) == len(with_authors) > 9_000
    first = rows[0]
    story = next(a for a in expected.values() if a["url"] == first["link"])
    assert (story["title"], story["topics"], story["authors"]) == (
        first["headline"],
        [first["category"]],
        [first["authors"]],
    )
    assert story["published"] == datetime.fromisoformat(first["date"]).replace(tzinfo=UTC).isoformat()


@pytest.mark.slow
def test_search_cli_indexes_all_distinct_articles(tmp_path, monkeypatch):
    path = shared_or_skip(HUFFPOST)
    assert path.stat().st_size > 1024 * 1024  # once refused whole as "over the 1 MiB limit"
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["index", str(path), "--index-dir", str(tmp_path / "ix"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["articles"] == report["added"] == DISTINCT
    assert report["skipped_count"] == report["warnings_count"] == 0
    assert {field: list(sources) for field, sources in report["fields"].items()} == {
        "authors": ["authors"],
        "excerpt": ["short_description"],
        "published": ["date"],
        "title": ["headline"],
        "topics": ["category"],
        "url": ["link"],
    }
    store = ArticleStore(gen.require_current(tmp_path / "ix") / gen.STORE_FILE, readonly=True)
    try:
        stored = store.get_many(sorted(store.ids())).values()
    finally:
        store.close()
    assert len(stored) == DISTINCT and all(a.published and a.topics for a in stored)
    assert sum(1 for a in stored if a.authors) > 9_000


def test_gzipped_gives_the_same_articles(expected, tmp_path):
    packed = tmp_path / "news.jsonl.gz"
    packed.write_bytes(gzip.compress(shared_or_skip(HUFFPOST).read_bytes()))
    assert articles(read(find_sources([packed]).sources[0])) == expected


def test_standard_input_gives_the_same_articles(expected):
    stream = io.BytesIO(shared_or_skip(HUFFPOST).read_bytes())
    assert articles(read(Source("-"), stdin=stream)) == expected


def test_csv_gives_the_same_articles(expected, rows, tmp_path):
    table = tmp_path / "news.csv"
    with table.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    assert articles(read(find_sources([table]).sources[0])) == expected


@pytest.mark.slow
def test_rss_gives_the_same_articles(expected, rows, tmp_path):
    feed = write_rss(rows, tmp_path / "news.rss")
    reader = read(find_sources([feed]).sources[0])
    drop = ("provider", "provider_domain")
    assert articles(reader, drop) == {i: {k: v for k, v in a.items() if k not in drop} for i, a in expected.items()}
    assert {a["provider"] for a in articles(reader).values()} == {"HuffPost"}


def write_rss(rows: list[dict], path: Path) -> Path:
    items = []
    for row in rows:
        day = datetime.fromisoformat(row["date"]).replace(tzinfo=UTC)
        creator = f"<dc:creator>{escape(row['authors'])}</dc:creator>" if row["authors"] else ""
        items.append(
            f"<item><title>{escape(row['headline'])}</title><link>{escape(row['link'])}</link>"
            f"<description>{escape(row['short_description'])}</description>"
            f"<category>{escape(row['category'])}</category>{creator}<pubDate>{format_datetime(day)}</pubDate></item>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>HuffPost</title><link>https://www.huffpost.com/</link><description>Converted for a test"
        f"</description>{''.join(items)}</channel></rss>\n",
        encoding="utf-8",
    )
    return path
