"""Typed records shared by every layer: Article, ArticleDetail, Suggestions, Hit, Results.

Each has ``to_dict()``; the CLI's ``--json`` and the web API print exactly that dict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Article:
    id: str
    url: str
    title: str
    excerpt: str = ""
    published: datetime | None = None
    provider: str = ""
    provider_domain: str = ""
    topics: tuple[str, ...] = ()
    image: str = ""
    quality: int | None = None
    related: tuple[str, ...] = ()  # ids of the articles the publisher listed as related
    is_stub: bool = False  # known only as someone's related item, never as a main article

    @property
    def text(self) -> str:
        """What is embedded: title and excerpt."""
        return ". ".join(part for part in (self.title, self.excerpt) if part)

    @property
    def text_hash(self) -> str:
        """Hash of the embedded text: the embedding cache key (with the model id)."""
        return hashlib.blake2b(self.text.encode("utf-8"), digest_size=16).hexdigest()

    @property
    def content_hash(self) -> str:
        """Hash of every stored field: an article whose hash is unchanged needs no update."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "excerpt": self.excerpt,
            "published": self.published.isoformat() if self.published else None,
            "provider": self.provider,
            "provider_domain": self.provider_domain,
            "topics": list(self.topics),
            "image": self.image,
            "quality": self.quality,
            "related": list(self.related),
            "is_stub": self.is_stub,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Article:
        published = d.get("published")
        return cls(
            id=d["id"],
            url=d["url"],
            title=d["title"],
            excerpt=d.get("excerpt") or "",
            published=datetime.fromisoformat(published) if published else None,
            provider=d.get("provider") or "",
            provider_domain=d.get("provider_domain") or "",
            topics=tuple(d.get("topics") or ()),
            image=d.get("image") or "",
            quality=d.get("quality"),
            related=tuple(d.get("related") or ()),
            is_stub=bool(d.get("is_stub")),
        )


@dataclass(frozen=True)
class ArticleDetail:
    """An article with the first of its publisher-listed related items: what `show` and the article API return.

    ``listed`` holds the stored ones among the first ``listed_limit`` related ids; ``listed_omitted``
    counts the related ids past that cap, so one response stays bounded however long the list is.
    """

    article: Article
    listed: tuple[Article, ...]
    listed_omitted: int = 0

    def to_dict(self) -> dict:
        return dict(
            self.article.to_dict(),
            related_articles=[a.to_dict() for a in self.listed],
            related_omitted=self.listed_omitted,
        )


@dataclass(frozen=True)
class Suggestions:
    """Where to start in an index: its most frequent topics and its newest articles."""

    topics: tuple[str, ...] = ()
    newest: tuple[Article, ...] = ()

    def to_dict(self) -> dict:
        return {"topics": list(self.topics), "newest": [a.to_dict() for a in self.newest]}


@dataclass(frozen=True)
class Hit:
    article: Article
    rank: int
    score: float
    keyword_score: float | None = None
    keyword_rank: int | None = None
    semantic_score: float | None = None
    semantic_rank: int | None = None

    def to_dict(self) -> dict:
        a = self.article
        return {
            "rank": self.rank,
            "id": a.id,
            "title": a.title,
            "excerpt": a.excerpt,
            "url": a.url,
            "provider": a.provider,
            "published": a.published.isoformat() if a.published else None,
            "topics": list(a.topics),
            "image": a.image,
            "score": round(self.score, 6),
            "components": {
                "keyword_score": _round(self.keyword_score),
                "keyword_rank": self.keyword_rank,
                "semantic_score": _round(self.semantic_score),
                "semantic_rank": self.semantic_rank,
            },
        }


@dataclass(frozen=True)
class Results:
    query: str
    mode: str
    hits: tuple[Hit, ...]
    total: int
    limit: int
    offset: int = 0
    took_ms: float = 0.0
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    filters: dict[str, str] = field(default_factory=dict)
    sort: str = "relevance"

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "mode": self.mode,
            "sort": self.sort,
            "filters": dict(self.filters),
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "took_ms": round(self.took_ms, 2),
            "hits": [h.to_dict() for h in self.hits],
            "facets": {name: [{"value": v, "count": c} for v, c in counts] for name, counts in self.facets.items()},
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
