"""Where articles come from: files under the input paths, or standard input.

:func:`find_sources` lists the sources under some paths, each a :class:`Source` that says why
it cannot be read when it cannot (a symbolic link loop, a broken link, a FIFO or other file that
is not a regular one); :func:`open_regular` opens a file only if it is a regular one, without
ever blocking on a FIFO.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from search.errors import ArticleError
from search.formats import SUFFIXES, format_of

ARTICLE_SUFFIXES = tuple(SUFFIXES) + tuple(suffix + ".gz" for suffix in SUFFIXES)
STDIN = "-"
DIGEST_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Source:
    """A file or standard input; ``error`` says why it cannot be read."""

    name: str  # as found, or "-" for standard input
    key: str = ""  # the resolved path, which the store keys records by ("" for standard input)
    format: str = ""  # "" = guessed from the first bytes
    error: ArticleError | None = None
    within: str = ""  # its path under the directory it was found in (its name when given itself), "/"-separated

    @property
    def is_stdin(self) -> bool:
        return self.name == STDIN


@dataclass
class Inputs:
    sources: list[Source] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # directories without article files


def find_sources(paths: Iterable[str | Path], stdin_format: str = "", skip: Iterable[str | Path] = ()) -> Inputs:
    """The sources under ``paths`` (files, directories, "-"), sorted per directory, without duplicates;
    directories in ``skip`` (an index inside the folder being indexed) are not looked into."""
    out, seen = Inputs(), set()
    skipped = {ident for ident in map(_identity, skip) if ident}
    for raw in paths:
        if str(raw) == STDIN:
            found = [Source(STDIN, format=stdin_format)]
        else:
            path = Path(raw)
            if not os.path.lexists(path):
                raise ArticleError("no such file or directory", str(path))
            if path.is_dir():
                found = [_within(source_for(p), p.relative_to(path)) for p in sorted(_walk(path, skipped))]
            else:
                found = [_within(source_for(path), Path(path.name))]
            if path.is_dir() and not found:
                out.empty.append(str(path))
        for source in found:
            ident = source.key or source.name
            if ident not in seen:
                seen.add(ident)
                out.sources.append(source)
    return out


def iter_article_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The readable article files under ``paths`` (find_sources also reports the others)."""
    for source in find_sources(paths).sources:
        if source.error is None and not source.is_stdin:
            yield Path(source.name)


def _within(source: Source, relative: Path) -> Source:
    return Source(source.name, source.key, source.format, source.error, relative.as_posix())


def _identity(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of a directory, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _walk(root: Path, skip: set[tuple[int, int]] = frozenset()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not (skip and _identity(Path(dirpath) / d) in skip)
        )
        for name in filenames:
            if name.lower().endswith(ARTICLE_SUFFIXES) and not name.startswith("."):
                yield Path(dirpath) / name


def source_for(path: Path) -> Source:
    name, fmt = str(path), format_of(path.name)
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
        key = str(path.resolve())
    except (OSError, RuntimeError) as exc:
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        reason = "symbolic link loop" if loop else "broken symbolic link" if path.is_symlink() else os_reason(exc)
        return Source(name, format=fmt, error=ArticleError(f"cannot read: {reason}", name))
    if not stat.S_ISREG(mode):
        return Source(name, key, fmt, ArticleError(f"not a regular file ({_kind(mode)}) - skipped", name))
    return Source(name, key, fmt)


def _kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "a directory" if stat.S_ISDIR(mode) else "")


def os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; a FIFO or device is refused without blocking."""
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = "symbolic link loop" if exc.errno == errno.ELOOP else os_reason(exc)
        raise ArticleError(f"cannot read: {reason}", name) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ArticleError(f"not a regular file ({_kind(mode)}) - skipped", name)
    os.set_blocking(fd, True)
    return io.FileIO(fd, "rb", closefd=True)


def file_digest(path: str | Path, keep: int = 0) -> tuple[str, bytes | None]:
    """The digest SourceReader computes for a file, without parsing it, and its bytes if at most ``keep``.

    A caller that goes on to parse a small file passes the bytes to SourceReader instead of reading it again.
    """
    digest, kept = hashlib.blake2b(digest_size=16), bytearray()
    with open_regular(path) as fh:
        while chunk := fh.read(DIGEST_CHUNK):
            digest.update(chunk)
            if len(kept) + len(chunk) <= keep:
                kept += chunk
            else:
                keep = -1
    return digest.hexdigest(), bytes(kept) if keep >= 0 else None
