"""The index directory: immutable generations, an atomic CURRENT pointer, locks, manifest.

    index/
      CURRENT             name of the live generation, replaced atomically
      gen-000007/         one complete, consistent index (never modified once live)
        manifest.json     format version, model, dimension, counts, build time, checksums
        keyword/          Whoosh
        bm25/             BM25F contributions per (field, term), read from keyword/ (search/bm25.py)
        columns/          provider, domain, topics and date of each article, in bm25/ row order
        vocabulary.json   the indexed words as written, with document frequencies (typos, suggestions)
        vectors.faiss     FAISS
        store.sqlite      articles, source records
        readers.lock      readers hold a shared flock; cleanup needs an exclusive one
      cache/embeddings.sqlite
      writer.lock         the single writer holds an exclusive flock

A writer builds ``gen-N.tmp`` beside the live one, fsyncs it, renames it to ``gen-N`` and only
then replaces CURRENT. A crash at any point leaves CURRENT naming a complete generation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search.errors import IndexCorrupt, IndexLocked, IndexMissing, IndexReadOnly

FORMAT_VERSION = 2
CURRENT = "CURRENT"
KEYWORD_DIR, VECTORS_FILE, STORE_FILE, MANIFEST_FILE = "keyword", "vectors.faiss", "store.sqlite", "manifest.json"
MATRIX_DIR = "bm25"  # the keyword index's precomputed BM25F score matrix
COLUMNS_DIR = "columns"  # provider, topics and dates per matrix row (search/columns.py)
READERS_LOCK = "readers.lock"


def current_name(root: Path) -> str | None:
    try:
        name = (root / CURRENT).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{root / CURRENT} is unreadable ({exc}) - rebuild with `search-cli index`") from None
    return name or None


def require_current(root: Path) -> Path:
    name = current_name(root)
    if name is None or not (root / name / MANIFEST_FILE).is_file():
        raise IndexMissing(f"No index in {root}/ - build one with `search-cli index PATHS --index-dir {root}`.")
    return root / name


def next_generation(root: Path) -> tuple[str, Path]:
    """Name and temporary path for the generation after the newest one on disk."""
    numbers = [int(p.name[4:10]) for p in root.glob("gen-*") if p.name[4:10].isdigit()]
    name = f"gen-{max(numbers, default=0) + 1:06d}"
    return name, root / f"{name}.tmp"


def publish(root: Path, tmp: Path, name: str) -> Path:
    """Make a finished temporary generation live, atomically."""
    _fsync_tree(tmp)
    final = root / name
    os.replace(tmp, final)
    _fsync_dir(root)
    pointer = root / f"{CURRENT}.tmp"
    with open(pointer, "w", encoding="ascii") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, root / CURRENT)
    _fsync_dir(root)
    return final


def cleanup(root: Path) -> list[str]:
    """Remove unfinished builds and old generations no reader holds. Returns what was removed."""
    live = current_name(root)
    removed = []
    for path in sorted(root.glob("gen-*")):
        if path.name == live or not path.is_dir():
            continue
        doomed = path if path.name.endswith(".tmp") else _claim(path)
        if doomed is not None:
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(path.name)
    (root / f"{CURRENT}.tmp").unlink(missing_ok=True)
    return removed


def _claim(path: Path) -> Path | None:
    """Rename an old generation out of the way if no reader holds it; None if one does."""
    doomed = path.with_name(path.name + ".deleting.tmp")
    # Create the lock file if no reader ever did: renaming without the lock would race with a
    # reader that read CURRENT before the swap and is creating the file right now.
    fd = os.open(path / READERS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # Rename while holding the exclusive lock: a reader arriving now blocks, then finds
    # the generation gone and moves on to CURRENT.
    os.rename(path, doomed)
    os.close(fd)
    return doomed


class ReaderLease:
    """A shared lock on one generation: while held, cleanup leaves that generation alone.

    An index this process may not write (a read-only volume, another user's files) is read all the same: the
    lock file is opened for reading, which flock allows, or, when no reader ever made it, read without a lease
    (a writer that could remove the generation can also make the file, and then waits for no one)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = _open_readers_lock(path / READERS_LOCK)
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_readers_lock(file: Path) -> int:
    try:
        return os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise  # FileNotFoundError: the generation is gone, and lease_current moves on to CURRENT
    try:
        return os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        if not file.parent.is_dir():
            raise
        return -1


def lease_current(root: Path, attempts: int = 20) -> tuple[ReaderLease, Path]:
    """Lock the live generation for reading (retrying if it is swapped meanwhile)."""
    for _ in range(attempts):
        path = require_current(root)
        try:
            lease = ReaderLease(path)
        except FileNotFoundError:
            continue
        if (path / MANIFEST_FILE).is_file():
            return lease, path
        lease.release()
        time.sleep(0.01)
    raise IndexCorrupt(f"CURRENT in {root} keeps naming a missing generation - re-run `search-cli index`")


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created if missing), waiting for any other holder:
    what one process must do alone, such as creating a file that others open at the same time."""
    with open(lock_file, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class WriterLock:
    """The single-writer lock. ``wait`` seconds to wait for another writer; 0 fails at once."""

    def __init__(self, root: Path, wait: float = 0.0):
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise IndexReadOnly(f"cannot write the index in {root}: {exc.strerror}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise IndexLocked(
                        f"another process is writing to {root} - wait for it, or pass --wait SECONDS"
                    ) from None
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- manifest ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    format_version: int
    model_name: str
    model_id: str
    dim: int
    articles: int
    built_at: str
    checksums: dict[str, str]
    generation: str = ""
    story_model: str = ""  # search.stories.model_key of the model that assigned the stories ("" before it was kept)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def write_manifest(path: Path, manifest: Manifest) -> None:
    with open(path / MANIFEST_FILE, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_dict(), fh, indent=2, sort_keys=True)


def read_manifest(path: Path) -> Manifest:
    try:
        data = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise IndexCorrupt(f"manifest in {path} is unreadable ({exc}) - rebuild with `search-cli index`") from None
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorrupt(
            f"index in {path} has format {manifest.format_version}, this version reads {FORMAT_VERSION} "
            "- rebuild it with `search-cli index`"
        )
    return manifest


def checksums(path: Path) -> dict[str, str]:
    """sha256 of every file of a generation except the manifest and the readers lock."""
    out = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel in (MANIFEST_FILE, READERS_LOCK) or rel.endswith("WRITELOCK"):
            continue
        digest = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[rel] = digest.hexdigest()
    return out


def copy_tree_linked(src: Path, dst: Path) -> None:
    """Copy a directory of write-once files (Whoosh segments) with hard links where possible."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name.endswith("WRITELOCK") or item.is_dir():
            continue
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
        _fsync_dir(directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
