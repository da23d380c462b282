"""The seam between the query layer and indexer above and a search engine below.

One *reader* per published snapshot answers the service's questions; one *writer* per build
takes batches of merged, embedded articles and publishes a new snapshot atomically. Two
backends implement them, chosen by the ``backend`` setting:

- ``local`` (the default): Whoosh + BM25F score matrix + FAISS + SQLite, in immutable
  generations under ``index_dir`` (``search/local.py``, ``search/local_writer.py``);
- ``qdrant``: a Qdrant collection per build behind an alias (``search/qdrant.py``), on a
  server (``qdrant_url``) or in process (``qdrant_path``).

Everything else (the query language, what matches, embedding, merging records, fusion, story
detection, validation) lives above the seam and is written once.

Keys: readers speak in int64 article keys (``search.urls.id_to_int``), so sets of articles are
numpy arrays; a ``restriction`` is whatever the backend uses to say "only these articles" (a
boolean mask over rows locally, a filter in Qdrant) and is passed back to it unopened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from search.config import BACKENDS, Settings
from search.errors import ConfigError
from search.models import Article
from search.query import Plan

if TYPE_CHECKING:  # the loader imports the YAML and feed parsers, which a query never needs
    from search.loader import Record


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model an index is built with; a writer refuses to mix two."""

    name: str
    id: str
    dim: int


@dataclass(frozen=True)
class Snapshot:
    """What a backend says about its live snapshot before anything is opened."""

    version: str  # generation name or collection name
    articles: int
    handle: Any = None  # the backend's own (a generation's path, a collection name)
    story_model: str = ""  # the story model its stories were assigned with (search.stories.model_key); "" unknown


class Reader(Protocol):
    """One published snapshot, opened for reading. ``Scored`` is search.local.Scored (keys, scores)."""

    version: str
    size: int
    model_name: str
    dim: int

    def close(self) -> None: ...

    # words
    def terms(self, text: str) -> list[str]: ...
    def known(self, term: str) -> bool: ...
    def vocabulary(self) -> Any: ...

    # constraints: the plan's operators and the filters, as the backend's own restriction (None: none)
    def restrict(self, plan: Plan, filters: Any) -> Any: ...

    # the keyword side
    def keyword_match(self, groups: list, required: int, scoring: list, restriction: Any) -> Any: ...
    def keyword_scores(self, scoring: list, keys: np.ndarray) -> np.ndarray: ...
    def keyword_top_terms(self, scoring: list, limit: int, restriction: Any) -> Any: ...
    def keyword_top(self, weighted: list[tuple[str, str, float]], limit: int, restriction: Any) -> Any: ...
    def key_terms(self, text: str) -> list[tuple[str, str, float]]: ...

    # the semantic side
    def semantic_top(self, vector: np.ndarray, limit: int, restriction: Any) -> Any: ...
    def semantic_match(self, vector: np.ndarray, floor: float, restriction: Any) -> Any: ...
    def vectors_of(self, keys: np.ndarray) -> np.ndarray: ...

    # sets of articles
    def facets(self, keys: np.ndarray, size: int | None = 10) -> dict[str, list[tuple[str, int]]]: ...
    def dates(self, keys: np.ndarray) -> np.ndarray: ...
    def stories(self, keys: np.ndarray) -> np.ndarray: ...
    def story_members(self, story_id: str) -> list[str]: ...
    def articles(self, ids: list[str]) -> dict[str, Article]: ...
    def top_topics(self, n: int) -> list[tuple[str, int]]: ...
    def newest(self, n: int) -> list[Article]: ...
    def stats(self) -> dict: ...


class Writer(Protocol):
    """One build: a new snapshot written in batches, invisible until ``publish``."""

    def publish(self) -> str: ...
    def abort(self) -> None: ...

    # the ledger: the records each source gave (incremental updates merge from it)
    def replace_source(self, key: str, digest: str | None, records: Sequence[Record]) -> set[str]: ...
    def records_for(self, urls: Iterable[str]) -> list[Record]: ...

    # articles
    def hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]: ...
    def articles(self, ids: Sequence[str]) -> dict[str, Article]: ...
    def count(self) -> int: ...
    def write(self, upserts: Sequence[Article], vectors: dict[str, np.ndarray], deletes: Sequence[str]) -> None: ...
    def vectors_of(self, ids: Sequence[str]) -> np.ndarray: ...

    # stories
    def stories(self) -> dict[str, str]: ...
    def dates(self) -> dict[str, datetime | None]: ...  # every article's publication time
    def set_stories(self, stories: dict[str, str], model: str) -> None: ...  # model: search.stories.model_key


class Backend(Protocol):
    name: str

    def stamp(self) -> object:
        """Cheap; changes whenever a new snapshot is published (readers reopen then)."""

    def open_reader(self) -> Reader:
        """The live snapshot (IndexMissing when there is none)."""

    def lock(self, wait: float) -> AbstractContextManager:
        """The single writer's lock (IndexLocked when another holds it past ``wait`` seconds)."""

    def prepare(self) -> None:
        """Clear what an interrupted build left behind."""

    def live(self) -> Snapshot | None:
        """The live snapshot to update, or None (none yet, or one this version cannot update)."""

    def require(self) -> Snapshot:
        """The live snapshot, or IndexMissing naming the fix."""

    def ledger(self, live: Snapshot) -> dict[str, str]:
        """Source key -> digest of every source the live snapshot was built from."""

    def held(self, live: Snapshot, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the live snapshot holds."""

    def writer(self, model: ModelInfo, live: Snapshot | None) -> Writer:
        """A writer for the next snapshot, begun from ``live`` (an update) or empty (a first build)."""

    def where(self) -> str:
        """Where the index lives, for messages and ``stats`` (a directory, a URL and collection)."""


def make_backend(settings: Settings) -> Backend:
    """The backend the settings choose."""
    if settings.backend == "local":
        from search.local_backend import LocalBackend

        return LocalBackend(settings)
    if settings.backend == "qdrant":
        from search.qdrant import QdrantBackend

        return QdrantBackend(settings)
    raise ConfigError(f"backend={settings.backend!r}: use one of {', '.join(BACKENDS)}")
