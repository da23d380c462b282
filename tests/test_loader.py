import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import CORPUS, SEEDS, shared_or_skip
from search.errors import ArticleError
from search.loader import find_sources, iter_article_files, load_file, open_regular, parse_datetime, parse_markdown
from search.mapping import MAX_RELATED, MAX_TITLE_CHARS
from search.merge import merge_records
from search.urls import article_id

FRONT = "---\n{body}\n---\n"


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_seed_loads_with_related_items():
    result = load_file(SEEDS / "000_9b2b28b6691a1e95.txt")
    assert result.ok
    main, *related = result.records
    assert main.main and main.fields["title"].startswith("IBM says U.S. should adopt")
    assert main.fields["published"] == datetime(2020, 9, 20, 6, 2, tzinfo=UTC)  # unquoted YAML datetime
    assert main.fields["provider"] == "Reuters" and main.fields["provider_domain"] == "reuters.com"
    assert main.fields["topics"] == ("Computer Vision", "AI")
    assert main.fields["image"].startswith("https://s3.reutersmedia.net/")
    assert main.fields["quality"] == 86
    assert len(related) == 4 and not any(r.main for r in related)
    assert main.related == tuple(r.url for r in related)


def test_escaped_quotes_and_non_ascii(tmp_path):
    body = 'title: "He said \\"no\\" to Zürich’s café 🚀 東京"\nwebUrl: "https://x.org/a"\nexcerpt: "naïve"'
    record = load_file(write(tmp_path, "a.md", FRONT.format(body=body))).records[0]
    assert record.fields["title"] == 'He said "no" to Zürich’s café 🚀 東京'
    assert record.fields["excerpt"] == "naïve"


def test_missing_fields_are_empty_not_errors(tmp_path):
    result = load_file(write(tmp_path, "a.md", FRONT.format(body='title: Bare\nwebUrl: "https://x.org/bare"')))
    assert result.ok
    f = result.records[0].fields
    assert (f["excerpt"], f["published"], f["provider"], f["topics"], f["image"], f["quality"]) == (
        "",
        None,
        "",
        (),
        "",
        None,
    )


def test_missing_url_falls_back_to_file_name(tmp_path):
    result = load_file(write(tmp_path, "note.md", FRONT.format(body="title: No link")))
    assert result.records[0].url == "file:///note.md"


def test_self_referencing_related_item_is_dropped(tmp_path):
    body = (
        'title: Self\nwebUrl: "https://x.org/self"\nrelated:\n  - title: Me again\n    webUrl: "https://X.org/self/"\n'
        '  - title: Other\n    webUrl: "https://x.org/other"'
    )
    main, *related = load_file(write(tmp_path, "a.md", FRONT.format(body=body))).records
    assert [r.url for r in related] == ["https://x.org/other"]
    assert main.related == ("https://x.org/other",)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.md", b"  \n\n", "empty"),
        ("binary.md", b"---\x00\x01\x02", "binary"),
        ("latin1.md", "---\ntitle: caf\xe9\n---\n".encode("latin-1"), "not UTF-8"),
        ("notitle.md", b"---\nexcerpt: x\nwebUrl: https://x.org\n---\n", "no title"),
        ("yaml.md", b"---\ntitle: [unclosed\n---\n", "invalid YAML"),
        ("scalar.md", b"---\njust a string\n---\n", "not a mapping"),
        ("nofront.md", b"# Just markdown\n", "no YAML front matter"),
        ("unclosed.md", b"---\ntitle: x\n", "not closed"),
    ],
)
def test_bad_files_are_reported_not_raised(tmp_path, name, content, reason):
    result = load_file(write(tmp_path, name, content, "wb"))
    assert not result.records
    assert len(result.errors) == 1 and reason in str(result.errors[0])
    assert name in str(result.errors[0])


def test_bad_yaml_reports_the_line(tmp_path):
    result = load_file(write(tmp_path, "a.md", '---\ntitle: ok\nexcerpt: "x\nwebUrl: y: z\n---\n'))
    assert result.errors and result.errors[0].line is not None


