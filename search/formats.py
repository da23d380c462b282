"""Read raw records from byte streams: Markdown with YAML front matter, JSON Lines, JSON, CSV, RSS and Atom.

Each reader takes a binary stream and yields :class:`Item` (one source record, not yet mapped to
article fields) or :class:`ArticleError` for a record it skips; it raises ArticleError when the
rest of the stream cannot be read. Streams are read record by record: the size limits apply to
one record (and to one Markdown file), never to a whole JSON Lines, JSON array or CSV file.
RSS and Atom feeds are read by :mod:`search.feeds`.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import yaml

from search.errors import ArticleError

MAX_RECORD_BYTES = 1024 * 1024  # one JSON line, JSON array item, CSV row, or one Markdown file
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # a feed, or a JSON object holding a list of articles, is parsed whole
CHUNK = 64 * 1024
SUFFIXES = {
    ".md": "markdown", ".markdown": "markdown", ".txt": "markdown", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json", ".csv": "csv", ".rss": "feed", ".atom": "feed", ".xml": "feed",
}  # fmt: skip
WRAPPER_KEYS = ("articles", "items", "entries", "records", "results", "data")  # {"articles": [...]} exports
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FrontMatterLoader(_Loader):  # type: ignore[misc, valid-type]
    """Safe YAML, but a date that is no date (``date: 2020-13-45`` unquoted) stays the text it is: the article is
    kept undated with a warning, as a quoted bad date is, instead of being skipped for a YAML error."""


def _lenient_timestamp(loader, node):
    try:
        return loader.construct_yaml_timestamp(node)
    except (ValueError, AttributeError):
        return loader.construct_scalar(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _lenient_timestamp)
_JSON = json.JSONDecoder()
TOO_BIG = object()  # what _JsonScanner.value returns for a value over its limit (which it skips)


@dataclass(frozen=True)
class Item:
    """One source record before field mapping."""

    line: int  # where it starts: a line number, or the entry number in a feed or wrapped list
    meta: dict
    label: str = ""  # "item 3" where ``line`` is not a line number
    fallbacks: dict[str, tuple[str, str]] = field(default_factory=dict)  # article field -> (value, where from)


def format_of(name: str) -> str:
    """The format a file name's suffix says ("" when it says none); ``.gz`` is looked through."""
    lower = name.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in SUFFIXES.items() if lower.endswith(suffix)), "")


