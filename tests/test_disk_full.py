"""A full disk during `index` or `delete`: one line that says so, and the live index untouched.

No disk is filled: each test makes one write of one engine fail the way it fails on a full disk
(ENOSPC from the OS, SQLITE_FULL from SQLite, FAISS's error text), at a different stage of a build.
"""

from __future__ import annotations

import errno
import gc
import os
import sqlite3

import pytest
from click.testing import CliRunner

from conftest import SEEDS
from search import generations as gen
from search.cli import main
from search.errors import DiskFull, is_disk_full
from search.indexer import verify
from search.store import EmbeddingCache

NEW_ARTICLE = '---\ntitle: "Quokkas take over the newsroom"\nwebUrl: "https://news.example.com/quokka"\n---\n'


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "segment.seg")


def sqlite_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")


def faiss_full(*args, **kwargs):
    raise RuntimeError("Error in faiss::FileIOWriter: write error in vectors.faiss: 0 != 4 (No space left on device)")


def current_switch(monkeypatch):
    """The new generation is renamed into place, then CURRENT cannot be switched to it."""
    real = os.replace

    def replace(src, dst):
        if os.fspath(dst).endswith("/CURRENT"):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def whoosh_segment_write(monkeypatch):
    from whoosh.filedb.structfile import StructFile

    monkeypatch.setattr(StructFile, "write", no_space)


INJECTIONS = {
    "whoosh writes a segment": whoosh_segment_write,
    "sqlite commits the store": lambda mp: mp.setattr("search.store.ArticleStore.commit", sqlite_full),
    "sqlite caches embeddings": lambda mp: mp.setattr("search.store.EmbeddingCache.put_many", sqlite_full),
    "faiss writes vectors": lambda mp: mp.setattr("search.vectors.faiss.write_index", faiss_full),
    "the manifest is written": lambda mp: mp.setattr("search.generations.write_manifest", no_space),
    "the generation is synced": lambda mp: mp.setattr("search.generations._fsync_tree", no_space),
    "CURRENT is switched": current_switch,
}


@pytest.fixture
def indexed(tmp_path, monkeypatch):
    """A built index of seeds/ plus a new article waiting to be indexed; returns (run, root, corpus)."""
    monkeypatch.setenv("SEARCH_QUERY_EMBEDDER", "hash")
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    root, corpus = tmp_path / "ix", tmp_path / "corpus"
    corpus.mkdir()
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [*map(str, args), "--index-dir", str(root)])

    assert run("index", SEEDS).exit_code == 0
    (corpus / "quokka.md").write_text(NEW_ARTICLE, encoding="utf-8")
    return run, root, corpus


def snapshot(root):
    return gen.current_name(root), sorted(p.name for p in root.iterdir()), verify(root).checksums


def assert_one_line_and_nothing_changed(result, root, before) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "the disk is full" in lines[0] and str(root.absolute()) in lines[0]
    assert f"the previous index ({before[0]}) still serves" in lines[0]
    assert snapshot(root) == before  # same live generation, no leftover gen-*.tmp, every checksum intact


# Whoosh cannot close a segment file whose trailer it failed to write: the file object is left to
# the garbage collector (harmless in a CLI process, which exits), which pytest reports as unraisable.
WHOOSH_LEAKS_A_FILE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
STAGES = [pytest.param(s, marks=WHOOSH_LEAKS_A_FILE) if s.startswith("whoosh") else s for s in INJECTIONS]


@pytest.mark.parametrize("stage", STAGES)
def test_index_on_a_full_disk(indexed, monkeypatch, stage):
    run, root, corpus = indexed
    before = snapshot(root)
    with monkeypatch.context() as patch:
        INJECTIONS[stage](patch)
        assert_one_line_and_nothing_changed(run("index", SEEDS, corpus), root, before)
    gc.collect()  # whatever the failed write left to the collector goes now, in this test
    result = run("index", SEEDS, corpus)  # space is back: it completes
    assert result.exit_code == 0, result.output
    assert gen.current_name(root) != before[0]


@pytest.mark.parametrize("stage", ["sqlite commits the store", "faiss writes vectors", "CURRENT is switched"])
def test_delete_on_a_full_disk(indexed, monkeypatch, stage):
    run, root, _ = indexed
    before = snapshot(root)
    from search.urls import article_id

    victim = article_id("https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043")
    with monkeypatch.context() as patch:
        INJECTIONS[stage](patch)
        assert_one_line_and_nothing_changed(run("delete", victim), root, before)
    assert run("delete", victim).exit_code == 0 and gen.current_name(root) != before[0]


def test_the_first_build_on_a_full_disk_says_nothing_was_published(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_INDEX_EMBEDDER", "hash")
    monkeypatch.setattr("search.generations.write_manifest", no_space)
    root = tmp_path / "ix"
    result = CliRunner().invoke(main, ["index", str(SEEDS), "--index-dir", str(root)])
    assert result.exit_code == 1 and "the disk is full" in result.output and "no index was published" in result.output
    assert gen.current_name(root) is None and not list(root.glob("gen-*"))


def test_a_full_disk_keeps_the_embedding_cache(tmp_path, monkeypatch):
    """Opening the cache on a full disk must not be taken for a damaged cache (which is deleted)."""
    path = tmp_path / "cache" / "embeddings.sqlite"
    cache = EmbeddingCache(path)
    cache.put_many("m", {"h": __import__("numpy").ones(4, dtype="float32")})
    cache.close()
    real_connect = sqlite3.connect

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self._conn = real_connect(*args, **kwargs)

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._conn.execute(sql, *args)

    with monkeypatch.context() as patch:
        patch.setattr("search.store.sqlite3.connect", FullDisk)
        with pytest.raises(sqlite3.OperationalError):
            EmbeddingCache(path)
    assert EmbeddingCache(path).get_many("m", ["h"], 4), "the cache was deleted"


def test_is_disk_full() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            no_space()
        except OSError as inner:
            raise RuntimeError("whoosh gave up") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("no such table: articles"))
    assert issubclass(DiskFull, __import__("search.errors").errors.SearchError)