@pytest.mark.parametrize("date", ["2020-13-45", "2021-02-30T10:00:00Z", "!!timestamp 0"])
def test_an_impossible_unquoted_date_is_a_warning_not_a_lost_article(tmp_path, date):
    result = load_file(write(tmp_path, "a.md", f"---\ntitle: Kept\nwebUrl: https://x.org/a\ndate: {date}\n---\n"))
    assert not result.errors and result.records[0].fields["published"] is None
    assert len(result.warnings) == 1 and "is not a date" in str(result.warnings[0])
    good = load_file(write(tmp_path, "b.md", "---\ntitle: Dated\nwebUrl: https://x.org/b\ndate: 2020-02-03\n---\n"))
    assert good.records[0].fields["published"].isoformat().startswith("2020-02-03")


def test_oversized_file_is_skipped(tmp_path):
    path = write(tmp_path, "big.md", "---\ntitle: big\n---\n" + "x" * (1024 * 1024 + 10))
    result = load_file(path)
    assert "1 MiB" in str(result.errors[0])


def test_jsonl_lines_and_bad_lines(tmp_path):
    lines = [
        '{"title": "One", "webUrl": "https://x.org/1", "publishedDateTime": "2021-01-02T03:04:05+02:00"}',
        "not json",
        '{"excerpt": "no title", "webUrl": "https://x.org/2"}',
        "",
        '{"title": "One again", "webUrl": "https://x.org/1/"}',
    ]
    result = load_file(write(tmp_path, "feed.jsonl", "\n".join(lines)))
    assert [r.fields["title"] for r in result.records] == ["One", "One again"]
    assert result.records[0].fields["published"] == datetime(2021, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert sorted(e.line for e in result.errors) == [2, 3]
    merged = merge_records(result.records)
    assert len(merged) == 1 and next(iter(merged.values())).title == "One again"  # a later line updates


def test_parse_datetime_variants():
    utc = UTC
    assert parse_datetime("2020-09-20T06:02:00Z") == datetime(2020, 9, 20, 6, 2, tzinfo=utc)
    assert parse_datetime(datetime(2020, 1, 1, 12)) == datetime(2020, 1, 1, 12, tzinfo=utc)
    assert parse_datetime("2020-01-01") == datetime(2020, 1, 1, tzinfo=utc)
    assert parse_datetime("yesterday") is None and parse_datetime(None) is None


def test_main_article_beats_related_stub_whatever_the_order():
    main_text = FRONT.format(body='title: Main title\nexcerpt: main\nwebUrl: "https://x.org/story"')
    stub_text = FRONT.format(
        body='title: Host\nwebUrl: "https://x.org/host"\nrelated:\n  - title: Stub title\n    excerpt: stub\n'
        '    webUrl: "https://x.org/story?utm_source=rss"\n    quality: 9'
    )
    a = parse_markdown(main_text, "a.md")
    b = parse_markdown(stub_text, "b.md")
    for records in (a + b, b + a):
        story = merge_records(records)[article_id("https://x.org/story")]
        assert (story.title, story.excerpt, story.is_stub) == ("Main title", "main", False)
        assert story.quality == 9  # a field the main article lacks is filled from the stub
    host = merge_records(a + b)[article_id("https://x.org/host")]
    assert host.related == (article_id("https://x.org/story"),)


def test_directory_walk_is_sorted_and_ignores_other_files(tmp_path):
    write(tmp_path, "b.md", "x")
    write(tmp_path, "a.txt", "x")
    write(tmp_path, "MANIFEST.tsv", "x")
    write(tmp_path, ".hidden.md", "x")
    assert [p.name for p in iter_article_files([tmp_path])] == ["a.txt", "b.md"]


def test_real_corpus_loads_with_exactly_one_bad_file():
    corpus = shared_or_skip(CORPUS)
    results = [load_file(p) for p in iter_article_files([corpus])]
    bad = [r for r in results if r.errors]
    assert len(bad) == 1 and "2020-12-01-project-innereye" in bad[0].path
    articles = merge_records(rec for r in results for rec in r.records)
    assert 360 <= len(articles) <= 380
    titles = [a.title for a in articles.values()]
    assert any('"' in t for t in titles)  # escaped quotes survived
    assert any(not t.isascii() for t in titles)  # non-ASCII text survived
    assert all(a.published is None or a.published.tzinfo is not None for a in articles.values())


# -- sources that are not plain files (issue 12) ----------------------------------------------------
def good_article(tmp_path, name="good.md", url="https://x.org/good"):
    return write(tmp_path, name, FRONT.format(body=f'title: Good\nwebUrl: "{url}"'))


def test_symlink_loops_are_reported_and_the_rest_is_found(tmp_path):
    good_article(tmp_path)
    (tmp_path / "a.md").symlink_to(tmp_path / "b.md")
    (tmp_path / "b.md").symlink_to(tmp_path / "a.md")
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    inputs = find_sources([tmp_path])
    bad = {Path(s.name).name: s.error.reason for s in inputs.sources if s.error}
    assert bad == {
        "a.md": "cannot read: symbolic link loop",
        "b.md": "cannot read: symbolic link loop",
        "self.md": "cannot read: symbolic link loop",
        "dangling.md": "cannot read: broken symbolic link",
    }
    assert [p.name for p in iter_article_files([tmp_path])] == ["good.md"]
    assert "symbolic link loop" in str(load_file(tmp_path / "self.md").errors[0])


def test_a_symlink_loop_named_on_the_command_line_is_reported(tmp_path):
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    (source,) = find_sources([tmp_path / "self.md"]).sources
    assert source.error is not None and "symbolic link loop" in str(source.error)


def test_a_fifo_is_reported_without_blocking(tmp_path):
    good_article(tmp_path)
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "dir.md").mkdir()  # a directory with an article suffix is walked into, not read
    sources = find_sources([tmp_path]).sources
    pipe = next(s for s in sources if s.name.endswith("pipe.md"))
    assert pipe.error is not None and "not a regular file (a FIFO)" in str(pipe.error)
    assert not load_file(tmp_path / "pipe.md").records  # returns at once: nothing opens the FIFO for reading
    with pytest.raises(ArticleError, match="not a regular file"):
        open_regular(tmp_path / "pipe.md")  # even when asked directly, it does not block


