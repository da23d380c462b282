from datetime import UTC, datetime

import pytest

from search.errors import ConfigError
from search.mapping import (
    MAX_AUTHORS,
    MAX_EXCERPT_CHARS,
    MAX_RELATED,
    MAX_TITLE_CHARS,
    MAX_TOPICS,
    FieldMap,
    lookup,
    resolve,
)

HUFFPOST = {
    "link": "https://www.huffpost.com/entry/a",
    "headline": "A headline",
    "short_description": "A summary.",
    "category": "U.S. NEWS",
    "authors": "Carla K. Johnson, AP",
    "date": "2022-09-23",
}


def test_well_known_aliases_fill_fields_and_say_where_from():
    out = resolve(HUFFPOST, FieldMap())
    assert out.values["title"] == "A headline" and out.values["excerpt"] == "A summary."
    assert out.values["url"] == "https://www.huffpost.com/entry/a"
    assert out.values["published"] == datetime(2022, 9, 23, tzinfo=UTC)
    assert out.values["topics"] == ("U.S. NEWS",) and out.values["authors"] == ("Carla K. Johnson, AP",)
    assert out.filled == {
        "title": "headline",
        "excerpt": "short_description",
        "url": "link",
        "published": "date",
        "topics": "category",
        "authors": "authors",
    }
    assert out.notes == []


def test_the_first_alias_with_a_value_wins_and_booleans_are_not_values():
    meta = {"title": "", "headline": "From headline", "published": True, "pubDate": "Fri, 23 Sep 2022 10:00:00 GMT"}
    out = resolve(meta, FieldMap())
    assert out.values["title"] == "From headline"
    assert out.values["published"] == datetime(2022, 9, 23, 10, tzinfo=UTC)
    assert out.filled["published"] == "pubDate"


def test_explicit_mapping_replaces_the_aliases_and_reaches_nested_fields():
    meta = {"hed": "Mapped", "title": "Not this", "meta": {"byline": ["A", {"name": "B"}], "when": "2021-01-02"}}
    fmap = FieldMap.parse(["title=hed", "author=meta.byline", "date=meta.when", "excerpt="])
    out = resolve(dict(meta, excerpt="ignored"), fmap)
    assert out.values["title"] == "Mapped"
    assert out.values["authors"] == ("A", "B")
    assert out.values["published"] == datetime(2021, 1, 2, tzinfo=UTC)
    assert out.values["excerpt"] == ""  # an empty mapping switches a field off
    assert out.filled == {"title": "hed", "authors": "meta.byline", "published": "meta.when"}


def test_mapping_from_yaml_style_dict_and_merging():
    base = FieldMap.parse({"title": "hed", "excerpt": "dek"})
    merged = base.merged(FieldMap.parse(["title=headline"]))
    assert merged.to_dict() == {"title": "headline", "excerpt": "dek"}


@pytest.mark.parametrize("spec", [["titel=headline"], ["title"], ["=x"], {"title": 5}])
def test_bad_mappings_are_config_errors(spec):
    with pytest.raises(ConfigError):
        FieldMap.parse(spec)


def test_lookup_dotted_paths():
    meta = {"a": {"b": [{"c": 1}]}, "x.y": 2}
    assert lookup(meta, "a.b.0.c") == 1
    assert lookup(meta, "x.y") == 2  # a literal key with a dot wins
    assert lookup(meta, "a.b.5.c") is None and lookup(meta, "a.z") is None and lookup(meta, "q") is None


def test_unparseable_date_is_a_note_not_silence():
    out = resolve(dict(HUFFPOST, date="last Tuesday"), FieldMap())
    assert out.values["published"] is None
    assert len(out.notes) == 1 and "'last Tuesday' is not a date" in out.notes[0] and "date" in out.notes[0]


@pytest.mark.parametrize(("value", "said"), [(True, "'true' is not a date"), ({"x": 1}, "holds a mapping")])
def test_a_date_that_is_no_text_is_a_note_too(value, said):
    out = resolve(dict(HUFFPOST, date=value), FieldMap())
    assert out.values["published"] is None and len(out.notes) == 1 and said in out.notes[0]


def test_html_in_a_title_or_excerpt_is_read_as_its_text_in_every_format():
    out = resolve(
        dict(HUFFPOST, headline="AT&amp;T &quot;wins&quot;", short_description="<i>Roe</i> is <b>out</b>"), FieldMap()
    )
    assert (out.values["title"], out.values["excerpt"]) == ('AT&T "wins"', "Roe is out")
    kept = resolve(dict(HUFFPOST, headline="AT&T and S&P: a < b, I <3 it"), FieldMap())  # no markup: as written
    assert kept.values["title"] == "AT&T and S&P: a < b, I <3 it"


def test_long_values_are_cut_with_a_note():
    meta = dict(
        HUFFPOST,
        headline="word " * 200_000,
        short_description="x" * (MAX_EXCERPT_CHARS + 5),
        category=[f"t{i}" for i in range(MAX_TOPICS + 10)],
        authors=[f"a{i}" for i in range(MAX_AUTHORS + 1)],
        related=[{"title": f"r{i}", "url": f"https://x.org/{i}"} for i in range(MAX_RELATED * 3)],
    )
    out = resolve(meta, FieldMap())
    assert len(out.values["title"]) == MAX_TITLE_CHARS and out.values["title"].endswith("…")
    assert len(out.values["excerpt"]) == MAX_EXCERPT_CHARS
    assert len(out.values["topics"]) == MAX_TOPICS and len(out.values["authors"]) == MAX_AUTHORS
    assert len(out.values["related"]) == MAX_RELATED
    text = " | ".join(out.notes)
    for what in ("title truncated", "excerpt truncated", "topics:", "authors:", "related:"):
        assert what in text


def test_feed_style_lists_of_dicts():
    meta = {
        "title": "t",
        "link": "https://x.org/a",
        "tags": [{"term": "Politics", "scheme": None}, {"term": "World"}],
        "authors": [{"name": "Jo Bloggs", "email": "jo@example.com"}],
        "media_content": [{"url": "https://x.org/i.jpg", "medium": "image"}],
    }
    out = resolve(meta, FieldMap())
    assert out.values["topics"] == ("Politics", "World") and out.values["authors"] == ("Jo Bloggs",)
    assert out.values["image"] == "https://x.org/i.jpg"
