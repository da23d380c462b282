"""RSS 2.0 and Atom feeds, read with feedparser (the only module that imports it).

A feed is parsed whole, up to MAX_DOCUMENT_BYTES. Each entry becomes an :class:`Item` holding
feedparser's entry fields (``title``, ``link``, ``summary``, ``published``, ``tags``, ``authors``...),
with HTML in titles and summaries turned into text, and the channel's title and host as the
provider of an entry that names none.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import feedparser

from search.errors import ArticleError
from search.formats import MAX_DOCUMENT_BYTES, Item, read_at_most
from search.mapping import html_text


def read_feed(stream: BinaryIO, source: str) -> Iterator[Item]:
    data = read_at_most(stream, MAX_DOCUMENT_BYTES)
    if data is None:
        raise ArticleError(f"feed is over the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB limit", source)
    if not data.strip():
        raise ArticleError("file is empty", source)
    parsed = feedparser.parse(io.BytesIO(data), resolve_relative_uris=False, sanitize_html=True)
    if not parsed.entries:
        if parsed.version:
            raise ArticleError("feed holds no entries", source)
        problem = parsed.get("bozo_exception")
        raise ArticleError("not an RSS or Atom feed" + (f" ({problem})" if problem else ""), source)
    channel = parsed.feed
    provider = {"name": channel.get("title", ""), "domain": _host(channel.get("link", ""))}
    base = channel.get("link", "")
    for n, entry in enumerate(parsed.entries, start=1):
        meta = dict(entry)
        link = meta.get("link")
        if isinstance(link, str) and link.startswith("/") and not link.startswith("//") and _host(base):
            meta["link"] = urljoin(base, link)  # "/2024/story" in a feed of https://example.com/
        for name in ("title", "summary"):
            if meta.get(f"{name}_detail", {}).get("type") in ("text/html", "application/xhtml+xml"):
                meta[name] = html_text(meta.get(name, ""))
        meta.setdefault("provider", provider)
        yield Item(n, meta, f"item {n}")


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")
