"""Read article sources record by record.

A source is a file (Markdown with YAML front matter, JSON Lines, JSON, CSV, RSS or Atom, any of
them gzipped) or standard input; :mod:`search.sources` finds them. :class:`SourceReader` streams
one source's :class:`Record` objects (its articles and each one's related items) and collects, as
it goes, the records it skipped and why, the warnings (an unparseable date, a truncated title),
which source field filled which article field, and the digest of the bytes read. Nothing here
raises anything but ArticleError.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from search.dates import parse_datetime as parse_datetime  # re-exported: the service parses --since with it
from search.errors import ArticleError
from search.formats import CHUNK, Item, format_of, front_matter, guess_format, read_items
from search.mapping import ALIASES, FieldMap, resolve
from search.sources import Source, open_regular, os_reason, source_for
from search.sources import file_digest as file_digest  # re-exported with the other verbs a reader needs
from search.sources import find_sources as find_sources
from search.sources import iter_article_files as iter_article_files
from search.urls import article_id, canonical_url

MARKDOWN_SUFFIXES = (".md", ".markdown", ".txt")
STDIN_NAME = "<stdin>"
STDIN_PREFIX = "<stdin "  # store keys of standard-input sources: "<stdin 2024-06-01T12:00:00.000001+00:00>"
MAX_KEPT = 1_000  # errors and warnings a reader keeps (all are counted)
RECORD_FIELDS = (
    "title", "excerpt", "published", "provider", "provider_domain", "topics", "image", "quality", "authors",
)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One article as one source states it, before duplicates are merged."""

    url: str  # canonical
    fields: dict  # RECORD_FIELDS
    main: bool  # a main article (True) or someone's related item (False)
    source: str
    line: int = 0
    related: tuple[str, ...] = ()  # canonical URLs this record lists as related


