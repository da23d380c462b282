"""The OpenAPI 3.0 description of /api/, written by hand.

tests/test_openapi.py validates real responses of every endpoint, errors included, against
these component schemas, so a change to a response dict must be made here too.
"""

from __future__ import annotations

import copy

from search.config import MODES
from search.service import MAX_LIMIT, MAX_LISTED, MAX_OFFSET, MAX_QUERY_CHARS, SORTS

ID_PATTERN = "^[A-Za-z0-9_-]{11}$"
DESCRIPTION = f"""Keyword, semantic and hybrid search over news articles, and "more like this".

Every error has the body `{{"error": {{"status", "type", "message"}}}}`. A malformed article id in
a path is answered like an unknown one: 404 `not_found`. Limits: `limit` 1..{MAX_LIMIT},
`offset` 0..{MAX_OFFSET}, query text at most {MAX_QUERY_CHARS} characters. A query parameter
given empty (`sort=`) counts as absent, as HTML forms send them. An unknown query parameter or
body field (a typo such as `limt=3`) is a 400 `invalid_query` that names it.

Access, each set by the server: API keys (`X-API-Key: KEY` or `Authorization: Bearer KEY`; 401
without one), CORS origins, and a per-client rate limit (429 with `Retry-After`). The health
checks and this document are always open.

Each hit of `/api/search` has `highlights`: its title and a snippet of its excerpt as the search
page shows them, as HTML (the text escaped, the query's words in `<mark>`)."""


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: list[str] | None = None, closed: bool = True) -> dict:
    out: dict = {"type": "object", "properties": properties}
    required = list(properties) if required is None else required
    if required:  # OpenAPI 3.0 (like JSON Schema draft 4) forbids an empty list
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
NULL_STR = {"type": "string", "nullable": True}
NULL_INT = {"type": "integer", "nullable": True}
NULL_NUM = {"type": "number", "nullable": True}
DATE_TIME = {"type": "string", "format": "date-time", "nullable": True}
ARTICLE_ID = {"type": "string", "pattern": ID_PATTERN}
STRINGS = {"type": "array", "items": STR}
DATE = {"type": "string", "format": "date"}

