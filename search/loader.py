"""Read article files: Markdown with YAML front matter, and JSON Lines.

A file becomes a list of :class:`Record` (its main article and each related item) or an
:class:`ArticleError` saying why it was skipped. Nothing here raises anything else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from search.errors import ArticleError
from search.urls import article_id, canonical_url

MAX_FILE_BYTES = 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown", ".txt")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES + JSONL_SUFFIXES


@dataclass(frozen=True)
class Record:
    """One article as one source states it, before duplicates are merged."""

    url: str  # canonical
    fields: dict  # title, excerpt, published, provider, provider_domain, topics, image, quality
    main: bool  # a main article (True) or someone's related item (False)
    source: str
    line: int = 0
    related: tuple[str, ...] = ()  # canonical URLs this record lists as related


@dataclass
class FileResult:
    path: str
    records: list[Record] = field(default_factory=list)
    errors: list[ArticleError] = field(default_factory=list)  # record-level or whole-file
    digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def iter_article_files(paths: list[str | Path]) -> Iterator[Path]:
    """Article files under the given files and directories, sorted, without duplicates."""
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ArticleError("no such file or directory", str(path))
        found = [path] if path.is_file() else sorted(_walk(path))
        for p in found:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                yield p


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.lower().endswith(ARTICLE_SUFFIXES) and not name.startswith("."):
                yield Path(dirpath) / name


def load_file(path: str | Path, data: bytes | None = None) -> FileResult:
    """Parse one file. ``data`` may be passed when the caller already read the bytes."""
    source = str(path)
    result = FileResult(source)
    try:
        if data is None:
            data = _read_limited(Path(path))
        text = _decode(data, source)
        if source.lower().endswith(JSONL_SUFFIXES):
            _parse_jsonl(text, source, result)
        else:
            result.records.extend(parse_markdown(text, source))
    except ArticleError as exc:
        result.records.clear()
        result.errors = [exc]
    except Exception as exc:  # noqa: BLE001 - a parser bug must not end the run
        result.records.clear()
        result.errors = [ArticleError(f"unreadable ({type(exc).__name__}: {exc})", source)]
    return result


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ArticleError(f"file is {size} bytes, over the 1 MiB limit", str(path))
        return path.read_bytes()
    except OSError as exc:
        raise ArticleError(f"cannot read: {exc.strerror or exc}", str(path)) from None


def _decode(data: bytes, source: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ArticleError(f"file is {len(data)} bytes, over the 1 MiB limit", source)
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


def parse_markdown(text: str, source: str = "<text>") -> list[Record]:
    """Records of a Markdown file with YAML front matter between ``---`` lines."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleError("no YAML front matter (the file must start with ---)", source, 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise ArticleError("front matter is not closed with ---", source, len(lines))
    import yaml  # here, not at the top: a query imports this module (for parse_datetime) but parses no YAML

    try:
        meta = yaml.load("\n".join(lines[1:end]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
    body = "\n".join(lines[end + 1 :]).strip()
    if body and not meta.get("excerpt"):
        meta["excerpt"] = body.split("\n\n", 1)[0]
    return records_from_mapping(meta, source, 0, fallback_url=_file_url(source))


def _parse_jsonl(text: str, source: str, result: FileResult) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            meta = json.loads(line)
            if not isinstance(meta, dict):
                raise ArticleError("line is not a JSON object", source, number)
            result.records.extend(records_from_mapping(meta, source, number))
        except json.JSONDecodeError as exc:
            result.errors.append(ArticleError(f"invalid JSON: {exc.msg}", source, number))
        except (ValueError, RecursionError) as exc:  # an integer over 4300 digits, nesting too deep
            result.errors.append(ArticleError(f"invalid JSON: {type(exc).__name__}: {exc}", source, number))
        except ArticleError as exc:
            result.errors.append(exc)
    if not result.records and not result.errors:
        raise ArticleError("file holds no articles", source)


def records_from_mapping(meta: dict, source: str, line: int, fallback_url: str = "") -> list[Record]:
    """The main record of one article mapping, followed by one record per related item."""
    title = _text(meta.get("title"))
    if not title:
        raise ArticleError("no title", source, line or None)
    url = _first_url(meta) or fallback_url
    if not url:
        raise ArticleError("no webUrl or originalUrl", source, line or None)
    canonical = _canonical(url)
    if not canonical:
        raise ArticleError(f"invalid URL {url[:200]!r}", source, line or None)
    related: list[Record] = []
    entries = meta.get("related") or []
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and _text(entry.get("title")) and _first_url(entry):
                rel_url = _canonical(_first_url(entry))
                if rel_url and rel_url != canonical:  # an article is not its own related item
                    related.append(Record(rel_url, _fields(entry), False, source, line))
    main = Record(canonical, _fields(meta), True, source, line, tuple(dict.fromkeys(r.url for r in related)))
    return [main, *related]


def _canonical(url: str) -> str:
    """The canonical form of ``url``, or "" when urllib cannot split it (or its canonical form) into parts."""
    try:
        canonical = canonical_url(url)
        article_id(canonical)  # ids are derived from the canonical URL again, which must split too
    except ValueError:  # e.g. "http://[::1" or a port that is not a number in 0-65535
        return ""
    return canonical


def _fields(meta: dict) -> dict:
    provider = meta.get("provider")
    if isinstance(provider, dict):
        provider_name, domain = _text(provider.get("name")), _text(provider.get("domain"))
    else:
        provider_name, domain = _text(provider), ""
    return {
        "title": _text(meta.get("title")),
        "excerpt": _text(meta.get("excerpt")),
        "published": parse_datetime(meta.get("publishedDateTime") or meta.get("published_date")),
        "provider": provider_name,
        "provider_domain": domain,
        "topics": _topics(meta.get("topics")),
        "image": _first_image(meta.get("images")),
        "quality": _int(meta.get("quality")),
    }


def _text(value: object) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    try:
        return _utf8(" ".join(str(value).split()))
    except ValueError:  # an integer over 4300 digits has no str()
        return ""


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (a JSON escape such as "\\ud800") replaced: they cannot be stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _first_url(meta: dict) -> str:
    for key in ("webUrl", "originalUrl", "url"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _file_url(source: str) -> str:
    return "file:///" + Path(source).name if source != "<text>" else ""


def _topics(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value] if value else []
    return tuple(dict.fromkeys(t for t in (_text(v) for v in items) if t))


def _first_image(value: object) -> str:
    for item in value if isinstance(value, list) else []:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url.strip():
            return _utf8(url.strip())
    return ""


def _int(value: object) -> int | None:
    try:
        number = int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        return None
    return number if number is None or -(2**63) <= number < 2**63 else None  # SQLite's and JSON's range


def parse_datetime(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from YAML's datetime/date or an ISO-8601 string."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return None
