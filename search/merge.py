"""Merge the records of many files into one article per canonical URL (pure, no I/O).

The winner for a URL is the greatest record by (main article, source path, line): a main
article beats a related stub, and a later line of an update stream beats an earlier one.
Fields the winner lacks are filled from the other records in the same order, so the
result does not depend on the order in which files were read. An article that names no
provider gets its URL's site (``huffpost.com``), so provider facets and filters cover it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from urllib.parse import urlsplit

from search.loader import Record
from search.models import Article
from search.urls import article_id

_FIELDS = ("title", "excerpt", "published", "provider", "provider_domain", "topics", "image", "quality", "authors")


def _priority(record: Record) -> tuple[bool, str, int]:
    return (record.main, record.source, record.line)


def merge_records(records: Iterable[Record]) -> dict[str, Article]:
    """Articles keyed by id, each built from every record of its URL."""
    by_url: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_url[record.url].append(record)
    articles: dict[str, Article] = {}
    for url, group in by_url.items():
        article = merge_group(url, group)
        articles[article.id] = article
    return articles


def merge_group(url: str, group: list[Record]) -> Article:
    ordered = sorted(group, key=_priority, reverse=True)
    merged: dict = {}
    for name in _FIELDS:
        merged[name] = next((r.fields[name] for r in ordered if r.fields.get(name)), ordered[0].fields.get(name))
    related_urls = dict.fromkeys(u for r in ordered if r.main for u in r.related if u != url)
    return Article(
        id=article_id(url),
        url=url,
        title=merged["title"],
        excerpt=merged["excerpt"] or "",
        published=merged["published"],
        provider=merged["provider"] or _host(url),
        provider_domain=merged["provider_domain"] or _host(url),
        topics=tuple(merged["topics"] or ()),
        image=merged["image"] or "",
        quality=merged["quality"],
        authors=tuple(merged["authors"] or ()),
        related=tuple(article_id(u) for u in related_urls),
        is_stub=not any(r.main for r in ordered),
    )


def _host(url: str) -> str:
    """The site of an article that names no provider: its URL's host without "www." (none for file: URLs)."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")