ARTICLE = {
    "id": ARTICLE_ID,
    "url": STR,
    "title": STR,
    "excerpt": STR,
    "published": DATE_TIME,
    "provider": STR,
    "provider_domain": STR,
    "topics": STRINGS,
    "image": STR,
    "quality": NULL_INT,
    "authors": STRINGS,
    "related": {"type": "array", "items": ARTICLE_ID, "description": "Ids of the publisher-listed related items."},
    "is_stub": {"type": "boolean", "description": "Known only as another article's related item."},
    "story": {**STR, "description": "The story (news event) the article reports: the id of the story's first article."},
}
SCHEMAS = {
    "Error": _obj({"error": _obj({"status": INT, "type": STR, "message": STR})}),
    "Article": _obj(ARTICLE),
    "ArticleDetail": _obj(
        dict(
            ARTICLE,
            related_articles={
                "type": "array",
                "items": _ref("Article"),
                "maxItems": MAX_LISTED,
                "description": f"The stored ones among the first {MAX_LISTED} publisher-listed related items.",
            },
            related_omitted={"type": "integer", "minimum": 0, "description": "Related ids past the cap."},
        )
    ),
    "Components": _obj(
        {
            "keyword_score": {**NUM, "description": "BM25F of the query's words (0: none of them)."},
            "keyword_rank": {**NULL_INT, "description": "Rank by keyword_score in the match set (null: score 0)."},
            "keyword_normalised": {**NULL_NUM, "description": "keyword_score scaled to 0..1 as hybrid fused it."},
            "similarity": {**NULL_NUM, "description": "Cosine similarity to the query: decides matches by meaning."},
            "semantic_score": {**NULL_NUM, "description": "The similarity hybrid fused (to the feedback-moved query)."},
            "semantic_rank": NULL_INT,
            "semantic_normalised": NULL_NUM,
            "weight_keyword": NULL_NUM,
            "weight_semantic": {
                **NULL_NUM,
                "description": "In hybrid (convex) mode score = weight_keyword * keyword_normalised + "
                "weight_semantic * semantic_normalised.",
            },
            "matched_by": {
                "type": "string",
                "enum": ["words", "meaning", "both", "constraints"],
                "description": "Why the article is in the match set.",
            },
        }
    ),
    "Hit": _obj(
        {
            "rank": INT,
            "id": ARTICLE_ID,
            "title": STR,
            "excerpt": STR,
            "url": STR,
            "provider": STR,
            "published": DATE_TIME,
            "topics": STRINGS,
            "image": STR,
            "score": NUM,
            "components": _ref("Components"),
            "story": {**STR, "description": "The story this article reports (the id of its first article)."},
            "versions": {
                "type": "array",
                "items": _ref("Version"),
                "description": "With collapse: the story's other articles in the match set, oldest first.",
            },
            "highlights": dict(
                _obj({"title": STR, "excerpt": STR}),
                description="Search hits only: the title and a snippet of the excerpt as HTML, query words in <mark>.",
            ),
        },
        required=["rank", "id", "title", "excerpt", "url", "provider", "published", "topics", "image", "score"]
        + ["components", "story", "versions"],
    ),
    "Version": _obj({"id": ARTICLE_ID, "title": STR, "provider": STR, "published": DATE_TIME, "url": STR}),
    "Story": _obj(
        {
            "id": ARTICLE_ID,
            "title": STR,
            "articles": INT,
            "providers": STRINGS,
            "first": NULL_STR,
            "last": NULL_STR,
            "versions": {"type": "array", "items": _ref("Version"), "description": "Oldest first."},
        }
    ),
    "Facet": _obj({"value": STR, "count": INT}),
    "Results": _obj(
        {
            "query": STR,
            "mode": {"type": "string", "enum": [*MODES, "related"]},
            "sort": {"type": "string", "enum": list(SORTS)},
            "filters": _obj({"provider": STR, "topic": STR, "since": STR, "until": STR}, required=[]),
            "total": {
                **INT,
                "description": "How many articles match the query (its match set), the same on every page; "
                "facets count and newest-first sorts that set.",
            },
            "counts": {
                "type": "string",
                "enum": ["stories", "articles"],
                "description": "What total and the pages count: stories (collapse, the default) or articles.",
            },
            "total_articles": {**INT, "description": "How many articles the match set holds."},
            "facet_counts": {"type": "string", "enum": ["articles"], "description": "Facets count articles."},
            "also_reported": {
                "type": "array",
                "items": _ref("Version"),
                "description": "More like this for an article: the other articles of its own story.",
            },
            "total_relation": {
                "type": "string",
                "enum": ["eq", "gte"],
                "description": "eq: total is exact; gte: total is a lower bound.",
            },
            "corrections": {
                "type": "object",
                "additionalProperties": STR,
                "description": "Misspelled query words and the indexed words searched instead.",
            },
            "suggestion": {**NULL_STR, "description": "With no results: a query built from the index's words."},
            "fusion": {"type": "object", "description": "How hybrid scores were fused (method and weights)."},
            "limit": INT,
            "offset": INT,
            "took_ms": NUM,
            "hits": {"type": "array", "items": _ref("Hit")},
            "facets": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": _ref("Facet")},
                "description": "provider and topic counts over the matches, the 10 most frequent values of each "
                "(empty for related).",
            },
            "facets_other": {
                "type": "object",
                "additionalProperties": INT,
                "description": "per facet, the count left out of `facets`: the sum of the counts of its other values.",
            },
        }
    ),
    "RelatedRequest": _obj(
        {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
            "provider": STR,
            "topic": STR,
            "since": STR,
            "until": STR,
        },
        required=["text"],
    ),
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok"]},
            "ready": {"type": "boolean", "description": "Whether /api/health/ready would answer 200 now."},
            "generation": NULL_STR,
            "articles": NULL_INT,
        }
    ),
    "Ready": _obj({"status": {"type": "string", "enum": ["ready"]}, "generation": STR, "articles": INT}),
    "Stats": _obj(
        {
            "articles": INT,
            "stubs": INT,
            "providers": INT,
            "sources": INT,
            "oldest": NULL_STR,
            "newest": NULL_STR,
            "backend": {"type": "string", "enum": ["local", "qdrant"]},
            "generation": STR,
            "model": STR,
            "model_id": STR,
            "dim": INT,
            "built_at": STR,
            "format_version": INT,
            "story_model": {
                "type": "string",
                "description": "The story model that assigned the stories (empty: not recorded; the next index "
                "run assigns them again).",
            },
            "bytes_on_disk": INT,
            "vector_index": STR,
        }
    ),
}

ERROR_RESPONSES = {
    "400": "Bad input: a parameter out of range or malformed (type invalid_query).",
    "404": "No such article, or no such URL.",
    "405": "Method not allowed.",
    "401": "An API key is needed and was missing or wrong (only when the server sets api_keys).",
    "415": "The body is not application/json.",
    "429": "Too many requests from this client (only when the server sets rate_limit): see Retry-After.",
    "500": "Unexpected server error.",
    "503": "Not ready yet (not_ready, with Retry-After), or no usable index (index_missing, index_corrupt).",
}