# -- reading one source ---------------------------------------------------------------------------
class SourceReader:
    """Streams the records of one source. Iterate it once; then the other attributes are final.

    ``errors`` are records (or the whole source) skipped, ``warnings`` records indexed with
    something dropped or cut (the first MAX_KEPT of each; ``error_count`` and ``warning_count``
    count them all), ``filled`` counts (article field, source field) pairs, ``digest`` is the
    hash of the bytes read (the indexer's change detection), ``count`` the records read.
    """

    def __init__(
        self,
        source: Source,
        fmap: FieldMap | None = None,
        *,
        stdin: BinaryIO | None = None,
        data: bytes | None = None,
    ):
        self.source = source
        self.fmap = fmap or FieldMap()
        self._stdin, self._data = stdin, data
        self.name = STDIN_NAME if source.is_stdin else source.key or source.name  # what messages say
        self.key = _stdin_key() if source.is_stdin else source.key or source.name  # what records say
        self.errors: list[ArticleError] = []
        self.warnings: list[ArticleError] = []
        self.error_count = self.warning_count = 0
        self.filled: Counter[tuple[str, str]] = Counter()
        self.digest = ""
        self.count = 0
        self._format = source.format

    def __iter__(self) -> Iterator[Record]:
        if self.source.error is not None:
            self._error(self.source.error)
            return
        stream = None
        try:
            stream = _HashedInput(self._open(), owned=not self.source.is_stdin)
            self._format = self._format or self._guess(stream)
            for item in read_items(self._format, stream.text, self.name):
                if isinstance(item, ArticleError):
                    self._error(item)
                    continue
                try:
                    records = self._records(item)
                except ArticleError as exc:
                    self._error(exc)
                    continue
                self.count += len(records)
                yield from records
        except ArticleError as exc:
            self._error(exc)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            self._error(ArticleError(f"cannot read: {os_reason(exc)}", self.name))
        except Exception as exc:  # noqa: BLE001 - a parser bug must not end the run
            self._error(ArticleError(f"unreadable ({type(exc).__name__}: {exc})", self.name))
        finally:
            if stream is not None:
                self.digest = stream.finish()
        if not self.count and not self.error_count:
            self._error(ArticleError("file holds no articles", self.name))

    def _error(self, exc: ArticleError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT:
            self.errors.append(exc)

    def _warn(self, warnings: list[ArticleError]) -> None:
        self.warning_count += len(warnings)
        self.warnings.extend(warnings[: MAX_KEPT - len(self.warnings)])

    def _open(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)
        if self.source.is_stdin:
            if self._stdin is None:
                raise ArticleError("no standard input to read", STDIN_NAME)
            return self._stdin
        return open_regular(self.source.key or self.source.name)

    def _guess(self, stream: _HashedInput) -> str:
        head = stream.text.peek(64)[:64]
        if not head.strip():
            raise ArticleError("input is empty", self.name)
        return guess_format(head)

    def _records(self, item: Item) -> list[Record]:
        fallbacks = dict(item.fallbacks)
        if self._format == "markdown" and not self.source.is_stdin:
            fallbacks.setdefault("url", (_file_url(self.source.within or Path(self.name).name), "(file name)"))
        built = build_records(item, self.key, self.fmap, fallbacks, self.name)
        self._warn(built.warnings)
        self.filled.update(built.filled)
        return built.records


class _Hashing(io.RawIOBase):
    """A raw stream that hashes every byte read through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.hash = hashlib.blake2b(digest_size=16)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer) or 0
        self.hash.update(memoryview(buffer)[:n])
        return n


class _HashedInput:
    """A source's bytes, hashed as they are read; ``text`` is the decompressed stream when they are gzip."""

    def __init__(self, raw: BinaryIO, owned: bool):
        self.raw, self.owned, self._hashing = raw, owned, _Hashing(raw)
        self.buffered = io.BufferedReader(self._hashing, CHUNK)
        gz = self.buffered.peek(2)[:2] == b"\x1f\x8b"
        self.text = io.BufferedReader(gzip.GzipFile(fileobj=self.buffered, mode="rb")) if gz else self.buffered

    def finish(self) -> str:
        """The digest of every byte of the source (the rest is read if parsing stopped early)."""
        try:
            while self.buffered.read(CHUNK):
                pass
        except OSError:
            pass
        finally:
            if self.owned:
                self.raw.close()
        return self._hashing.hash.hexdigest()


def _stdin_key() -> str:
    return f"{STDIN_PREFIX}{datetime.now(UTC).isoformat(timespec='microseconds')}>"


# -- records from one mapping ---------------------------------------------------------------------
@dataclass
class Built:
    records: list[Record] = field(default_factory=list)
    warnings: list[ArticleError] = field(default_factory=list)
    filled: Counter[tuple[str, str]] = field(default_factory=Counter)


def build_records(
    item: Item, source: str, fmap: FieldMap, fallbacks: Mapping[str, tuple[object, str]] | None = None, name: str = ""
) -> Built:
    """The main record of one source record, followed by one record per related item."""
    name = name or source
    where = {"source": name, "line": (item.line or None) if not item.label else None}

    def problem(message: str) -> ArticleError:
        return ArticleError(f"{item.label}: {message}" if item.label else message, **where)

    main = resolve(item.meta, fmap, fallbacks)
    out = Built(warnings=[problem(note) for note in main.notes])
    if not main.values["title"]:
        raise problem(f"no title ({_looked_for('title', fmap)})")
    url = main.values["url"]
    if not url:
        raise problem(f"no URL ({_looked_for('url', fmap)})")
    canonical = _canonical(url)
    if not canonical:
        raise problem(f"invalid URL {url[:200]!r}")
    if urlsplit(canonical).scheme not in ("http", "https", "file"):  # file: a Markdown file's own name
        out.warnings.append(problem(f"url {url[:200]!r} is not a web address (http or https): indexed, with no link"))
    related: dict[str, Record] = {}  # the first item per URL
    for entry in main.values["related"]:
        nested = resolve(entry, fmap, nested=True)
        rel_url = _canonical(nested.values["url"]) if nested.values["title"] and nested.values["url"] else ""
        if rel_url and rel_url != canonical and rel_url not in related:  # an article is not its own related item
            out.warnings.extend(problem(f"related item: {note}") for note in nested.notes)
            related[rel_url] = Record(rel_url, _fields(nested.values), False, source, item.line)
    out.filled.update(main.filled.items())
    out.records = [Record(canonical, _fields(main.values), True, source, item.line, tuple(related)), *related.values()]
    return out


def records_from_mapping(meta: dict, source: str, line: int, fallback_url: str = "") -> list[Record]:
    """The records of one article mapping read with the default aliases (warnings dropped)."""
    fallbacks = {"url": (fallback_url, "(file name)")} if fallback_url else None
    return build_records(Item(line, meta), source, FieldMap(), fallbacks).records


def parse_markdown(text: str, source: str = "<text>") -> list[Record]:
    """Records of a Markdown file with YAML front matter between ``---`` lines."""
    meta, body = front_matter(text, source)
    fallbacks: dict[str, tuple[object, str]] = {"url": (_file_url(Path(source).name), "(file name)")}
    if body:
        fallbacks["excerpt"] = (body.split("\n\n", 1)[0], "(first paragraph)")
    return build_records(Item(0, meta), source, FieldMap(), fallbacks).records


def _fields(values: dict) -> dict:
    return {name: values[name] for name in RECORD_FIELDS}


def _looked_for(target: str, fmap: FieldMap) -> str:
    sources = fmap.sources(target)
    if sources != ALIASES[target]:
        return f"mapped from {sources[0]!r}, which is missing or empty" if sources else "its mapping is empty"
    return f"looked for {', '.join(sources)}; name the source field with --field {target}=NAME"


def _canonical(url: str) -> str:
    """The canonical form of ``url``, or "" when urllib cannot split it (or its canonical form) into parts."""
    try:
        canonical = canonical_url(url)
        article_id(canonical)  # ids are derived from the canonical URL again, which must split too
    except ValueError:  # e.g. "http://[::1" or a port that is not a number in 0-65535
        return ""
    return canonical


def _file_url(source: str) -> str:
    """A Markdown file's URL when it gives none: its path under the folder indexed (``2024/report.md`` and
    ``2023/report.md`` are two articles), or its name when the file itself was given."""
    return "" if source in ("<text>", STDIN_NAME, "") else "file:///" + source


# -- whole files, for callers that want them at once ------------------------------------------------
@dataclass
class FileResult:
    path: str
    records: list[Record] = field(default_factory=list)
    errors: list[ArticleError] = field(default_factory=list)  # records skipped, or the whole file
    warnings: list[ArticleError] = field(default_factory=list)
    digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def load_file(path: str | Path, data: bytes | None = None, fmap: FieldMap | None = None) -> FileResult:
    """Every record of one file at once. ``data`` may be passed when the caller already read the bytes."""
    name = str(path)
    source = Source(name, name, format_of(Path(name).name)) if data is not None else source_for(Path(name))
    reader = SourceReader(source, fmap, data=data)
    records = list(reader)
    return FileResult(reader.name, records, reader.errors, reader.warnings, reader.digest)