def guess_format(head: bytes) -> str:
    """The format of a stream from its first bytes (after a BOM and white space)."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if text.startswith(b"---"):
        return "markdown"
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith(b"<"):
        return "feed"
    return "csv"


def read_items(fmt: str, stream: BinaryIO, source: str) -> Iterator[Item | ArticleError]:
    if fmt == "feed":
        from search.feeds import read_feed  # feedparser is imported only when a feed is read

        return read_feed(stream, source)
    readers = {"markdown": read_markdown, "jsonl": read_jsonl, "json": read_json, "csv": read_csv}
    return readers[fmt](stream, source)


# -- Markdown ---------------------------------------------------------------------------------------
def read_markdown(stream: BinaryIO, source: str) -> Iterator[Item]:
    data = read_at_most(stream, MAX_RECORD_BYTES)
    if data is None:
        raise ArticleError("file is over the 1 MiB limit", source)
    meta, body = front_matter(decode_document(data, source), source)
    fallbacks = {"excerpt": (body.split("\n\n", 1)[0], "(first paragraph)")} if body else {}
    yield Item(0, meta, fallbacks=fallbacks)


def read_at_most(stream: BinaryIO, limit: int) -> bytes | None:
    """The rest of ``stream`` if it holds at most ``limit`` bytes, else None (read in chunks, not one big buffer)."""
    parts, size = [], 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def decode_document(data: bytes, source: str) -> str:
    """A whole file's text; ArticleError if it is empty, binary or not UTF-8."""
    if not data.strip():
        raise ArticleError("file is empty", source)
    if b"\x00" in data:
        raise ArticleError("binary file (contains NUL bytes)", source, data.count(b"\n", 0, data.index(b"\x00")) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ArticleError(f"not UTF-8 (byte 0x{data[exc.start]:02x})", source, line) from None
    return text.lstrip("\ufeff")


def front_matter(text: str, source: str) -> tuple[dict, str]:
    """The YAML mapping between the opening ``---`` lines, and the body after it."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleError("no YAML front matter (the file must start with ---)", source, 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise ArticleError("front matter is not closed with ---", source, len(lines))
    try:
        meta = yaml.load("\n".join(lines[1:end]), Loader=_FrontMatterLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleError(f"invalid YAML: {problem}", source, line) from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise assorted types on odd values and tags:
        # a timestamp out of range (ValueError), "!!timestamp 0" (AttributeError), deep nesting (RecursionError)
        raise ArticleError(f"invalid YAML value: {type(exc).__name__}: {exc}", source) from None
    if not isinstance(meta, dict):
        raise ArticleError("front matter is not a mapping of fields", source, 2)
    return meta, "\n".join(lines[end + 1 :]).strip()


# -- JSON Lines -------------------------------------------------------------------------------------
def read_jsonl(stream: BinaryIO, source: str) -> Iterator[Item | ArticleError]:
    for number, line in _lines(stream):
        if line is None:
            yield ArticleError("record is over the 1 MiB limit", source, number)
            continue
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
            if b"\x00" in line:
                raise ArticleError("binary file (contains NUL bytes)", source, 1)
        if not line.strip():
            continue
        try:
            meta = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield ArticleError(f"not UTF-8 (byte 0x{line[exc.start]:02x})", source, number)
            continue
        except json.JSONDecodeError as exc:
            yield ArticleError(f"invalid JSON: {exc.msg}", source, number)
            continue
        except (ValueError, RecursionError) as exc:  # an integer over 4300 digits, nesting too deep
            yield ArticleError(f"invalid JSON: {type(exc).__name__}: {exc}", source, number)
            continue
        if isinstance(meta, dict):
            yield Item(number, meta)
        else:
            yield ArticleError("line is not a JSON object", source, number)


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None in place of a line over MAX_RECORD_BYTES, which is skipped."""
    number = 0
    while line := stream.readline(MAX_RECORD_BYTES + 2):
        number += 1
        if len(line.rstrip(b"\r\n")) <= MAX_RECORD_BYTES:
            yield number, line
            continue
        while not line.endswith(b"\n") and (line := stream.readline(CHUNK)):
            pass
        yield number, None


# -- JSON: an array of objects, one object, or an object holding a list of them ----------------------
def read_json(stream: BinaryIO, source: str) -> Iterator[Item | ArticleError]:
    scanner = _JsonScanner(stream, source)
    first = scanner.peek()
    if first == "[":
        yield from _json_array(scanner, source)
    elif first == "{":
        line, document = scanner.value(MAX_DOCUMENT_BYTES)
        if document is TOO_BIG:
            raise ArticleError(f"a JSON object over the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB limit", source, line)
        yield from _json_object(document, line, source)
    elif first == "":
        raise ArticleError("file is empty", source)
    else:
        raise ArticleError("not a JSON array or object", source, scanner.line)
    if scanner.peek() != "":
        raise ArticleError("invalid JSON: extra data after the end", source, scanner.line)


def _json_array(scanner: _JsonScanner, source: str) -> Iterator[Item | ArticleError]:
    scanner.take()
    if scanner.peek() == "]":
        scanner.take()
        return
    while True:
        line, value = scanner.value(MAX_RECORD_BYTES)
        if value is TOO_BIG:
            yield ArticleError("item is over the 1 MiB limit", source, line)
        elif isinstance(value, dict):
            yield Item(line, value)
        else:
            yield ArticleError("item is not a JSON object", source, line)
        after = scanner.peek()
        scanner.take()
        if after == "]":
            return
        if after != ",":
            raise ArticleError("invalid JSON: expected ',' or ']' after an item", source, scanner.line)


def _json_object(document: dict, line: int, source: str) -> Iterator[Item | ArticleError]:
    key = next((k for k in WRAPPER_KEYS if isinstance(document.get(k), list)), None)
    if key is None or "title" in document:
        yield Item(line, document)
        return
    for n, entry in enumerate(document[key], start=1):
        label = f"{key}[{n - 1}]"
        yield Item(n, entry, label) if isinstance(entry, dict) else ArticleError(f"{label}: not a JSON object", source)


class _JsonScanner:
    """Decodes one JSON value at a time from a byte stream, keeping only the current value in memory."""

    def __init__(self, stream: BinaryIO, source: str):
        self.stream, self.source = stream, source
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def _fill(self) -> None:
        chunk = self.stream.read(CHUNK)
        try:
            text = self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise ArticleError(f"not UTF-8 (byte 0x{exc.object[exc.start]:02x})", self.source, self.line) from None
        self.buf, self.pos, self.eof = self.buf[self.pos :] + text, 0, not chunk

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), without taking it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.line += self.buf[self.pos] == "\n"
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self._fill()

    def take(self) -> None:
        self.pos += 1

    def value(self, limit: int) -> tuple[int, object]:
        """(start line, value) of the JSON value at the current position."""
        self.peek()
        start = self.line
        while True:
            try:
                value, end = _JSON.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    where = start + self.buf.count("\n", self.pos, exc.pos)
                    message = f"invalid JSON: {exc.msg} (the rest of the file is skipped)"
                    raise ArticleError(message, self.source, where) from None
            except (ValueError, RecursionError) as exc:
                raise ArticleError(f"invalid JSON: {type(exc).__name__}", self.source, start) from None
            else:
                if end < len(self.buf) or self.eof:  # a value that ends at the buffer's end may continue
                    size = end - self.pos
                    self.line += self.buf.count("\n", self.pos, end)
                    self.pos = end
                    return start, TOO_BIG if size > limit else value
            if len(self.buf) - self.pos > limit:  # no value ended within the limit: too big, or broken
                message = f"invalid JSON, or a value over the {limit // (1024 * 1024)} MiB limit (the rest is skipped)"
                raise ArticleError(message, self.source, start)
            self._fill()


