"""The indexer's embedding: texts go to worker threads, their vectors to the embedding cache.

Embedding is the cost of a build, so it runs beside everything else. Two kinds of work reach it:

- *requested*: the texts of a batch of merged articles the writer is about to write; first in line;
- *offered*: the texts of main records while the sources are still being read, embedded only when a
  worker would otherwise be idle. Most of them are the texts their articles end up with, so the
  writer later finds them in the cache; the few that are not (a record a later line replaced) cost
  a little work and no correctness.

Every vector goes into the embedding cache (SQLite, written by the calling thread only) and is read
back from it when the writer asks: memory holds the texts in flight, never the build's vectors.
Each text is embedded on its own (see ``embed_one_per_call``), on ``workers`` threads side by side:
ONNX Runtime releases the GIL, and single-threaded sessions side by side beat one two-threaded one.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Sequence

import numpy as np

from search.store import EmbeddingCache

WORKERS = 2  # embedding threads, one ONNX Runtime thread each
TASK = 32  # texts per task: both workers share a batch, and vectors come back while it is embedded
OFFERED_AHEAD = 1  # offered tasks queued per worker; more offers than that are declined
REQUESTED, OFFERED = 0, 1  # task priorities: requested texts go first

Items = Sequence[tuple[str, str]]  # (text hash, text)


def cache_model(model_id: str) -> str:
    """The cache's model key: vectors of one text per call (batched calls give slightly other vectors)."""
    return f"{model_id}:one-per-call"


class EmbedPool:
    """Worker threads embedding texts into ``cache``. Use from one thread; ``close`` when done."""

    def __init__(self, embedder, cache: EmbeddingCache, workers: int = WORKERS):
        self.embedder = embedder
        self.cache = cache
        self.model = cache_model(embedder.model_id)
        self.dim = embedder.dim
        self.workers = workers
        self.embedded = 0  # texts embedded by this pool
        self.busy = 0.0  # seconds the workers spent embedding, summed
        self.waited = 0.0  # seconds the caller waited for vectors
        self._mine: set[str] = set()  # hashes this pool embedded
        self._pending: set[str] = set()  # hashes queued or being embedded
        self._offered = 0  # offered tasks not yet started
        self._lock = threading.Lock()
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._results: queue.Queue = queue.Queue()
        self._order = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- work in ---------------------------------------------------------------------------------
    @property
    def hungry(self) -> bool:
        """Whether offered texts would be taken now (a worker would otherwise idle soon)."""
        return self._offered < OFFERED_AHEAD * self.workers

    def offer(self, items: Items) -> int:
        """Embed these texts if a worker has nothing better to do; returns how many were queued."""
        self.collect()
        if not self.hungry:
            return 0
        fresh = self._unknown(items)
        if fresh:
            with self._lock:
                self._offered += 1
            self._queue(OFFERED, fresh)
        return len(fresh)

    def request(self, items: Items) -> None:
        """Embed these texts ahead of any offered ones (those cached or on their way already are skipped)."""
        self.collect()
        fresh = self._unknown(items)
        for start in range(0, len(fresh), TASK):
            self._queue(REQUESTED, fresh[start : start + TASK])

    def _unknown(self, items: Items) -> list[tuple[str, str]]:
        unique = {h: t for h, t in items if h not in self._pending}
        cached = self.cache.known(self.model, list(unique)) if unique else set()
        return [(h, t) for h, t in unique.items() if h not in cached]

    def _queue(self, priority: int, items: list[tuple[str, str]]) -> None:
        self._start()
        self._pending.update(h for h, _ in items)
        self._tasks.put((priority, next(self._order), items))

    # -- vectors out -----------------------------------------------------------------------------
    def vectors(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of ``hashes`` from the cache, waiting for those still being embedded.

        Every hash must be cached or requested (or offered) before; a missing one raises KeyError.
        """
        t0 = time.perf_counter()
        while any(h in self._pending for h in hashes):
            self.collect(block=True)
        self.waited += time.perf_counter() - t0
        found = self.cache.get_many(self.model, sorted(set(hashes)), self.dim)
        missing = [h for h in hashes if h not in found]
        if missing:
            raise KeyError(f"no vector for text {missing[0]} (neither cached nor requested)")
        return found

    def from_cache(self, text_hash: str) -> bool:
        """Whether the vector of a requested text came from the cache (not embedded by this pool)."""
        return text_hash not in self._pending and text_hash not in self._mine

    def collect(self, block: bool = False) -> None:
        """Move finished vectors into the cache; with ``block``, wait for at least one task."""
        while True:
            try:
                done = self._results.get(block=block, timeout=1.0 if block else None)
            except queue.Empty:
                if block and not any(t.is_alive() for t in self._threads):
                    raise RuntimeError("the embedding workers stopped") from None
                if block:
                    continue
                return
            block = False
            hashes, vectors, seconds = done
            if isinstance(vectors, BaseException):
                raise vectors
            self.cache.put_many(self.model, dict(zip(hashes, vectors, strict=True)))
            self._pending.difference_update(hashes)
            self._mine.update(hashes)
            self.embedded += len(hashes)
            self.busy += seconds

    # -- the workers -----------------------------------------------------------------------------
    def _start(self) -> None:
        if self._threads:
            return
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"embed-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            priority, _, items = self._tasks.get()
            if items is None:
                return
            if priority == OFFERED:
                with self._lock:
                    self._offered -= 1
            if self._stop.is_set():
                continue
            t0 = time.perf_counter()
            try:
                vectors = embed_one_per_call(self.embedder, [text for _, text in items])
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
                self._results.put(([h for h, _ in items], exc, 0.0))
                continue
            self._results.put(([h for h, _ in items], vectors, time.perf_counter() - t0))

    def close(self) -> None:
        """Stop the workers: queued texts are dropped, the ones being embedded finish first."""
        self._stop.set()
        for _ in self._threads:
            self._tasks.put((OFFERED + 1, next(self._order), None))
        for thread in self._threads:
            thread.join()
        self._threads = []


def embed_one_per_call(embedder, texts: list[str]) -> np.ndarray:
    """Vectors of ``texts``, one text per inference.

    One text per inference makes a vector depend on its text alone: dynamic int8 quantisation
    scales activations per batch, so batching would tie it to batch-mates (cosine down to 0.990,
    nDCG@10 moving by 0.01 between identical builds).
    """
    return np.asarray(embedder.embed(texts, batch_size=1), dtype=np.float32).reshape(len(texts), embedder.dim)