def test_a_directory_without_article_files_is_reported_as_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    write(tmp_path / "other", "notes.tsv", "x")
    inputs = find_sources([tmp_path / "empty", tmp_path / "other"])
    assert inputs.sources == [] and inputs.empty == [str(tmp_path / "empty"), str(tmp_path / "other")]


# -- stored sizes are capped at load (issue 12) -------------------------------------------------------
def test_a_huge_title_is_truncated_with_a_warning(tmp_path):
    path = write(tmp_path, "big.md", FRONT.format(body=f'title: "{"word " * 180_000}"\nwebUrl: "https://x.org/big"'))
    assert path.stat().st_size > 900_000
    result = load_file(path)
    assert result.ok and len(result.records[0].fields["title"]) == MAX_TITLE_CHARS
    assert len(result.warnings) == 1 and "title truncated: 899,999 characters" in str(result.warnings[0])


def test_twenty_thousand_related_items_are_capped(tmp_path):
    items = "".join(f'  - {{title: R{i}, webUrl: "https://x.org/{i}"}}\n' for i in range(20_000))
    path = write(
        tmp_path, "many.md", FRONT.format(body=f'title: Host\nwebUrl: "https://x.org/host"\nrelated:\n{items}')
    )
    result = load_file(path)
    main, *related = result.records
    assert len(related) == MAX_RELATED and len(main.related) == MAX_RELATED
    assert "related: 20,000 items, the first 100 are kept" in str(result.warnings[0])


def test_a_yaml_alias_bomb_in_related_is_capped(tmp_path):
    aliases = ", ".join(["*r"] * 100_000)
    related = f'[&r {{title: Same, webUrl: "https://x.org/r"}}, {aliases}]'
    body = f'title: Host\nwebUrl: "https://x.org/host"\nrelated: {related}'
    path = write(tmp_path, "bomb.md", FRONT.format(body=body))
    assert path.stat().st_size < 1024 * 1024
    result = load_file(path)
    assert len(result.records) == 2  # the host and its one distinct related item
    assert "related: 100,001 items, the first 100 are kept" in str(result.warnings[0])
    assert len(merge_records(result.records)) == 2