# -- CSV --------------------------------------------------------------------------------------------
def read_csv(stream: BinaryIO, source: str) -> Iterator[Item | ArticleError]:
    """Rows of a CSV file with a header row, as {column: cell} (empty cells left out)."""
    csv.field_size_limit(MAX_RECORD_BYTES)
    problems: list[ArticleError] = []
    reader = csv.reader(_text_lines(stream, source, problems))
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as exc:
        raise ArticleError(f"invalid CSV header: {exc}", source, 1) from None
    if not any(header):
        raise ArticleError("no CSV header row", source, 1)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            yield from _drain(problems)
            return
        except csv.Error as exc:  # e.g. a NUL byte, a field over the limit: the row is skipped
            yield from _drain(problems)
            yield ArticleError(f"invalid CSV: {exc}", source, start)
            start = reader.line_num + 1
            continue
        yield from _drain(problems)
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            yield ArticleError(f"{len(row)} cells, the header names {len(header)}", source, line)
            continue
        yield Item(line, {name: cell for name, cell in zip(header, row, strict=False) if name and cell.strip()})


def _drain(problems: list[ArticleError]) -> Iterator[ArticleError]:
    yield from problems
    problems.clear()


def _text_lines(stream: BinaryIO, source: str, problems: list[ArticleError]) -> Iterator[str]:
    for number, line in _lines(stream):
        if number == 1 and line is not None:
            line = line.removeprefix(codecs.BOM_UTF8)
        if line is None:
            problems.append(ArticleError("line is over the 1 MiB limit", source, number))
            yield "\n"
            continue
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(ArticleError(f"not UTF-8 (byte 0x{line[exc.start]:02x})", source, number))
            yield "\n"
