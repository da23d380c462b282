"""The single writer: turns article files into a new index generation.

Every run is incremental: files whose bytes are unchanged are not parsed again, articles whose
content is unchanged are not rewritten, and texts already embedded come from the cache.
The new generation is built beside the live one and swapped in atomically.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from search import generations as gen
from search.backend import ModelInfo, Snapshot, Writer, make_backend
from search.config import Settings
from search.embed_pool import TASK, EmbedPool
from search.errors import ArticleError, DiskFull, IndexCorrupt, SearchError, is_disk_full
from search.keyword import KeywordIndex
from search.loader import Record
from search.local_writer import check_consistent
from search.mapping import FieldMap
from search.merge import merge_records
from search.models import Article, embedded_text, text_digest
from search.scan import Scan, scan_sources
from search.store import ArticleStore, EmbeddingCache, UrlLog
from search.stories import Timeline, assign_all, model_key, update_all
from search.urls import article_id
from search.vectors import VectorIndex

Progress = Callable[[str, int, int], None]
EMBED_WORKERS = 2
BATCH = 1_000  # articles merged, embedded and written together: memory does not grow with the corpus
LOOKAHEAD = 2  # batches merged and sent to the embedding workers ahead of the one being written


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
        Sources are streamed into the new snapshot's ledger as they are read (a changed source
        starts the build), so memory does not grow with the input.
        """
        started = time.perf_counter()
        report = IndexReport()
        backend = self.backend
        with _disk_full_reported(backend), backend.lock(wait):
            backend.prepare()
            live = None if rebuild else backend.live()
            known = backend.ledger(live) if live is not None else {}
            scan = Scan()
            fmap = FieldMap(self.settings.fields)
            sources = scan_sources(
                paths,
                known,
                fmap,
                scan,
                prune=prune,
                stdin=stdin,
                stdin_format=stdin_format,
                progress=progress,
                skip=[self.settings.index_dir],  # an index inside the folder indexed holds no articles
            )
            with _Build(self, live, report, progress) as build:
                t0 = time.perf_counter()
                for changed in sources:
                    build.add_source(changed.key, changed.digest, changed.records)
                for key in sorted(scan.removed):
                    build.add_source(key, None, ())
                report.stages["load"] = time.perf_counter() - t0
                _report_scan(report, scan)
                _check_usable(scan, strict)
                if build.begun or build.restory:
                    build.finish()
                else:  # nothing to write
                    report.generation, report.articles = (live.version, live.articles) if live is not None else ("", 0)
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
        backend = self.backend
        with _disk_full_reported(backend), backend.lock(wait):
            backend.prepare()
            live = None if rebuild else backend.live()
            with _Build(self, live, report, progress) as build:
                build.add_source(source, f"records:{time.time_ns()}", records)
                report.files_changed = 1
                build.finish()
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
                with _Build(self, live, report, None, delete_ids=held) as build:
                    build.finish()
            else:
                report.generation, report.articles = live.version, live.articles
        report.seconds = time.perf_counter() - started
        return report


@dataclass
class _Batch:
    """Merged articles of one batch of touched URLs, waiting for their vectors to be written."""

    upserts: list[Article]
    fresh: list[Article]  # the upserts whose text changed: they need a vector
    deletes: list[str]


