"""Exclusive wall time per component of a search, by wrapping the engines' methods on live objects.

Nothing in ``search/`` is changed: the wrappers are instance attributes, removed by ``undo()``.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stopwatch:
    """Nested spans; each label gets its own time minus that of the spans inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [label, start, time of children]
        self._absorbing = 0

    @contextmanager
    def span(self, label: str) -> Iterator[None]:
        frame = [label, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - frame[1]
            self.totals[label] += elapsed - frame[2]
            self.calls[label] += 1
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, label: str, func: Callable, absorb: bool = False) -> Callable:
        """``func`` timed under ``label``; with ``absorb``, wrapped calls inside it count as its own time."""

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if self._absorbing:
                return func(*args, **kwargs)
            with self.span(label):
                self._absorbing += absorb
                try:
                    return func(*args, **kwargs)
                finally:
                    self._absorbing -= absorb

        return wrapper


def instrument(watch: Stopwatch, service, view) -> Callable[[], None]:
    """Time the embedder, Whoosh, FAISS, SQLite and fusion calls of ``service`` on ``view``."""
    points = [
        (service, "embed_query", "embed: cache + checks", False),
        (service.embedder, "embed", "embed: ONNX model", False),
        (view, "terms", "keyword: analyse words", False),
        (view, "restrict", "keyword: constraints and filters", False),
        (view, "keyword_match", "keyword: match set (score matrix)", False),
        (view, "keyword_top", "keyword: top candidates (score matrix)", False),
        (view, "keyword_scores", "keyword: scores of the match set", False),
        (view.keyword, "phrase_docnums", "whoosh: phrases", False),
        (view.vectors, "search", "faiss: search", False),
        (view.vectors, "within", "faiss: range search", False),
        (view.vectors, "vectors_of", "faiss: reconstruct (fusion)", False),
        (view.columns, "facets", "columns: facets", False),
        (view.store, "get_many", "store: get_many", False),
        (service, "_rank", "fusion: numpy", False),
    ]
    done = []
    for obj, name, label, absorb in points:
        if hasattr(obj, name):
            own = vars(obj).get(name, _MISSING)  # an instance attribute (e.g. a cached bound method) is put back
            setattr(obj, name, watch.wrap(label, getattr(obj, name), absorb))
            done.append((obj, name, own))

    def undo() -> None:
        for obj, name, own in done:
            if own is _MISSING:
                vars(obj).pop(name, None)
            else:
                setattr(obj, name, own)

    return undo


_MISSING = object()
