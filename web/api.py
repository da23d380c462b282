"""The JSON API under /api/: the same dicts as ``search-cli --json``. Errors: see web/errors.py."""

from __future__ import annotations

from flask import Blueprint

from web.inputs import (
    DEFAULT_LIMIT,
    SEARCH_PARAMS,
    checked_id,
    get_service,
    int_arg,
    known_args,
    related_body,
    search_kwargs,
)
from web.openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api")
SERVER_ONLY_STATS = ("index_dir",)  # a filesystem path: search-cli stats shows it, the API does not


@bp.get("/search")
def search() -> dict:
    return get_service().search(**search_kwargs(known_args(SEARCH_PARAMS))).to_dict()


@bp.get("/articles/<article_id>")
def article(article_id: str) -> dict:
    known_args(())
    return get_service().detail(checked_id(article_id)).to_dict()


@bp.get("/articles/<article_id>/related")
def related(article_id: str) -> dict:
    limit = int_arg(known_args(("limit",)), "limit", DEFAULT_LIMIT)
    return get_service().related(checked_id(article_id), limit=limit).to_dict()


@bp.post("/related")
def related_text() -> dict:
    known_args(())
    text, limit = related_body()
    return get_service().related_text(text, limit=limit).to_dict()


@bp.get("/health")
def health() -> dict:
    known_args(())
    return get_service().health()


@bp.get("/stats")
def stats() -> dict:
    known_args(())
    return {k: v for k, v in get_service().stats().items() if k not in SERVER_ONLY_STATS}


@bp.get("/openapi.json")
def openapi() -> dict:
    known_args(())
    return openapi_document()
