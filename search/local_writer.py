"""The embedded backend's writer: builds the next generation of an index directory.

    writer = LocalWriter(root, settings, model)
    writer.begin(rebuild=False)       # gen-N.tmp beside the live generation: copies of its parts
    writer.replace_source(...)        # the ledger: which records each source file gave
    writer.write(upserts, vectors, deletes)   # batches of merged articles
    writer.set_stories({...}, model)
    writer.publish()                  # score matrix, columns, vocabulary, manifest; then the atomic swap

Nothing is visible to readers before ``publish`` renames the finished generation and replaces
CURRENT; ``abort`` (or a crash) leaves the live generation as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from search import generations as gen
from search.backend import ModelInfo
from search.columns import Columns
from search.config import Settings
from search.errors import ConfigError, IndexCorrupt, SearchError
from search.keyword import KeywordIndex
from search.loader import Record
from search.models import Article
from search.store import ArticleStore
from search.vectors import VectorIndex
from search.vocabulary import Vocabulary


class LocalWriter:
    def __init__(self, root: Path, settings: Settings, model: ModelInfo):
        self.root = Path(root)
        self.settings = settings
        self.model = model
        self.name = ""
        self.tmp: Path | None = None
        self.live: Path | None = None
        self._keyword: KeywordIndex | None = None
        self._vectors: VectorIndex | None = None
        self._store: ArticleStore | None = None
        self._vocabulary = Vocabulary()
        self._story_model = ""

    # -- lifecycle -------------------------------------------------------------------------------
    def begin(self, live: Path | None) -> None:
        """Start a generation: a copy of ``live`` (an update) or an empty one (a first build, a rebuild)."""
        self.live = live
        self.name, self.tmp = gen.next_generation(self.root)
        self.tmp.mkdir(parents=True)
        boost = self.settings.title_boost
        if live is None:
            self._keyword = KeywordIndex(self.tmp / gen.KEYWORD_DIR, boost).create()
            self._vectors = VectorIndex(self.model.dim)
            self._store = ArticleStore(self.tmp / gen.STORE_FILE)
        else:
            manifest = gen.read_manifest(live)
            self.check_model(manifest)
            self._story_model = manifest.story_model
            gen.copy_tree_linked(live / gen.KEYWORD_DIR, self.tmp / gen.KEYWORD_DIR)
            shutil.copyfile(live / gen.STORE_FILE, self.tmp / gen.STORE_FILE)
            self._keyword = KeywordIndex(self.tmp / gen.KEYWORD_DIR, boost).open()
            self._vectors = VectorIndex.load(live / gen.VECTORS_FILE)
            self._store = ArticleStore(self.tmp / gen.STORE_FILE)
            self._vocabulary = Vocabulary.load(live)
        self._keyword.begin_writes()

    def check_model(self, manifest: gen.Manifest) -> None:
        if (manifest.model_name, manifest.dim) != (self.model.name, self.model.dim):
            raise ConfigError(
                f"the index in {self.root} was built with {manifest.model_name} ({manifest.dim} dims), the "
                f"configured model is {self.model.name} ({self.model.dim}) - re-run with --rebuild"
            )

    def publish(self) -> str:
        """Finish the generation and make it live, atomically; returns its name."""
        keyword, vectors, store = self._keyword, self._vectors, self._store
        keyword.commit_writes()
        row_ids = keyword.export_matrix(self.tmp / gen.MATRIX_DIR).ids
        vectors.compress_above(self.settings.approximate_above)
        vectors.save(self.tmp / gen.VECTORS_FILE)
        store.commit()
        self._vocabulary.save(self.tmp)
        Columns.build(row_ids, store.facts()).save(self.tmp / gen.COLUMNS_DIR)
        check_consistent(keyword, vectors, store)
        count = store.count()
        self._close_parts()
        manifest = gen.Manifest(
            format_version=gen.FORMAT_VERSION,
            model_name=self.model.name,
            model_id=self.model.id,
            dim=self.model.dim,
            articles=count,
            built_at=datetime.now(UTC).isoformat(),
            checksums=gen.checksums(self.tmp),
            generation=self.name,
            story_model=self._story_model,
        )
        gen.write_manifest(self.tmp, manifest)
        gen.publish(self.root, self.tmp, self.name)
        self.tmp = None
        gen.cleanup(self.root)
        return self.name

    def abort(self) -> None:
        """Drop the unfinished generation (also one renamed into place but never made live)."""
        self._close_parts()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.name and _serving(self.root) != self.name:
            shutil.rmtree(self.root / self.name, ignore_errors=True)
            (self.root / f"{gen.CURRENT}.tmp").unlink(missing_ok=True)

    def _close_parts(self) -> None:
        if self._keyword is not None:
            self._keyword.cancel_writes()
            self._keyword.close()
            self._keyword = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- the ledger ------------------------------------------------------------------------------
    def source_digests(self) -> dict[str, str]:
        return self._store.source_digests()

    def replace_source(self, key: str, digest: str | None, records: Sequence[Record]) -> set[str]:
        return self._store.replace_source(key, digest, records)

    def records_for(self, urls: Iterable[str]) -> list[Record]:
        return self._store.records_for(urls)

    # -- articles --------------------------------------------------------------------------------
    def hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        return self._store.hashes(ids)

    def articles(self, ids: Sequence[str]) -> dict[str, Article]:
        return self._store.get_many(ids)

    def count(self) -> int:
        return self._store.count()

    def write(self, upserts: Sequence[Article], vectors: dict[str, np.ndarray], deletes: Sequence[str]) -> None:
        """Apply one batch: ``upserts`` replace their articles; ``vectors`` holds the new vector of
        each upsert whose text changed (the others keep theirs); ``deletes`` are removed."""
        previous = self._store.get_many([a.id for a in upserts] + list(deletes))
        self._vocabulary.remove(a.text for a in previous.values())
        self._vocabulary.add(a.text for a in upserts)
        self._keyword.write(sorted(upserts, key=lambda a: a.id), deletes)
        fresh = [a.id for a in upserts if a.id in vectors]
        self._vectors.remove([*deletes, *(i for i in fresh if i in previous)])
        if fresh:
            self._vectors.add(fresh, np.stack([vectors[i] for i in fresh]))
        self._store.delete(deletes)
        self._store.upsert(upserts)

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        return self._vectors.vectors(list(ids))

    # -- stories ---------------------------------------------------------------------------------
    def stories(self) -> dict[str, str]:
        return self._store.stories()

    def dates(self) -> dict[str, datetime | None]:
        return self._store.dates()

    def set_stories(self, stories: dict[str, str], model: str) -> None:
        self._store.set_stories(stories)
        self._story_model = model


def check_consistent(keyword: KeywordIndex, vectors: VectorIndex, store: ArticleStore) -> None:
    ids = store.ids()
    if keyword.ids() != ids or vectors.ids() != ids:
        raise IndexCorrupt(
            f"indexes disagree: store {len(ids)}, keyword {keyword.count()}, vectors {vectors.count} articles"
        )


def _serving(root: Path) -> str | None:
    """The live generation's name, or None (no index, or CURRENT unreadable)."""
    try:
        return gen.current_name(root)
    except SearchError:
        return None
