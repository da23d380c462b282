"""Parallel ingestion: `search-cli embed --shard I/N` workers fill the embedding cache, one `index` writes."""

import json
import sqlite3
from collections import Counter

import pytest
from click.testing import CliRunner

from conftest import SEEDS, fake_settings
from search import generations as gen
from search.cli import main
from search.errors import ConfigError
from search.indexer import Indexer
from search.shards import Shard, shard_of
from search.store import ArticleStore


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_DIR", str(tmp_path / "ix"))
    monkeypatch.setenv("SEARCH_QUERY_EMBEDDER", "hash")
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [str(a) for a in args])
        return result

    return run


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _cached(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT hash FROM vectors")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def seed_texts(tmp_path_factory, embedder) -> set[str]:
    """The text hash of every article an index of seeds/ holds."""
    settings = fake_settings(tmp_path_factory.mktemp("shard-reference"))
    Indexer(settings, embedder).index([SEEDS])
    live = gen.require_current(settings.index_path)
    store = ArticleStore(live / gen.STORE_FILE, readonly=True)
    try:
        return {h for _, h in store.hashes(store.ids()).values()}
    finally:
        store.close()


def test_shard_parse_and_errors():
    assert Shard.parse("2/3") == Shard(2, 3)
    assert str(Shard.parse("1/1")) == "1/1"
    for bad in ("0/2", "3/2", "1/0", "two/3", "1", "1/2/3"):
        with pytest.raises(ConfigError, match="bad shard"):
            Shard.parse(bad)


def test_every_url_has_one_stable_shard_and_the_shards_spread():
    urls = [f"https://example.com/news/{n}" for n in range(3000)]
    first = [shard_of(u, 3) for u in urls]
    assert first == [shard_of(u, 3) for u in urls]
    counts = Counter(first)
    assert set(counts) == {1, 2, 3}
    assert min(counts.values()) > 800  # about a third each
    assert all(sum(Shard(i, 3).holds(u) for i in (1, 2, 3)) == 1 for u in urls[:200])


def test_shards_are_disjoint_and_cover_the_input(cli, tmp_path, seed_texts):
    reports, caches = [], []
    for i in (1, 2, 3):
        cache = tmp_path / f"worker-{i}.sqlite"
        reports.append(_json(cli("embed", SEEDS, "--shard", f"{i}/3", "--cache", cache, "--json")))
        caches.append(_cached(cache))
    assert all(r["articles"] > 0 and r["embedded"] == len(c) for r, c in zip(reports, caches, strict=True))
    assert sum(r["articles"] for r in reports) == len(seed_texts)
    assert set().union(*caches) == seed_texts
    assert sum(len(c) for c in caches) == len(seed_texts)  # no text embedded by two workers
    assert not (tmp_path / "ix" / "CURRENT").exists()  # workers write no index


def test_writer_after_workers_embeds_nothing(cli, tmp_path, seed_texts):
    for i in (1, 2):
        _json(cli("embed", SEEDS, "--shard", f"{i}/2", "--json"))  # the index's own cache
    again = _json(cli("embed", SEEDS, "--shard", "1/2", "--json"))
    assert again["embedded"] == 0 and again["cache_hits"] == again["articles"] > 0
    report = _json(cli("index", SEEDS, "--json"))
    assert report["embedded"] == 0
    assert report["articles"] == report["added"] == report["cache_hits"] == len(seed_texts)
    hit = _json(cli("query", "facial recognition", "--json"))
    assert hit["total"] > 0


def test_writer_merges_cache_files_from_other_machines(cli, tmp_path, seed_texts):
    files = [tmp_path / f"machine-{i}.sqlite" for i in (1, 2)]
    for i, path in enumerate(files, start=1):
        _json(cli("embed", SEEDS, "--shard", f"{i}/2", "--cache", path, "--json"))
    result = cli("index", SEEDS, "--merge-cache", files[0], "--merge-cache", files[1])
    assert result.exit_code == 0, result.output
    assert f"Merged {len(seed_texts)} new vectors from 2 embedding cache file(s)." in result.output
    assert "Embedded 0 texts" in result.output


def test_bad_shard_and_bad_cache_file_are_one_line_errors(cli, tmp_path):
    result = cli("embed", SEEDS, "--shard", "3/2")
    assert result.exit_code == 1 and "bad shard '3/2'" in result.output and "Traceback" not in result.output
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n")
    result = cli("index", SEEDS, "--merge-cache", junk)
    assert result.exit_code == 1 and "junk.sqlite" in result.output and "Traceback" not in result.output


# -- workers opening one cache at once --------------------------------------------------------------
def _open_and_put(barrier, folder, name, rounds, errors):
    import numpy as np

    from search.store import EmbeddingCache

    for n in range(rounds):
        barrier.wait()
        try:
            cache = EmbeddingCache(folder / f"cache{n}.sqlite")
            cache.put_many("m", {f"{name}-{n}": np.zeros(4, dtype=np.float32)})
            cache.close()
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on any
            errors.put(repr(exc))


def test_workers_creating_one_cache_together_keep_each_others_vectors(tmp_path):
    import multiprocessing

    # Two processes creating a new cache at the same moment once saw each other's half-made file as
    # damaged and rebuilt it, deleting the other's vectors (bench parallel: the writer re-embedded 28).
    context = multiprocessing.get_context("fork")
    barrier, errors, rounds = context.Barrier(2), context.Queue(), 150
    workers = [context.Process(target=_open_and_put, args=(barrier, tmp_path, name, rounds, errors)) for name in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert all(w.exitcode == 0 for w in workers) and errors.empty()
    for n in range(rounds):
        with sqlite3.connect(tmp_path / f"cache{n}.sqlite") as conn:
            assert {h for (h,) in conn.execute("SELECT hash FROM vectors")} == {f"a-{n}", f"b-{n}"}


def test_a_cache_opens_only_while_no_other_process_is_opening_it(tmp_path):
    import threading

    from search.store import EmbeddingCache

    path = tmp_path / "embeddings.sqlite"
    opened = threading.Event()
    with gen.exclusive(path.with_name(path.name + ".lock")):  # another process opening it, in effect
        opener = threading.Thread(target=lambda: (EmbeddingCache(path).close(), opened.set()))
        opener.start()
        assert not opened.wait(0.3)
    assert opened.wait(10)
    opener.join()
