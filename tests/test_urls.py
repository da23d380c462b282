import pytest

from search.urls import article_id, canonical_url, id_to_int, int_to_id, is_valid_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM/Path/", "https://example.com/Path"),
        ("https://example.com/a?utm_source=x&utm_medium=y&id=3", "https://example.com/a?id=3"),
        ("https://example.com/a?fbclid=abc&gclid=def", "https://example.com/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a/", "http://example.com:8080/a"),
        ("https://example.com/", "https://example.com"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?b=2&a=1"),  # order kept
        ("http://[::1]:8080/x/", "http://[::1]:8080/x"),
        ("HTTP://[FE80::1]/a", "http://[fe80::1]/a"),
    ],
)
def test_canonical_url(raw, expected):
    assert canonical_url(raw) == expected


def test_path_case_is_kept():
    assert canonical_url("https://x.org/CaseSensitive") != canonical_url("https://x.org/casesensitive")


def test_ids_are_stable_short_and_url_safe():
    a = article_id("https://Example.com/story/?utm_campaign=z")
    assert a == article_id("https://example.com/story")
    assert len(a) == 11 and is_valid_id(a)
    assert a != article_id("https://example.com/other-story")


def test_id_int_round_trip():
    a = article_id("https://example.com/story")
    n = id_to_int(a)
    assert 0 <= n < 2**63
    assert int_to_id(n) == a


@pytest.mark.parametrize("bad", ["", "short", "../../etc/pa", "a" * 12, "abc def ghi", "AAAAAAAAAAB", None, 7])
def test_invalid_ids(bad):
    assert not is_valid_id(bad)
