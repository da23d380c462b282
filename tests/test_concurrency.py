"""One writer at a time; readers keep answering while it writes and follow it after the swap;
old generations go once no reader holds them.

A writer is paused deterministically inside its build by an embedder that waits on an event,
so "while one runs" is a fact, not a race. Readers are a SearchService, the Flask app's test
client and the same app under a real waitress server on 127.0.0.1.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import fake_settings
from search import generations as gen
from search.embedding import HashEmbedder
from search.indexer import Indexer, verify
from search.service import SearchService
from search.urls import article_id

WAIT = 30.0  # upper bound on any single wait in this file
ARTICLE = '---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "https://concurrency.example.com/{slug}"\n---\n'


class GatedEmbedder(HashEmbedder):
    """The hash embedder, except that ``embed`` says it was reached and then waits for ``gate``.

    With ``gated``, only that text waits: every query embeds its text (a query's match set is the
    same in every mode), so a test that gates one query names it.
    """

    def __init__(self, gated: str | None = None) -> None:
        super().__init__()
        self.gated = gated
        self.reached, self.gate = threading.Event(), threading.Event()

    def embed(self, texts, batch_size: int = 64):
        if self.gated is not None and self.gated not in texts:
            return super().embed(texts, batch_size)
        self.reached.set()
        if not self.gate.wait(2 * WAIT):
            raise TimeoutError("the test never opened the gate")
        return super().embed(texts, batch_size)


class Background(threading.Thread):
    """Run ``target`` in a thread; ``result()`` returns its value or raises its exception."""

    def __init__(self, target, name: str = "background"):
        super().__init__(name=name, daemon=True)
        self._target_fn, self._value, self._error = target, None, None

    def run(self) -> None:
        try:
            self._value = self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc

    def result(self):
        self.join(WAIT)
        assert not self.is_alive(), f"{self.name} did not finish within {WAIT}s"
        if self._error is not None:
            raise self._error
        return self._value


def write_article(folder: Path, slug: str, title: str, excerpt: str = "Written by the concurrency test.") -> str:
    (folder / f"{slug}.md").write_text(ARTICLE.format(title=title, excerpt=excerpt, slug=slug), encoding="utf-8")
    return article_id(f"https://concurrency.example.com/{slug}")


def cli(*args: str, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCH_")}
    env.update(SEARCH_INDEX_EMBEDDER="hash", SEARCH_QUERY_EMBEDDER="hash")
    command = [sys.executable, "-m", "search.cli", *args]
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def generation_dirs(root: Path) -> set[str]:
    return {p.name for p in root.glob("gen-*")}


def open_files_under(path: Path) -> list[str]:
    """This process's open files and memory maps under ``path`` (Linux /proc), after a full
    garbage collection: a closed generation's objects may sit in reference cycles (Whoosh's
    searchers of other threads; KeywordIndex's per-instance lru_cache), which only the cycle
    collector frees. Anything still open after it is held for real."""
    gc.collect()
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        found += [line.split(maxsplit=5)[-1].strip() for line in fh if str(path) in line]
    return sorted({f for f in found if f.startswith(str(path))})


@pytest.fixture
def index(tmp_path, article_dir):
    """seeds/ plus 40 generated articles, indexed with the hash embedder."""
    for n in range(40):
        write_article(article_dir, f"base-{n}", f"Background story number {n} about export controls", "Filler.")
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, HashEmbedder()).index([article_dir])
    return settings


# -- one writer at a time -----------------------------------------------------------------------
def test_second_writer_fails_at_once_and_wait_waits(index, article_dir):
    root = index.index_path
    first = write_article(article_dir, "first", "Written while the lock was held")
    gated = GatedEmbedder()
    writer = Background(lambda: Indexer(index, gated).index([article_dir]), "first writer")
    writer.start()
    try:
        assert gated.reached.wait(WAIT), "the first writer never reached its embedding stage"
        started = time.perf_counter()
        refused = cli("index", str(article_dir), "--index-dir", str(root))
        refused_after = time.perf_counter() - started
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "another process is writing" in refused.stderr and "--wait" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert writer.is_alive()  # refused while the first writer was still mid-build: at once, no waiting
        deleting = cli("delete", first, "--index-dir", str(root))
        assert deleting.returncode == 1 and "another process is writing" in deleting.stderr

        second = write_article(article_dir, "second", "Written after the first writer had scanned")
        waiting = cli("index", str(article_dir), "--index-dir", str(root), "--wait", str(WAIT), wait=False)
        time.sleep(min(2 * refused_after + 0.5, WAIT / 3))  # past its start-up: it is at the lock by now
        assert waiting.poll() is None, "the --wait writer did not wait: " + waiting.communicate()[1]
    finally:
        gated.gate.set()
    report = writer.result()
    assert (report.added, report.generation) == (1, "gen-000002")
    out, err = waiting.communicate(timeout=WAIT)
    assert waiting.returncode == 0, err
    assert "Indexed 1 new" in out and "gen-000003" in out  # it ran after the first writer, on its result
    verify(root)
    svc = SearchService(index, HashEmbedder())
    assert {a.id for a in svc.get_many([first, second])} == {first, second}
    svc.close()


# -- readers during a write, and after the swap -------------------------------------------------
class Readers:
    """Threads that keep asking the service, the Flask test client and a waitress server."""

    QUERIES = ("export controls", "facial recognition", "background story", "robotaxi pilot", "quokka")

    def __init__(self, app, service: SearchService, base: tuple[str, int], threads: int = 2):
        self.app, self.service, self.base = app, service, base
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.generations: set[str] = set()
        kinds = ["service", "client", "http"] * threads
        self.threads = [threading.Thread(target=self._loop, args=(k, i), daemon=True) for i, k in enumerate(kinds)]

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in self.threads)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def _loop(self, kind: str, n: int) -> None:
        client = self.app.test_client() if kind == "client" else None
        conn = http.client.HTTPConnection(*self.base, timeout=WAIT) if kind == "http" else None
        deadline = time.monotonic() + 4 * WAIT
        i = n
        while not self.stop.is_set() and time.monotonic() < deadline:
            i += 1
            query, mode = self.QUERIES[i % len(self.QUERIES)], ("keyword", "hybrid", "semantic")[i % 3]
            try:
                generation = self._ask(kind, client, conn, query, mode)
            except Exception as exc:  # noqa: BLE001 - collected, asserted on by the test
                with self.lock:
                    self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            with self.lock:
                self.counts[kind] += 1
                self.generations.add(generation)
        if conn is not None:
            conn.close()

    def _ask(self, kind: str, client, conn, query: str, mode: str) -> str:
        if kind == "service":
            hits = self.service.search(query, mode=mode).hits
            if hits:
                self.service.related(hits[0].article.id, limit=3)
            return self.service.health()["generation"]
        url = f"/api/search?q={quote(query)}&mode={mode}"
        for path in (url, "/api/health"):
            if kind == "client":
                response = client.get(path)
                status, body = response.status_code, response.get_data()
            else:
                conn.request("GET", path)
                reply = conn.getresponse()
                status, body = reply.status, reply.read()
            if status != 200:
                raise AssertionError(f"{path} -> {status}: {body[:200]!r}")
        return json.loads(body)["generation"]


@pytest.fixture
def live_server(index):
    """The app under waitress on a free 127.0.0.1 port, in a background thread; yields (app, service, address)."""
    from waitress import create_server, wasyncore

    from web.app import create_app

    service = SearchService(index, HashEmbedder())
    app = create_app(index, service)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=serve, name="waitress-concurrency", daemon=True)
    thread.start()
    yield app, service, ("127.0.0.1", server.effective_port)
    stop.set()
    thread.join(WAIT)
    service.close()


def wait_for(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_readers_keep_answering_during_a_write_and_follow_the_swap(index, article_dir, live_server):
    app, service, address = live_server
    root = index.index_path
    new = write_article(article_dir, "quokka", "Quokka spotted in the server room")
    gated = GatedEmbedder()
    with Readers(app, service, address) as readers:
        wait_for(lambda: readers.total() >= 30, "the readers to get going")
        writer = Background(lambda: Indexer(index, gated).index([article_dir]), "gated writer")
        writer.start()
        try:
            assert gated.reached.wait(WAIT)
            during = readers.total()
            wait_for(lambda: readers.total() >= during + 60, "answers while the writer is mid-build")
            assert readers.generations == {"gen-000001"} and not readers.errors
            assert not service.search("quokka", mode="keyword").hits
        finally:
            gated.gate.set()
        assert writer.result().generation == "gen-000002"

        # The same service, client and server answer from the new generation: no restart.
        hits = service.search("quokka", mode="keyword").hits
        assert hits and hits[0].article.id == new
        client_hits = app.test_client().get("/api/search?q=quokka&mode=keyword").get_json()["hits"]
        assert client_hits[0]["id"] == new
        conn = http.client.HTTPConnection(*address, timeout=WAIT)
        conn.request("GET", "/api/search?q=quokka&mode=keyword")
        assert json.loads(conn.getresponse().read())["hits"][0]["id"] == new
        conn.close()
        wait_for(lambda: "gen-000002" in readers.generations, "the reader threads to see the swap")

        # Real writer processes, several times, while the readers keep going.
        for n in range(3, 6):
            write_article(article_dir, f"burst-{n}", f"Burst article {n}")
            done = cli("index", str(article_dir), "--index-dir", str(root))
            assert done.returncode == 0, done.stderr
            wait_for(lambda n=n: f"gen-00000{n}" in readers.generations, f"the readers to see gen-00000{n}")
    counts, errors = dict(readers.counts), readers.errors
    assert not errors, errors[:5]
    assert all(counts.get(k, 0) > 0 for k in ("service", "client", "http")), counts
    assert readers.generations == {f"gen-00000{n}" for n in range(1, 6)}

    # Every reader has moved on: the old generations go at the next cleanup, and nothing in
    # this process still has one of their files open or mapped.
    gen.cleanup(root)
    assert generation_dirs(root) == {"gen-000005"}
    for old in range(1, 5):
        assert not open_files_under(root / f"gen-00000{old}")


def test_old_generation_outlives_an_in_flight_request_and_then_goes(index, article_dir):
    root = index.index_path
    slow = GatedEmbedder(gated="export controls")
    service = SearchService(index, slow)  # its semantic queries wait inside the old generation
    service.search("export", mode="keyword")
    in_flight = Background(lambda: service.search("export controls", mode="semantic"), "in-flight query")
    in_flight.start()
    try:
        assert slow.reached.wait(WAIT)
        new = write_article(article_dir, "platypus", "Platypus learns to code")
        Indexer(index, HashEmbedder()).index([article_dir])  # publishes gen-2; its cleanup must spare gen-1
        assert generation_dirs(root) == {"gen-000001", "gen-000002"}
        assert service.search("platypus", mode="keyword").hits[0].article.id == new  # swapped meanwhile
        gen.cleanup(root)
        assert "gen-000001" in generation_dirs(root)  # the in-flight request still reads it
    finally:
        slow.gate.set()
    results = in_flight.result()
    assert results.hits and all(h.article.id != new for h in results.hits)  # answered from gen-1, whole
    assert gen.cleanup(root) == ["gen-000001"]
    assert generation_dirs(root) == {"gen-000002"}
    assert not open_files_under(root / "gen-000001")
    service.close()


def test_cleanup_spares_a_generation_whose_reader_arrives_mid_claim(index, article_dir, monkeypatch):
    """A reader that read CURRENT just before a swap leases the old generation while cleanup
    claims it. Before the fix, cleanup renamed a never-leased generation without taking its
    lock, so the reader could get a lease on a generation that was then deleted under it."""
    root = index.index_path
    old, live = root / "gen-000001", root / "gen-000002"
    write_article(article_dir, "numbat", "Numbat")
    keep = gen.ReaderLease(old)  # so that the writer's own cleanup leaves gen-1 on disk
    Indexer(index, HashEmbedder()).index([article_dir])
    keep.release()
    (old / gen.READERS_LOCK).unlink()  # as if no reader had ever opened gen-1
    stale = iter([old])  # the reader's first look at CURRENT is from before the swap
    monkeypatch.setattr(gen, "require_current", lambda r: next(stale, None) or live)
    reader: list[Background] = []
    real_rename = os.rename

    def rename_after_a_reader_arrives(src, dst):
        if Path(src) == old and not reader:  # cleanup has decided; a reader arrives now
            reader.append(Background(lambda: gen.lease_current(root), "late reader"))
            reader[0].start()
            reader[0].join(0.5)  # with the fix it blocks on the lock cleanup holds
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_after_a_reader_arrives)
    assert gen.cleanup(root) == ["gen-000001"]
    monkeypatch.undo()
    lease, path = reader[0].result()
    try:
        assert path.exists() and (path / gen.MANIFEST_FILE).is_file(), f"the reader holds a deleted {path.name}"
        assert path == live
    finally:
        lease.release()


def test_many_readers_and_writers_leave_one_generation(index, article_dir):
    """Services come and go in threads while in-process writers publish: every answer is whole,
    and at the end a single generation is left."""
    root = index.index_path
    start = verify(root).articles
    errors: list[str] = []
    stop = threading.Event()

    def read(n: int) -> None:
        deadline = time.monotonic() + WAIT
        while not stop.is_set() and time.monotonic() < deadline:
            svc = SearchService(index, HashEmbedder())
            try:
                for _ in range(5):
                    results = svc.search("export controls", mode=("keyword", "hybrid")[n % 2])
                    assert results.hits and all(h.article.title for h in results.hits)
            except Exception as exc:  # noqa: BLE001 - collected
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                svc.close()

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(8):
            write_article(article_dir, f"wave-{n}", f"Wave {n} of export controls news")
            Indexer(index, HashEmbedder()).index([article_dir], wait=WAIT)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    assert not errors, errors[:5]
    gen.cleanup(root)
    assert generation_dirs(root) == {gen.current_name(root)}
    assert verify(root).articles == start + 8
