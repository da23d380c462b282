"""Which source field fills which article field, and the size caps on what is stored (pure, no I/O).

A record (one JSON object, CSV row, feed entry or Markdown front matter) is read through a
:class:`FieldMap`: for each article field, the first of its source fields that holds a usable
value fills it. Without a mapping the source fields are well-known aliases (``headline``,
``link``, ``pubDate``...); ``--field title=headline`` or a ``fields:`` section names one source
field (a dotted path for a nested one) instead. Stored sizes are capped here, with a note saying
what was cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from search.dates import DATE_FORMATS, parse_datetime
from search.errors import ConfigError

MAX_TITLE_CHARS = 1_000
MAX_EXCERPT_CHARS = 10_000
MAX_NAME_CHARS = 200  # a provider, a domain, one topic, one author
MAX_IMAGE_URL_CHARS = 2_048
MAX_TOPICS = 50
MAX_AUTHORS = 20
MAX_RELATED = 100

# Article fields a source field can fill; "author", "domain"... are accepted as other names for them.
ARTICLE_FIELDS = (
    "title", "excerpt", "url", "published", "provider", "provider_domain", "topics", "image", "authors",
    "related", "quality",
)  # fmt: skip
SYNONYMS = {"author": "authors", "domain": "provider_domain", "provider_name": "provider", "date": "published"}

# Source fields tried, in order, when no mapping names one. Dotted paths reach into nested objects.
ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "headline"),
    "excerpt": ("excerpt", "short_description", "description", "summary", "abstract", "subtitle"),
    "url": ("webUrl", "originalUrl", "url", "link", "permalink"),
    "published": (
        "publishedDateTime",
        "published_date",
        "published_at",
        "publishedAt",
        "datePublished",
        "pubDate",
        "published",
        "date",
        "pub_date",
        "created_at",
        "updated",
    ),  # fmt: skip
    "provider": ("provider.name", "provider", "publisher.name", "publisher", "source.name", "site_name"),
    "provider_domain": ("provider.domain", "publisher.domain", "domain"),
    "topics": ("topics", "category", "categories", "section", "tags", "keywords"),
    "image": ("images", "image", "image_url", "urlToImage", "thumbnail", "media_content", "media_thumbnail"),
    "authors": ("authors", "author", "byline", "creator", "dc:creator"),
    "related": ("related",),
    "quality": ("quality",),
}


@dataclass(frozen=True)
class FieldMap:
    """Article field -> the one source field to read it from ("" = do not read it); others use ALIASES."""

    explicit: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, object] | Iterable[str] | None) -> FieldMap:
        """From ``{"title": "headline"}`` or ``["title=headline", ...]``; ConfigError names a bad entry."""
        if not spec:
            return cls()
        pairs = spec.items() if isinstance(spec, Mapping) else (_split_pair(item) for item in spec)
        explicit: dict[str, str] = {}
        for target, source in pairs:
            name = _target(str(target))
            if source is not None and not isinstance(source, str):
                raise ConfigError(f"field mapping {target}: {source!r} is not a source field name")
            explicit[name] = (source or "").strip()
        return cls(tuple(sorted(explicit.items())))

    def merged(self, other: FieldMap) -> FieldMap:
        """This mapping with ``other``'s entries winning."""
        return FieldMap(tuple(sorted({**dict(self.explicit), **dict(other.explicit)}.items())))

    @cached_property
    def plan(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(article field, its source fields) for every article field."""
        return tuple((target, self.sources(target)) for target in ARTICLE_FIELDS)

    def sources(self, target: str) -> tuple[str, ...]:
        explicit = dict(self.explicit)
        if target in explicit:
            return (explicit[target],) if explicit[target] else ()
        return ALIASES[target]

    def to_dict(self) -> dict[str, str]:
        return dict(self.explicit)


def _split_pair(item: str) -> tuple[str, str]:
    target, sep, source = str(item).partition("=")
    if not sep or not target.strip():
        raise ConfigError(f"field mapping {item!r}: write ARTICLE_FIELD=SOURCE_FIELD, e.g. title=headline")
    return target.strip(), source


def _target(name: str) -> str:
    target = SYNONYMS.get(name.strip(), name.strip())
    if target not in ARTICLE_FIELDS:
        raise ConfigError(f"field mapping: {name!r} is not an article field - use one of {', '.join(ARTICLE_FIELDS)}")
    return target


Converter = Callable[[object, str], tuple[object, str]]


@dataclass
class Resolved:
    """One record read through a FieldMap: article fields, where each came from, and notes on what was cut."""

    values: dict[str, object] = field(default_factory=dict)
    filled: dict[str, str] = field(default_factory=dict)  # article field -> source field
    notes: list[str] = field(default_factory=list)  # warnings: an unparseable date, a truncated title


def resolve(
    meta: Mapping, fmap: FieldMap, fallbacks: Mapping[str, tuple[object, str]] | None = None, nested: bool = False
) -> Resolved:
    """Every article field of ``meta``: the first usable value among its source fields.

    ``fallbacks`` gives (value, where from) for fields no source field fills (a Markdown body's
    first paragraph for the excerpt); ``nested`` records (related items) have no related items.
    """
    out = Resolved()
    for target, sources in fmap.plan:
        convert = _CONVERTERS[target]
        picked = _pick(meta, () if nested and target == "related" else sources, convert)
        if picked[1] is None and fallbacks and target in fallbacks:
            raw, where = fallbacks[target]
            fallback = _pick({where: raw}, (where,), convert)
            picked = fallback if fallback[1] is not None else picked
        value, source, note = picked
        out.values[target] = _EMPTY.get(target, "") if source is None else value
        if source is not None:
            out.filled[target] = source
        if note:
            out.notes.append(note)
    return out


def _pick(meta: Mapping, sources: Iterable[str], convert: Converter) -> tuple[object, str | None, str]:
    """(value, the source field it came from or None, a note) for the first usable source field."""
    rejected = ""
    for source in sources:
        raw = meta.get(source) if "." not in source or source in meta else lookup(meta, source)
        if _absent(raw):
            continue
        value, note = convert(raw, source)
        if not _absent(value):
            return value, source, note
        rejected = rejected or note
    return None, None, rejected


def lookup(meta: Mapping, path: str) -> object:
    """``meta[path]``, or the value at a dotted path ("provider.name", "images.0.url"); None if absent."""
    if path in meta or "." not in path:
        return meta.get(path)
    current: object = meta
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _absent(value: object) -> bool:
    if value is None:
        return True
    return not value and isinstance(value, (str, tuple, list, dict))


# -- converters: (raw value, source field name) -> (value or empty, note) ----------------------------


def text(value: object) -> str:
    """A scalar as one line of text; "" for containers and values with no text form."""
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    try:
        return utf8(" ".join(str(value).split()))
    except ValueError:  # an integer over 4300 digits has no str()
        return ""


def utf8(value: str) -> str:
    """``value`` with lone surrogates (a JSON escape such as "\\ud800") replaced: they cannot be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


@lru_cache(maxsize=1)
def _text_only() -> type:
    """An HTML parser that keeps the text (html.parser is imported here, off the query path's imports)."""
    from html.parser import HTMLParser

    class TextOnly(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    return TextOnly


def html_text(markup: str) -> str:
    """The text of an HTML fragment, tags dropped and entities decoded."""
    parser = _text_only()()
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.parts).split())


