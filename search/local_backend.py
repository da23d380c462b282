"""The embedded backend: generations of Whoosh + score matrix + FAISS + SQLite under ``index_dir``.

Readers are ``search.local.LocalReader``, writers ``search.local_writer.LocalWriter``; this module
holds what is between: which generation is live, the writer lock, cleanup of unfinished builds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from search import generations as gen
from search.backend import ModelInfo, Snapshot
from search.config import Settings
from search.errors import IndexCorrupt
from search.local import LocalReader
from search.store import ArticleStore


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.index_path

    def stamp(self) -> object:
        try:
            st = os.stat(self.root / gen.CURRENT)
        except FileNotFoundError:
            return ()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def open_reader(self) -> LocalReader:
        return LocalReader.open(self.root)

    def lock(self, wait: float) -> AbstractContextManager:
        return gen.WriterLock(self.root, wait)

    def prepare(self) -> None:
        gen.cleanup(self.root)

    def live(self) -> Snapshot | None:
        """The live generation, unless there is none or it is in an older format (then it is built again)."""
        name = gen.current_name(self.root)
        path = self.root / name if name else None
        if path is None or not (path / gen.MANIFEST_FILE).is_file():
            return None
        try:
            manifest = gen.read_manifest(path)
        except IndexCorrupt:
            return None
        return Snapshot(path.name, manifest.articles, path, manifest.story_model)

    def require(self) -> Snapshot:
        path = gen.require_current(self.root)
        manifest = gen.read_manifest(path)
        return Snapshot(path.name, manifest.articles, path, manifest.story_model)

    def ledger(self, live: Snapshot) -> dict[str, str]:
        store = ArticleStore(Path(live.handle) / gen.STORE_FILE, readonly=True)
        try:
            return store.source_digests()
        finally:
            store.close()

    def held(self, live: Snapshot, ids: Sequence[str]) -> set[str]:
        store = ArticleStore(Path(live.handle) / gen.STORE_FILE, readonly=True)
        try:
            return set(store.hashes(ids))
        finally:
            store.close()

    def writer(self, model: ModelInfo, live: Snapshot | None):
        from search.local_writer import LocalWriter

        writer = LocalWriter(self.root, self.settings, model)
        try:
            writer.begin(Path(live.handle) if live is not None else None)
        except BaseException:
            writer.abort()
            raise
        return writer

    def where(self) -> str:
        return str(self.root)