def _json(schema_name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _responses(ok: str, *errors: str, guarded: bool = True) -> dict:
    """``guarded``: the operation may need an API key and counts towards the rate limit (401, 429)."""
    out = {"200": _json(ok, "OK")}
    extra = ("401", "429") if guarded else ()
    codes = sorted({"400", *errors, *extra, "405", "500", "503"})  # 400: every operation refuses unknown parameters
    out.update({code: {"$ref": f"#/components/responses/E{code}"} for code in codes})
    return out


def _query(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}, "Hits per page.")
ID_PARAM = {"name": "article_id", "in": "path", "required": True, "schema": ARTICLE_ID, "description": "Article id."}
FILTER_PARAMS = [
    _query("provider", STR, "Only this provider (case-insensitive)."),
    _query("topic", STR, "Only this topic (case-insensitive)."),
    _query("since", DATE, "Published on or after this day (an ISO 8601 timestamp works too)."),
    _query("until", DATE, "Published on or before this day, inclusive (an ISO 8601 timestamp works too)."),
]
SEARCH_PARAMS = [
    _query(
        "q",
        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
        'Words are OR-ed; "quoted phrases", field:value and AND/OR/NOT work.',
        required=True,
    ),
    _query("mode", {"type": "string", "enum": list(MODES), "default": "hybrid"}, "Retrieval mode."),
    LIMIT,
    _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "Hits to skip."),
    *FILTER_PARAMS,
    _query("sort", {"type": "string", "enum": list(SORTS), "default": "relevance"}, "Order of the hits."),
    _query("collapse", {"type": "boolean", "default": True}, "One hit per story, its other versions listed."),
]

PATHS = {
    "/api/search": {
        "get": {
            "summary": "Search articles",
            "operationId": "search",
            "parameters": SEARCH_PARAMS,
            "responses": _responses("Results", "400"),
        }
    },
    "/api/articles/{article_id}": {
        "get": {
            "summary": "One article with its publisher-listed related items",
            "operationId": "getArticle",
            "parameters": [ID_PARAM],
            "responses": _responses("ArticleDetail", "404"),
        }
    },
    "/api/articles/{article_id}/related": {
        "get": {
            "summary": "More like this article: other stories; its own story under also_reported",
            "operationId": "relatedToArticle",
            "parameters": [
                ID_PARAM,
                LIMIT,
                _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "Skip."),
                *FILTER_PARAMS,
            ],
            "responses": _responses("Results", "400", "404"),
        }
    },
    "/api/stories/{story_id}": {
        "get": {
            "summary": "One story: its articles, oldest first (an article id gives that article's story)",
            "operationId": "getStory",
            "parameters": [
                {
                    "name": "story_id",
                    "in": "path",
                    "required": True,
                    "schema": ARTICLE_ID,
                    "description": "A story id, or any of its articles' ids.",
                }
            ],
            "responses": _responses("Story", "404"),
        }
    },
    "/api/related": {
        "post": {
            "summary": "Articles related to a text",
            "operationId": "relatedToText",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RelatedRequest")}}},
            "responses": _responses("Results", "400", "415"),
        }
    },
    "/api/health": {
        "get": {
            "summary": "Liveness: 200 while the process answers; the live generation (null without an index)",
            "operationId": "health",
            "security": [],
            "responses": _responses("Health", guarded=False),
        }
    },
    "/api/health/ready": {
        "get": {
            "summary": "Readiness: 200 once the model is loaded and the index open and warm, else 503",
            "operationId": "ready",
            "security": [],
            "responses": _responses("Ready", guarded=False),
        }
    },
    "/api/stats": {
        "get": {
            "summary": "Counts and facts about the live index",
            "operationId": "stats",
            "responses": _responses("Stats"),
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.0 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"$ref": "#/components/responses/E400"},
            },
        }
    },
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "News search API", "version": "1.0.0", "description": DESCRIPTION},
    "paths": PATHS,
    "security": [{}, {"apiKey": []}, {"bearer": []}],  # {}: no key, unless the server sets api_keys
    "components": {
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
        "schemas": SCHEMAS,
        "responses": {f"E{code}": _json("Error", text) for code, text in ERROR_RESPONSES.items()},
    },
}


def openapi_document() -> dict:
    """A fresh copy of the document (callers may not mutate the module's one)."""
    return copy.deepcopy(DOCUMENT)
