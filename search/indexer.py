"""The single writer: turns article files into a new index generation.

Every run is incremental: files whose bytes are unchanged are not parsed again, articles whose
content is unchanged are not rewritten, and texts already embedded come from the cache.
The new generation is built beside the live one and swapped in atomically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np

from search import generations as gen
from search.backend import ModelInfo, Snapshot, Writer, make_backend
from search.config import Settings
from search.errors import ArticleError, DiskFull, IndexCorrupt, SearchError, is_disk_full
from search.keyword import KeywordIndex
from search.loader import FileResult, Record
from search.local_writer import check_consistent
from search.mapping import FieldMap
from search.merge import merge_records
from search.models import Article
from search.scan import Scan, scan_sources
from search.store import ArticleStore, EmbeddingCache
from search.stories import assign_stories, context_days, update_stories
from search.urls import article_id
from search.vectors import VectorIndex

Progress = Callable[[str, int, int], None]
EMBED_WORKERS = 2
BATCH = 2_000  # articles merged, embedded and written together: memory does not grow with the corpus


@dataclass
class IndexReport:
    generation: str = ""
    files: int = 0
    files_changed: int = 0
    files_removed: int = 0
    files_unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # the first MAX_REPORTED sources or records skipped
    skipped_count: int = 0
    warnings: list[str] = field(default_factory=list)  # records indexed with something dropped or cut, empty dirs
    warnings_count: int = 0
    fields: dict[str, dict[str, int]] = field(default_factory=dict)  # article field -> {source field: records}
    added: int = 0
    updated: int = 0
    removed: int = 0
    embedded: int = 0
    cache_hits: int = 0
    articles: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)  # delete: ids the index did not hold
    stories: dict = field(default_factory=dict)  # story assignment: stories, articles re-examined...

    @property
    def docs_per_second(self) -> float:
        return (self.added + self.updated) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["stages"] = {k: round(v, 3) for k, v in self.stages.items()}
        out["seconds"] = round(self.seconds, 3)
        out["docs_per_second"] = round(self.docs_per_second, 1)
        return out


class Indexer:
    def __init__(self, settings: Settings, embedder=None):
        self.settings = settings
        self.root = settings.index_path  # the embedding cache's home, for every backend
        self.backend = make_backend(settings)
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from search.embedding import load_embedder

            self._embedder = load_embedder(
                self.settings.index_embedder,
                self.settings.model_path or None,
                self.settings.model_cache or None,
                threads=1,  # one thread per call; EMBED_WORKERS calls run side by side
            )
        return self._embedder

    def _embed(self, texts: list[str], pool: ThreadPoolExecutor) -> np.ndarray:
        """Vectors of ``texts``, one text per inference, split across EMBED_WORKERS threads.

        One text per inference makes a vector depend on its text alone: dynamic int8
        quantisation scales activations per batch, so batching would tie it to batch-mates
        (cosine down to 0.990, nDCG@10 moving by 0.01 between identical builds). ONNX Runtime
        releases the GIL, and single-threaded sessions side by side beat one two-threaded one.
        """
        parts = [texts[i::EMBED_WORKERS] for i in range(EMBED_WORKERS)]
        done = list(pool.map(lambda part: self.embedder.embed(part, batch_size=1), parts))
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        for i, vectors in enumerate(done):
            out[i::EMBED_WORKERS] = vectors
        return out

    # -- public verbs ------------------------------------------------------------------------
    def index(
        self,
        paths: Iterable[str | Path],
        *,
        strict: bool = False,
        prune: bool = False,
        rebuild: bool = False,
        wait: float = 0.0,
        progress: Progress | None = None,
        stdin: BinaryIO | None = None,
        stdin_format: str = "",
    ) -> IndexReport:
        """Add and update the articles under ``paths`` ("-" reads ``stdin``); ``prune`` drops those whose file is gone.

        ArticleError when ``strict`` and anything was skipped, or when nothing could be indexed
        from an input that was not empty; an empty input builds nothing and says so in ``warnings``.
        """
        started = time.perf_counter()
        report = IndexReport()
        backend = self.backend
        with _disk_full_reported(backend), backend.lock(wait):
            backend.prepare()
            live = None if rebuild else backend.live()
            t0 = time.perf_counter()
            scan = self._scan(paths, live, prune, progress, stdin, stdin_format)
            report.stages["load"] = time.perf_counter() - t0
            _report_scan(report, scan)
            _check_usable(scan, strict)
            if not scan.changed and not scan.removed:  # nothing to write
                report.generation, report.articles = (live.version, live.articles) if live is not None else ("", 0)
            else:
                self._build(live, scan, report, progress)
        report.seconds = time.perf_counter() - started
        return report

    def index_records(
        self,
        records: Iterable[Record],
        source: str,
        *,
        rebuild: bool = False,
        wait: float = 0.0,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index records made in code (no files), as if they came from one source named ``source``."""
        started = time.perf_counter()
        report = IndexReport()
        result = FileResult(source, records=list(records))
        backend = self.backend
        with _disk_full_reported(backend), backend.lock(wait):
            backend.prepare()
            live = None if rebuild else backend.live()
            scan = Scan(changed={source: result}, digests={source: f"records:{time.time_ns()}"}, seen=1)
            self._build(live, scan, report, progress)
        report.files = 1
        report.seconds = time.perf_counter() - started
        return report

    def delete(self, ids: Iterable[str], *, wait: float = 0.0) -> IndexReport:
        """Remove articles by id (their source records stay, so a --rebuild brings them back).

        Ids the index does not hold are listed in ``report.not_found``; when none of the ids is
        held, nothing is written (no new generation). A missing index directory is not created.
        """
        started = time.perf_counter()
        report = IndexReport()
        ids = list(dict.fromkeys(ids))
        backend = self.backend
        backend.require()  # before the writer lock, which would create the directory
        with _disk_full_reported(backend), backend.lock(wait):
            backend.prepare()
            live = backend.require()
            held = backend.held(live, ids)
            report.not_found = [i for i in ids if i not in held]
            if held:
                self._build(live, Scan(), report, None, delete_ids=held)
            else:
                report.generation, report.articles = live.version, live.articles
        report.seconds = time.perf_counter() - started
        return report

    # -- scanning ----------------------------------------------------------------------------
    def _scan(
        self,
        paths: Iterable[str | Path],
        live: Snapshot | None,
        prune: bool,
        progress: Progress | None,
        stdin: BinaryIO | None,
        stdin_format: str,
    ) -> Scan:
        known = self.backend.ledger(live) if live is not None else {}
        fmap = FieldMap(self.settings.fields)
        return scan_sources(paths, known, fmap, prune=prune, stdin=stdin, stdin_format=stdin_format, progress=progress)

    # -- building ----------------------------------------------------------------------------
    def _build(
        self,
        live: Snapshot | None,
        scan: Scan,
        report: IndexReport,
        progress: Progress | None,
        delete_ids: set[str] | None = None,
    ) -> None:
        """Write the scanned changes (and ``delete_ids``) into a new snapshot and publish it."""
        model = ModelInfo(self.embedder.model_name, self.embedder.model_id, self.embedder.dim)
        writer = self.backend.writer(model, live)
        try:
            self._apply(writer, scan, report, progress, delete_ids or set())
            t0 = time.perf_counter()
            report.generation = writer.publish()
            report.stages["commit"] = report.stages.get("commit", 0.0) + time.perf_counter() - t0
        except BaseException:
            writer.abort()
            raise

    def _apply(
        self, writer: Writer, scan: Scan, report: IndexReport, progress: Progress | None, delete_ids: set[str]
    ) -> None:
        """Record the scanned sources, then merge, embed and write the touched articles batch by batch.

        Embedding a batch (native code that releases the GIL, on EMBED_WORKERS threads) runs while
        the previous batch is written (Python): the two cores stay busy.
        """
        stages = report.stages
        t0 = time.perf_counter()
        touched: set[str] = set()
        for key, result in sorted(scan.changed.items()):
            touched |= writer.replace_source(key, scan.digests[key], result.records)
        for key in sorted(scan.removed):
            touched |= writer.replace_source(key, None, [])
        report.files_changed, report.files_removed = len(scan.changed), len(scan.removed)
        urls = sorted(touched)
        stages["merge"] = time.perf_counter() - t0
        batches = [urls[i : i + BATCH] for i in range(0, len(urls), BATCH)] or [[]]
        changed: set[str] = set()
        removed: set[str] = set()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        stop = threading.Event()
        try:
            pending = pool.submit(self._prepare, writer, batches[0], delete_ids, report, stop)
            for n in range(len(batches)):
                upserts, vectors, deletes = pending.result()
                if n + 1 < len(batches):
                    pending = pool.submit(self._prepare, writer, batches[n + 1], delete_ids, report, stop)
                t0 = time.perf_counter()
                writer.write(upserts, vectors, deletes)
                stages["write"] = stages.get("write", 0.0) + time.perf_counter() - t0
                changed.update(a.id for a in upserts)
                removed.update(deletes)
                if progress:
                    progress("write", n + 1, len(batches))
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if delete_ids and not touched:  # `delete`: no source changed
            t0 = time.perf_counter()
            writer.write([], {}, sorted(delete_ids))
            removed.update(delete_ids)
            stages["write"] = stages.get("write", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        report.stories = self._assign_stories(writer, changed, removed)
        stages["stories"] = time.perf_counter() - t0
        report.articles = writer.count()
        report.removed = len(removed)

    def _prepare(
        self, writer: Writer, urls: list[str], delete_ids: set[str], report: IndexReport, stop: threading.Event
    ) -> tuple[list[Article], dict[str, np.ndarray], list[str]]:
        """One batch: its merged articles that changed, the vectors of those whose text changed, and the deletes."""
        if stop.is_set():
            raise InterruptedError("indexing was cancelled")
        t0 = time.perf_counter()
        merged = merge_records(writer.records_for(urls))
        ids = {article_id(u) for u in urls}
        old = writer.hashes(ids)
        for gone in delete_ids:
            merged.pop(gone, None)
        upserts = [a for a in merged.values() if old.get(a.id, ("",))[0] != a.content_hash]
        deletes = sorted(i for i in ids if i in old and i not in merged)
        fresh = [a for a in upserts if old.get(a.id, ("", ""))[1] != a.text_hash]
        report.added += sum(1 for a in upserts if a.id not in old)
        report.updated += sum(1 for a in upserts if a.id in old)
        report.stages["merge"] = report.stages.get("merge", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        matrix = self._vectors_for(fresh, report, None, stop)
        report.stages["embed"] = report.stages.get("embed", 0.0) + time.perf_counter() - t0
        return upserts, dict(zip((a.id for a in fresh), matrix, strict=True)), deletes

    def _assign_stories(self, writer: Writer, changed: set[str], removed: set[str]) -> dict:
        """Give the new and changed articles a story, re-examining only the articles near them in time."""
        if not changed and not removed:
            return {}
        previous = writer.stories()
        fresh_build = not previous
        if fresh_build:
            articles = writer.articles_between(None, None)
        else:
            dates = [a.published for a in writer.articles(sorted(changed)).values() if a.published]
            reach = timedelta(days=context_days())
            start, end = (min(dates) - reach, max(dates) + reach) if dates else (None, None)
            articles = writer.articles_between(start, end) if dates else writer.articles(sorted(changed))
        listed = sorted(articles.values(), key=lambda a: a.id)
        vectors = writer.vectors_of([a.id for a in listed]) if listed else np.zeros((0, self.embedder.dim))
        if fresh_build:
            assignment = assign_stories(listed, vectors)
        else:
            assignment = update_stories(
                previous, listed, vectors, [i for i in changed if i in articles], [i for i in removed]
            )
        writer.set_stories(assignment.stories)
        return dict(assignment.to_dict(), considered=len(listed))

    def _vectors_for(
        self,
        articles: list[Article],
        report: IndexReport,
        progress: Progress | None,
        stop: threading.Event | None = None,
    ) -> np.ndarray:
        """Embeddings of ``articles``: from the cache by (model id, text hash), the rest computed."""
        dim = self.embedder.dim
        if not articles:
            return np.zeros((0, dim), dtype=np.float32)
        cache = EmbeddingCache(self.root / "cache" / "embeddings.sqlite")
        workers = ThreadPoolExecutor(EMBED_WORKERS, thread_name_prefix="embed-worker")
        try:
            model = f"{self.embedder.model_id}:one-per-call"  # vectors from batched calls differ (see _embed)
            found = cache.get_many(model, sorted({a.text_hash for a in articles}), dim)
            missing = list({a.text_hash: a.text for a in articles if a.text_hash not in found}.items())
            batch = 512
            for start in range(0, len(missing), batch):
                if stop is not None and stop.is_set():
                    raise InterruptedError("indexing was cancelled")
                chunk = missing[start : start + batch]
                vecs = self._embed([text for _, text in chunk], workers)
                new = {h: v for (h, _), v in zip(chunk, vecs, strict=True)}
                cache.put_many(model, new)
                found.update(new)
                if progress:
                    progress("embed", min(start + batch, len(missing)), len(missing))
            report.embedded += len(missing)
            report.cache_hits += len(articles) - len(missing)
        finally:
            workers.shutdown(wait=True, cancel_futures=True)
            cache.close()
        return np.stack([found[a.text_hash] for a in articles]).astype(np.float32)


@contextmanager
def _disk_full_reported(backend) -> Iterator[None]:
    """A full disk anywhere in a write (SQLite, Whoosh, FAISS, the OS) becomes one DiskFull that says
    where, and what still serves. The unfinished snapshot is already gone (``_build`` aborts it)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        serving = _serving(backend)
        still = f"the previous index ({serving}) still serves" if serving else "no index was published"
        name = getattr(exc, "filename", None)
        writing = f" (writing {name})" if name else ""
        where = backend.where()
        where = str(Path(where).absolute()) if backend.name == "local" else where
        raise DiskFull(
            f"the disk is full: no space to write the new index generation in {where}{writing} - "
            f"{still} and nothing was changed; free some space and run the command again"
        ) from exc


def _serving(backend) -> str | None:
    """The live snapshot's version, or None (no index, or it cannot be read)."""
    try:
        live = backend.live()
    except (SearchError, OSError):
        return None
    return live.version if live is not None else None


def _report_scan(report: IndexReport, scan: Scan) -> None:
    report.files, report.files_unchanged = scan.seen, scan.unchanged
    report.skipped, report.skipped_count = scan.errors.items, scan.errors.count
    report.warnings, report.warnings_count = scan.warnings.items, scan.warnings.count
    report.fields = scan.fields_report()


def _check_usable(scan: Scan, strict: bool) -> None:
    """ArticleError when --strict and anything was skipped, or when a non-empty input gave nothing to index."""
    errors = scan.errors
    if strict and errors.count:
        raise ArticleError(f"{errors.count} bad file(s) or record(s), nothing written (--strict): {errors.items[0]}")
    if errors.count and not scan.changed and not scan.removed and not scan.unchanged:
        more = f" (and {errors.count - 1} more)" if errors.count > 1 else ""
        raise ArticleError(f"nothing could be indexed, nothing written: {errors.items[0]}{more}")


def verify(root: Path) -> gen.Manifest:
    """Check the live generation in ``root`` and return its manifest; IndexCorrupt says what is wrong.

    Every file matches its manifest checksum, and the store, the keyword index (and its score
    matrix) and the vector index hold the same article ids, as many as the manifest counts.
    """
    lease, path = gen.lease_current(root)
    try:
        manifest = gen.read_manifest(path)
        found = gen.checksums(path)
        if found != manifest.checksums:
            expected = manifest.checksums
            differ = sorted(k for k in found.keys() | expected.keys() if found.get(k) != expected.get(k))
            raise IndexCorrupt(f"{path}: {', '.join(differ[:5])} differ from the manifest - rebuild with --rebuild")
        keyword = KeywordIndex(path / gen.KEYWORD_DIR, matrix_dir=path / gen.MATRIX_DIR).open()
        store = ArticleStore(path / gen.STORE_FILE, readonly=True)
        try:
            check_consistent(keyword, VectorIndex.load(path / gen.VECTORS_FILE), store)
            count = store.count()
            if keyword.matrix is not None and set(keyword.matrix.ids) != store.ids():
                raise IndexCorrupt(f"{path}: the score matrix and the store hold different articles - use --rebuild")
        finally:
            keyword.close()
            store.close()
        if count != manifest.articles:
            raise IndexCorrupt(f"{path}: the manifest counts {manifest.articles} articles, the indexes hold {count}")
        return manifest
    finally:
        lease.release()
