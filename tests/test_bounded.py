"""Bounded work per query on a real 10k index: any query text answers (or is refused) within 1 s.

Issue 12: `title:[a TO z] OR excerpt:[a TO z]` once took 6.6 s in keyword mode and 12.8 s in hybrid.
The index is built once from ../shared/corpus/huffpost-10k with the hash embedder (no model needed).
"""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED, fake_settings, shared_or_skip
from search.errors import InvalidQuery
from search.indexer import Indexer
from search.service import MAX_QUERY_CHARS, SearchService

HUFFPOST = SHARED / "corpus" / "huffpost-10k" / "news_category_v3_first10k.jsonl"
SECONDS = 1.0
NASTY = [
    "title:[a TO z] OR excerpt:[a TO z]",
    "a* b* c* d* e* f* g* h*",
    "t* OR s* OR a* OR m*",
    '"the of and to in"',
    " ".join(["trump"] * 200),
    " OR ".join(f"w{n}*" for n in range(60)),
    "(((((((((((a)))))))))))",
    "-a -b -c -d -e -f -g -h -i",
    "x" * MAX_QUERY_CHARS,
    "the " * 250,
]


@pytest.fixture(scope="module")
def big(tmp_path_factory, embedder):
    corpus = shared_or_skip(HUFFPOST)
    settings = fake_settings(tmp_path_factory.mktemp("big"))
    Indexer(settings, embedder).index([corpus])
    service = SearchService(settings, embedder)
    service.search("warm up")
    yield service
    service.close()


def timed_search(service: SearchService, text: str, mode: str) -> None:
    best = None
    for _ in range(2):  # a shared machine may pause the process once; a slow query is slow twice
        started = time.perf_counter()
        try:
            service.search(text, mode=mode, limit=100)
        except InvalidQuery:
            pass
        best = min(best or 1e9, time.perf_counter() - started)
        if best <= SECONDS:
            return
    pytest.fail(f"{text[:60]!r} ({mode}) took {best:.2f} s on a 10k index")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_the_queries_that_stalled_the_server_are_bounded(big, mode):
    for text in NASTY:
        timed_search(big, text, mode)
    with pytest.raises(InvalidQuery, match="range"):
        big.search("title:[a TO z] OR excerpt:[a TO z]")


WORDS = st.sampled_from(["trump", "storm", "a", "the", "vaccine", "t*", "s*", '"', "(", ")", "-", "OR", "AND", "NOT"])


@pytest.mark.slow
@settings(max_examples=60, deadline=None, database=None)
@given(q=st.lists(WORDS, min_size=1, max_size=60).map(" ".join), mode=st.sampled_from(["keyword", "hybrid"]))
def test_any_query_answers_within_a_second_on_10k(big, q, mode):
    timed_search(big, q, mode)


@pytest.mark.parametrize("text", ["hurricane", "climate change", "vaccine mandate", "Supreme Court ruling"])
def test_a_facets_count_is_what_filtering_on_it_finds(big, text):
    """A filter only removes articles from the match set, in every mode: the semantic floor is set
    by the whole index, not by what the filter leaves."""
    for mode in ("hybrid", "semantic"):
        found = big.search(text, mode=mode, collapse=False)
        for name, counts in (("topic", found.facets["topic"][:4]), ("provider", found.facets["provider"][:2])):
            for value, count in counts:
                filtered = big.search(text, mode=mode, collapse=False, **{name: value})
                assert filtered.total == count, (mode, name, value)
