"""The indexer's reading step: which sources under the input paths changed since the live generation.

A file whose bytes hash to the digest the live generation stored for it is not parsed again;
the others are read through the loader and streamed, record by record, to the indexer: no more
than one source's current record is held, whatever the size of the input. Standard input is a
new source on every run (so successive streams add up), unless a stream with the same digest
was indexed before; it is copied to a temporary file first, so that its digest is known before
anything is written.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from search.errors import ArticleError
from search.formats import CHUNK, MAX_RECORD_BYTES, SUFFIXES
from search.loader import STDIN_NAME, STDIN_PREFIX, Record, SourceReader
from search.mapping import FieldMap
from search.sources import STDIN, Source, file_digest, find_sources

MAX_REPORTED = 1_000  # messages kept per kind in a report; all are counted

Progress = Callable[[str, int, int], None]


@dataclass
class Messages:
    """One-line messages of ArticleErrors: the first MAX_REPORTED kept, every one counted."""

    items: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, errors: Iterable[ArticleError | str], count: int | None = None) -> None:
        """Add ``errors``, of which there were ``count`` (more than given when the source kept only some)."""
        added = 0
        for error in errors:
            added += 1
            if len(self.items) < MAX_REPORTED:
                self.items.append(str(error))
        self.count += added if count is None else max(count, added)


@dataclass(frozen=True)
class Changed:
    """One source that differs from the live generation: its records, streamed once (at least one)."""

    key: str
    digest: str
    records: Iterator[Record]


@dataclass
class Scan:
    """What scanning the input paths found. ``sources()`` streams the changed sources; the counts and
    messages are final once it is exhausted (and ``removed`` is set then, with --prune)."""

    removed: set[str] = field(default_factory=set)  # sources gone from under the input paths (--prune)
    seen: int = 0  # sources found
    changed: int = 0  # sources read and streamed
    unchanged: int = 0  # sources not parsed again (or read and found identical)
    errors: Messages = field(default_factory=Messages)  # sources or records skipped
    warnings: Messages = field(default_factory=Messages)  # indexed, with something cut or dropped; empty dirs
    filled: Counter[tuple[str, str]] = field(default_factory=Counter)  # (article field, source field) -> records

    def fields_report(self) -> dict[str, dict[str, int]]:
        """Article field -> {source field: records it filled}."""
        out: dict[str, dict[str, int]] = {}
        for (target, source), n in sorted(self.filled.items()):
            out.setdefault(target, {})[source] = n
        return out


def scan_sources(
    paths: Iterable[str | Path],
    known: dict[str, str],
    fmap: FieldMap,
    scan: Scan,
    *,
    prune: bool = False,
    stdin: BinaryIO | None = None,
    stdin_format: str = "",
    progress: Progress | None = None,
    skip: Iterable[str | Path] = (),
) -> Iterator[Changed]:
    """The sources under ``paths`` that differ from ``known`` (source key -> digest), one at a time; directories
    in ``skip`` (the index's own) are not looked into.

    A source's digest is the hash of its bytes and, when the articles are not read the default way, of how they
    are read (the field mapping, standard input's format): a file read under another mapping is read again, not
    taken as unchanged with the articles the old mapping made.

    Each one's records must be consumed before the next source is read: nothing but the source being
    read is held in memory, whatever the size of the input. ``scan`` collects the counts and messages.
    """
    paths = list(paths)
    inputs = find_sources(paths, stdin_format, skip=skip)
    reading = _reading(fmap)
    scan.warnings.add(f"{d}: no article files ({', '.join(sorted(SUFFIXES))}, or .gz)" for d in inputs.empty)
    indexed_streams = {digest for key, digest in known.items() if key.startswith(STDIN_PREFIX)}
    for n, source in enumerate(inputs.sources, start=1):
        scan.seen += 1
        yield from _scan_one(scan, source, known, indexed_streams, fmap, stdin, reading)
        if progress:
            progress("load", n, len(inputs.sources))
    if prune:
        present = {s.key for s in inputs.sources if s.key}
        prefixes = [p for p in (_resolved(r) for r in paths if str(r) != STDIN) if p]
        scan.removed = {k for k in known if k not in present and any(_under(k, p) for p in prefixes)}


def _reading(fmap: FieldMap) -> str:
    """What a file's digest adds for a field mapping that is not the default ("" for the default)."""
    if not fmap.explicit:
        return ""
    return "+" + hashlib.blake2b(json.dumps(fmap.explicit).encode("utf-8"), digest_size=6).hexdigest()


def _scan_one(
    scan: Scan,
    source: Source,
    known: dict[str, str],
    streams: set[str],
    fmap: FieldMap,
    stdin: BinaryIO | None,
    reading: str = "",
) -> Iterator[Changed]:
    if source.key and source.key != _utf8_name(source.key):  # SQLite cannot store it, and it cannot be printed
        scan.errors.add([ArticleError("file name is not UTF-8 - rename the file", _utf8_name(source.key))])
        return
    data, digest, spooled = None, "", None
    try:
        if source.error is None and not source.is_stdin:
            try:
                digest, data = file_digest(source.key, keep=MAX_RECORD_BYTES)  # small files are read once
            except ArticleError as exc:
                scan.errors.add([exc])
                return
            digest += reading
            if known.get(source.key) == digest:
                scan.unchanged += 1
                return
        elif source.is_stdin and stdin is not None:
            spooled, digest = _spool(stdin)  # its digest decides whether it is new before anything is parsed
            digest += reading + (f"+{source.format}" if source.format else "")
            if digest in streams:
                scan.unchanged += 1
                return
        reader = SourceReader(source, fmap, stdin=spooled if spooled is not None else stdin, data=data)
        records = iter(reader)
        first = next(records, None)
        if first is not None:  # a file that turned bad keeps its last good records
            scan.changed += 1
            yield Changed(reader.key, digest, chain([first], records))
            for _ in records:  # what the consumer left unread is still read, so that every message is counted
                pass
        scan.errors.add(reader.errors, reader.error_count)
        scan.warnings.add(reader.warnings, reader.warning_count)
        scan.filled.update(reader.filled)
    finally:
        if spooled is not None:
            spooled.close()


def _spool(stream: BinaryIO) -> tuple[BinaryIO, str]:
    """Standard input copied to an anonymous temporary file (any size, bounded memory), and its digest."""
    spooled = tempfile.TemporaryFile()
    digest = hashlib.blake2b(digest_size=16)
    try:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            spooled.write(chunk)
    except OSError as exc:
        spooled.close()
        raise ArticleError(f"cannot read: {exc.strerror or exc}", STDIN_NAME) from None
    spooled.seek(0)
    return spooled, digest.hexdigest()


def _resolved(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symbolic link loop
        return ""


def _utf8_name(name: str) -> str:
    """A file name as UTF-8 text, undecodable bytes (surrogate escapes) replaced."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