class _Build:
    """One new snapshot: sources streamed into its ledger, then the touched articles merged, embedded
    and written batch by batch, stories assigned, and the snapshot published.

    The writer is begun by the first source that changed (an unchanged re-index begins nothing).
    Embedding runs on worker threads the whole time (``search.embed_pool``): while sources are read,
    it embeds the texts of their main records; then it embeds each batch's missing texts while the
    batches before it are written, LOOKAHEAD batches ahead. Memory holds a few batches of articles,
    the vectors index and the URLs touched (on disk), never the whole input.
    """

    def __init__(self, indexer: Indexer, live: Snapshot | None, report: IndexReport, progress, delete_ids=None):
        self.indexer = indexer
        self.live = live
        self.report = report
        self.progress = progress
        self.delete_ids: set[str] = set(delete_ids or ())
        self.writer: Writer | None = None
        self.pool: EmbedPool | None = None
        self.cache: EmbeddingCache | None = None
        self.touched = UrlLog()

    def __enter__(self) -> _Build:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if self.pool is not None:
                self.pool.close()
                self.report.embedded = self.pool.embedded
            if exc is not None and self.writer is not None:
                self.writer.abort()
        finally:
            if self.cache is not None:
                self.cache.close()
            self.touched.close()

    @property
    def begun(self) -> bool:
        return self.writer is not None

    @property
    def restory(self) -> bool:
        """Whether the live snapshot's stories were assigned by another story model than this release's: then
        every story is assigned again, even when no article changed."""
        return self.live is not None and self.live.story_model != model_key()

    def _begin(self) -> Writer:
        if self.writer is None:
            indexer = self.indexer
            embedder = indexer.embedder
            model = ModelInfo(embedder.model_name, embedder.model_id, embedder.dim)
            self.cache = EmbeddingCache(indexer.root / "cache" / "embeddings.sqlite")
            self.pool = EmbedPool(embedder, self.cache, EMBED_WORKERS)
            self.writer = indexer.backend.writer(model, self.live)
        return self.writer

    # -- the ledger ------------------------------------------------------------------------------
    def add_source(self, key: str, digest: str | None, records: Iterable[Record]) -> None:
        """Replace one source's records in the ledger (None digest: remove the source)."""
        writer = self._begin()
        self.touched.add(writer.replace_source(key, digest, self._offering(records)))

    def _offering(self, records: Iterable[Record]) -> Iterator[Record]:
        """``records``, offering the texts of main records to the embedding workers as they pass."""
        pool, offered = self.pool, []
        for record in records:
            if record.main and pool.hungry:
                text = embedded_text(record.fields.get("title") or "", record.fields.get("excerpt") or "")
                offered.append((text_digest(text), text))
                if len(offered) >= TASK:
                    pool.offer(offered)
                    offered = []
            yield record
        if offered:
            pool.offer(offered)

    # -- the articles ----------------------------------------------------------------------------
    def finish(self) -> None:
        """Merge, embed and write the touched articles, assign stories, publish."""
        writer, report, stages = self._begin(), self.report, self.report.stages
        changed: set[str] = set()
        removed: set[str] = set()
        window: deque[_Batch] = deque()
        batches = max(1, -(-self.touched.count // BATCH))
        written = [0]

        def write(batch: _Batch) -> None:
            t0 = time.perf_counter()
            vectors = self.pool.vectors([a.text_hash for a in batch.fresh])
            stages["embed wait"] = stages.get("embed wait", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            writer.write(batch.upserts, {a.id: vectors[a.text_hash] for a in batch.fresh}, batch.deletes)
            stages["write"] = stages.get("write", 0.0) + time.perf_counter() - t0
            changed.update(a.id for a in batch.upserts)
            removed.update(batch.deletes)
            written[0] += 1
            if self.progress:
                self.progress("write", written[0], batches)

        for urls in self.touched.batches(BATCH):
            window.append(self._prepare(urls))
            while len(window) > LOOKAHEAD:
                write(window.popleft())
        while window:
            write(window.popleft())
        if self.delete_ids and not self.touched.count:  # `delete`: no source changed
            t0 = time.perf_counter()
            writer.write([], {}, sorted(self.delete_ids))
            removed.update(self.delete_ids)
            stages["write"] = stages.get("write", 0.0) + time.perf_counter() - t0
        stages["embed"] = self.pool.busy / self.pool.workers
        t0 = time.perf_counter()
        report.stories = self._assign_stories(changed, removed)
        stages["stories"] = time.perf_counter() - t0
        report.articles = writer.count()
        report.removed = len(removed)
        report.embedded = self.pool.embedded
        t0 = time.perf_counter()
        report.generation = writer.publish()
        stages["commit"] = time.perf_counter() - t0

    def _prepare(self, urls: list[str]) -> _Batch:
        """One batch: its merged articles that changed (their new texts sent to the embedders) and its deletes."""
        t0 = time.perf_counter()
        writer, report = self.writer, self.report
        merged = merge_records(writer.records_for(urls))
        ids = {article_id(u) for u in urls}
        old = writer.hashes(ids)
        for gone in self.delete_ids:
            merged.pop(gone, None)
        upserts = [a for a in merged.values() if old.get(a.id, ("",))[0] != a.content_hash]
        deletes = sorted(i for i in ids if i in old and i not in merged)
        fresh = [a for a in upserts if old.get(a.id, ("", ""))[1] != a.text_hash]
        report.added += sum(1 for a in upserts if a.id not in old)
        report.updated += sum(1 for a in upserts if a.id in old)
        self.pool.request([(a.text_hash, a.text) for a in fresh])
        report.cache_hits += sum(1 for a in fresh if self.pool.from_cache(a.text_hash))
        report.stages["merge"] = report.stages.get("merge", 0.0) + time.perf_counter() - t0
        return _Batch(upserts, fresh, deletes)

    def _assign_stories(self, changed: set[str], removed: set[str]) -> dict:
        """Give the new and changed articles a story, re-examining only the articles near them in time; every
        article when the live snapshot's stories came from another story model (``restory``). Articles are read a
        slice at a time (``search.stories``), so memory does not grow with the index."""
        again = self.restory
        if not changed and not removed and not again:
            return {}
        writer = self.writer
        previous = writer.stories()
        timeline = Timeline.of(writer.dates())
        source = _WriterStories(writer)
        if previous and not again:
            kept = set(timeline.ids)
            assignment = update_all(timeline, source, previous, [i for i in changed if i in kept], removed)
        else:
            assignment = assign_all(timeline, source)
        writer.set_stories(assignment.stories, model_key())
        out = dict(assignment.to_dict(), considered=source.read)
        if again:
            out["model_changed"] = {"from": self.live.story_model, "to": model_key()}
        return out


class _WriterStories:
    """The snapshot being written as a story source; counts the articles it hands out."""

    def __init__(self, writer: Writer):
        self.writer = writer
        self.read = 0

    def articles(self, ids: Sequence[str]) -> list[Article]:
        found = self.writer.articles(ids)
        self.read += len(ids)
        return [found[i] for i in ids]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        return self.writer.vectors_of(ids)


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
    report.files_changed, report.files_removed = scan.changed, len(scan.removed)
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
