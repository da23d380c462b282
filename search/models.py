"""Typed records shared by every layer: Article, ArticleDetail, Suggestions, Hit, Results.

Each has ``to_dict()``; the CLI's ``--json`` and the web API print exactly that dict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime


def embedded_text(title: str, excerpt: str) -> str:
    """What is embedded for an article: its title and excerpt."""
    return ". ".join(part for part in (title, excerpt) if part)


def text_digest(text: str) -> str:
    """The embedding cache's key for ``text`` (with the model id)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


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
    authors: tuple[str, ...] = ()
    related: tuple[str, ...] = ()  # ids of the articles the publisher listed as related
    is_stub: bool = False  # known only as someone's related item, never as a main article
    story: str = ""  # the story (news event) it reports: the id of that story's first article

    @property
    def text(self) -> str:
        """What is embedded: title and excerpt."""
        return embedded_text(self.title, self.excerpt)

    @property
    def text_hash(self) -> str:
        """Hash of the embedded text: the embedding cache key (with the model id)."""
        return text_digest(self.text)

    @property
    def content_hash(self) -> str:
        """Hash of every field read from its sources (not its story, which the index assigns):
        an article whose hash is unchanged needs no update."""
        fields = self.to_dict()
        del fields["story"]
        blob = json.dumps(fields, sort_keys=True, ensure_ascii=False)
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
            "authors": list(self.authors),
            "related": list(self.related),
            "is_stub": self.is_stub,
            "story": self.story,
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
            authors=tuple(d.get("authors") or ()),
            related=tuple(d.get("related") or ()),
            is_stub=bool(d.get("is_stub")),
            story=d.get("story") or "",
        )


@dataclass(frozen=True)
class Components:
    """How a hit's score was made. In hybrid mode (convex fusion)
    ``score = weight_semantic * semantic_normalised + weight_keyword * keyword_normalised``;
    in keyword mode the score is ``keyword_score``, in semantic mode ``similarity``."""

    keyword_score: float = 0.0  # BM25F of the query's words (0: none of them)
    keyword_rank: int | None = None  # rank by keyword_score within the match set (None: score 0)
    keyword_normalised: float | None = None
    similarity: float | None = None  # cosine similarity to the query: decides semantic matches
    semantic_score: float | None = None  # the similarity fusion used (to the feedback-moved query)
    semantic_rank: int | None = None
    semantic_normalised: float | None = None
    weight_keyword: float | None = None
    weight_semantic: float | None = None
    matched_by: str = ""  # "words", "meaning" or "both" (or "constraints": filters and operators alone)

    def to_dict(self) -> dict:
        return {k: (_round(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


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
class Version:
    """Another article that reports the same story: what a result lists under "N more versions"."""

    id: str
    title: str
    provider: str
    published: datetime | None
    url: str

    @classmethod
    def of(cls, a: Article) -> Version:
        return cls(a.id, a.title, a.provider, a.published, a.url)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "provider": self.provider,
            "published": self.published.isoformat() if self.published else None,
            "url": self.url,
        }


@dataclass(frozen=True)
class Hit:
    article: Article
    rank: int
    score: float
    components: Components = field(default_factory=Components)
    versions: tuple[Version, ...] = ()  # with collapsing: the story's other matching articles, oldest first

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
            "components": self.components.to_dict(),
            "story": a.story,
            "versions": [v.to_dict() for v in self.versions],
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
    total_relation: str = "eq"  # "eq": total is exact; "gte": a lower bound
    corrections: dict[str, str] = field(default_factory=dict)  # misspelled word -> indexed word searched
    suggestion: str | None = None  # "did you mean": a query with results, offered when there are none
    fusion: dict = field(default_factory=dict)
    collapse: bool = False  # one hit per story: ``total`` counts stories; ``total_articles`` the articles
    total_articles: int | None = None
    also_reported: tuple[Version, ...] = ()  # related(): the anchor's own story, told by other articles
    facets_other: dict[str, int] = field(default_factory=dict)  # per facet, the counts of the values left out

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "mode": self.mode,
            "sort": self.sort,
            "filters": dict(self.filters),
            "total": self.total,
            "total_relation": self.total_relation,
            "counts": "stories" if self.collapse else "articles",
            "total_articles": self.total if self.total_articles is None else self.total_articles,
            "facet_counts": "articles",
            "limit": self.limit,
            "offset": self.offset,
            "took_ms": round(self.took_ms, 2),
            "corrections": dict(self.corrections),
            "suggestion": self.suggestion,
            "fusion": dict(self.fusion),
            "hits": [h.to_dict() for h in self.hits],
            "also_reported": [v.to_dict() for v in self.also_reported],
            "facets": {name: [{"value": v, "count": c} for v, c in counts] for name, counts in self.facets.items()},
            "facets_other": dict(self.facets_other),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass(frozen=True)
class Story:
    """One news event: every article that reports it, oldest first."""

    id: str
    versions: tuple[Article, ...]

    @property
    def title(self) -> str:
        return self.versions[0].title if self.versions else ""

    def to_dict(self) -> dict:
        dated = [a.published for a in self.versions if a.published]
        return {
            "id": self.id,
            "title": self.title,
            "articles": len(self.versions),
            "providers": sorted({a.provider for a in self.versions if a.provider}),
            "first": min(dated).isoformat() if dated else None,
            "last": max(dated).isoformat() if dated else None,
            "versions": [Version.of(a).to_dict() for a in self.versions],
        }
