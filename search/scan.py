"""The indexer's reading step: which sources under the input paths changed since the live generation.

A file whose bytes hash to the digest the live generation stored for it is not parsed again;
the others are read through the loader, record by record. Standard input is a new source on
every run (so successive streams add up), unless a stream with the same digest was indexed before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from search.errors import ArticleError
from search.formats import MAX_RECORD_BYTES, SUFFIXES
from search.loader import STDIN_PREFIX, FileResult, SourceReader
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


@dataclass
class Scan:
    changed: dict[str, FileResult] = field(default_factory=dict)  # source key -> its records
    digests: dict[str, str] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    seen: int = 0  # sources found
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
    *,
    prune: bool = False,
    stdin: BinaryIO | None = None,
    stdin_format: str = "",
    progress: Progress | None = None,
) -> Scan:
    """Read the sources under ``paths`` that differ from ``known`` (source key -> digest)."""
    paths = list(paths)
    inputs = find_sources(paths, stdin_format)
    scan = Scan()
    scan.warnings.add(f"{d}: no article files ({', '.join(sorted(SUFFIXES))}, or .gz)" for d in inputs.empty)
    indexed_streams = {digest for key, digest in known.items() if key.startswith(STDIN_PREFIX)}
    for n, source in enumerate(inputs.sources, start=1):
        scan.seen += 1
        _scan_one(scan, source, known, indexed_streams, fmap, stdin)
        if progress:
            progress("load", n, len(inputs.sources))
    if prune:
        present = {s.key for s in inputs.sources if s.key}
        prefixes = [p for p in (_resolved(r) for r in paths if str(r) != STDIN) if p]
        scan.removed = {k for k in known if k not in present and any(_under(k, p) for p in prefixes)}
    return scan


def _scan_one(
    scan: Scan, source: Source, known: dict[str, str], streams: set[str], fmap: FieldMap, stdin: BinaryIO | None
) -> None:
    if source.key and source.key != _utf8_name(source.key):  # SQLite cannot store it, and it cannot be printed
        scan.errors.add([ArticleError("file name is not UTF-8 - rename the file", _utf8_name(source.key))])
        return
    data = None
    if source.error is None and not source.is_stdin:
        try:
            digest, data = file_digest(source.key, keep=MAX_RECORD_BYTES)  # small files are read once
        except ArticleError as exc:
            scan.errors.add([exc])
            return
        if known.get(source.key) == digest:
            scan.unchanged += 1
            return
    reader = SourceReader(source, fmap, stdin=stdin, data=data)
    records = list(reader)
    scan.errors.add(reader.errors, reader.error_count)
    scan.warnings.add(reader.warnings, reader.warning_count)
    scan.filled.update(reader.filled)
    if source.is_stdin and reader.digest in streams:
        scan.unchanged += 1
    elif records:  # a file that turned bad keeps its last good records
        scan.changed[reader.key] = FileResult(reader.key, records, digest=reader.digest)
        scan.digests[reader.key] = reader.digest


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
