"""The JSON API under /api/: the same dicts as ``search-cli --json``. Errors: see web/errors.py."""

from __future__ import annotations

from flask import Blueprint

from search.errors import IndexCorrupt, IndexMissing
from web.highlight import fragments
from web.inputs import (
    RELATED_PARAMS,
    SEARCH_PARAMS,
    checked_id,
    get_readiness,
    get_service,
    known_args,
    related_body,
    related_kwargs,
    search_kwargs,
)
from web.openapi import openapi_document
from web.readiness import NotReady

bp = Blueprint("api", __name__, url_prefix="/api")
SERVER_ONLY_STATS = ("index_dir",)  # a filesystem path: search-cli stats shows it, the API does not


@bp.get("/search")
def search() -> dict:
    """The CLI's dict, plus each hit's ``highlights``: the fragments the search page shows."""
    results = get_service().search(**search_kwargs(known_args(SEARCH_PARAMS)))
    body = results.to_dict()
    for hit, found in zip(body["hits"], results.hits, strict=True):
        hit["highlights"] = fragments(found.article.title, found.article.excerpt, results.query, results.corrections)
    return body


@bp.get("/articles/<article_id>")
def article(article_id: str) -> dict:
    known_args(())
    return get_service().detail(checked_id(article_id)).to_dict()


@bp.get("/articles/<article_id>/related")
def related(article_id: str) -> dict:
    """More like this: other stories, one hit each; the article's own story under ``also_reported``."""
    return get_service().related(checked_id(article_id), **related_kwargs(known_args(RELATED_PARAMS))).to_dict()


@bp.post("/related")
def related_text() -> dict:
    known_args(())
    text, kwargs = related_body()
    return get_service().related_text(text, **kwargs).to_dict()


@bp.get("/stories/<story_id>")
def story(story_id: str) -> dict:
    """A story's articles (versions), oldest first; an article id gives the story of that article."""
    known_args(())
    return get_service().story(checked_id(story_id)).to_dict()


@bp.get("/health")
def health() -> dict:
    """Liveness: 200 while the process answers, with or without an index; ``ready`` says whether it is warm."""
    known_args(())
    try:
        facts = get_service().health()
    except (IndexMissing, IndexCorrupt):
        facts = {"generation": None, "articles": None}
    readiness = get_readiness()
    return {
        "status": "ok",
        "ready": readiness.done and readiness.error is None and facts["generation"] is not None,
        "generation": facts["generation"],
        "articles": facts["articles"],
    }


@bp.get("/health/ready")
def ready() -> dict:
    """Readiness: 503 while warming up (model loaded, index opened, each engine run once) or without a usable index."""
    known_args(())
    readiness = get_readiness()
    if not readiness.done:
        raise NotReady()
    error = readiness.blocking_error()
    if error is not None:
        raise error
    if readiness.retry_when_indexed():  # the index was built after start-up: warm up on it first
        raise NotReady()
    return dict(get_service().health(), status="ready")


@bp.get("/stats")
def stats() -> dict:
    known_args(())
    return {k: v for k, v in get_service().stats().items() if k not in SERVER_ONLY_STATS}


@bp.get("/openapi.json")
def openapi() -> dict:
    known_args(())
    return openapi_document()