_MARKUP = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});|</?[A-Za-z][^<>]*>")


def plain(value: str) -> str:
    """``value`` as readers should see it: a title or excerpt exported with HTML in it ("AT&amp;T", "<i>Roe</i>")
    has its tags dropped and its entities decoded, as a feed's are; text without markup is left as it is."""
    return html_text(value) if _MARKUP.search(value) else value


def _capped_text(limit: int, what: str, markup: bool = False) -> Converter:
    def convert(raw: object, source: str) -> tuple[object, str]:
        value = plain(text(raw)) if markup else text(raw)
        if len(value) <= limit:
            return value, ""
        note = f"{what} truncated: {len(value):,} characters, the limit is {limit:,}"
        return value[: limit - 1].rstrip() + "…", note

    return convert


def _url(raw: object, source: str) -> tuple[object, str]:
    return (utf8(raw.strip()), "") if isinstance(raw, str) else ("", "")


def _published(raw: object, source: str) -> tuple[object, str]:
    value = parse_datetime(raw)
    if value is not None:
        return value, ""
    if isinstance(raw, bool) or text(raw):
        shown = repr(("true" if raw else "false") if isinstance(raw, bool) else text(raw)[:60])
        return None, f"{source} {shown} is not a date ({DATE_FORMATS}); indexed without a date"
    kind = {dict: "a mapping", list: "a list"}.get(type(raw), type(raw).__name__)
    return None, f"{source} holds {kind}, not a date ({DATE_FORMATS}); indexed without a date"


def _names(limit: int, what: str, keys: tuple[str, ...]) -> Converter:
    def convert(raw: object, source: str) -> tuple[object, str]:
        items = raw if isinstance(raw, list) else [raw]
        note = f"{what}: {len(items):,} given, the first {limit} are kept" if len(items) > limit else ""
        names: list[str] = []
        for item in items[:limit]:
            if isinstance(item, dict):
                item = next((item[k] for k in keys if not _absent(item.get(k))), None)
            name = text(item)[:MAX_NAME_CHARS]
            if name:
                names.append(name)
        return tuple(dict.fromkeys(names)), note

    return convert


def _image(raw: object, source: str) -> tuple[object, str]:
    for item in raw if isinstance(raw, list) else [raw]:
        url = item.get("url") or item.get("href") if isinstance(item, dict) else item
        if isinstance(url, str) and url.strip():
            if len(url) > MAX_IMAGE_URL_CHARS:
                return "", f"image URL of {len(url):,} characters dropped, the limit is {MAX_IMAGE_URL_CHARS:,}"
            return utf8(url.strip()), ""
    return "", ""


def _related(raw: object, source: str) -> tuple[object, str]:
    if not isinstance(raw, list):
        return [], ""
    note = f"related: {len(raw):,} items, the first {MAX_RELATED} are kept" if len(raw) > MAX_RELATED else ""
    return [entry for entry in raw[:MAX_RELATED] if isinstance(entry, dict)], note


def _quality(raw: object, source: str) -> tuple[object, str]:
    try:
        number = int(raw) if not isinstance(raw, (bool, list, dict)) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        return None, ""
    return (number if number is not None and -(2**63) <= number < 2**63 else None), ""  # SQLite's and JSON's range


_CONVERTERS: dict[str, Converter] = {
    "title": _capped_text(MAX_TITLE_CHARS, "title", markup=True),
    "excerpt": _capped_text(MAX_EXCERPT_CHARS, "excerpt", markup=True),
    "url": _url,
    "published": _published,
    "provider": _capped_text(MAX_NAME_CHARS, "provider"),
    "provider_domain": _capped_text(MAX_NAME_CHARS, "provider domain"),
    "topics": _names(MAX_TOPICS, "topics", ("term", "label", "name", "title")),
    "image": _image,
    "authors": _names(MAX_AUTHORS, "authors", ("name", "title")),
    "related": _related,
    "quality": _quality,
}
_EMPTY: dict[str, object] = {"published": None, "topics": (), "authors": (), "related": [], "quality": None}
