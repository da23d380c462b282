"""The HTML pages: the search page and the article page (server-rendered, no JavaScript)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Blueprint, render_template, request, url_for

from search.errors import InvalidQuery, SearchError
from search.models import Results, Suggestions
from search.service import MAX_OFFSET
from web.inputs import FILTERS, checked_id, get_service, int_arg, search_kwargs

bp = Blueprint("pages", __name__)
PAGE_SIZE = 10
RELATED_SHOWN = 6
LISTED_SHOWN = 20  # publisher-listed related items on the article page; the rest are counted
STATE = ("q", "mode", "sort", "limit", "collapse", *FILTERS)  # what a link from the search page carries over
FILTER_LABELS = {"provider": "Provider", "topic": "Topic", "since": "From", "until": "To"}


@dataclass(frozen=True)
class Pager:
    page: int
    last: int
    numbers: tuple[int, ...]

    @classmethod
    def of(cls, results: Results) -> Pager:
        limit = results.limit
        last = max(1, min(math.ceil(results.total / limit), MAX_OFFSET // limit + 1))
        page = results.offset // limit + 1
        numbers = tuple(range(max(1, page - 3), min(last, page + 3) + 1))
        return cls(page, last, numbers)


@bp.app_template_global()
def search_url(**changes: str | int | None) -> str:
    """The search page with the current query, mode, sort and filters, changed by ``changes``.

    A value of None removes a parameter; the page number is dropped unless given.
    """
    params: dict = {k: request.args[k] for k in STATE if request.args.get(k)}
    params.update(changes)
    return url_for("pages.search", **{k: v for k, v in params.items() if v not in (None, "")})


@bp.get("/")
def home() -> str:
    return render_template("search.html", results=None, suggestions=_suggestions(), **_state())


def _suggestions() -> Suggestions | None:
    """Example searches from the live index; None without one (the home page still works)."""
    try:
        return get_service().suggestions()
    except SearchError:
        return None


@bp.get("/search")
def search() -> str:
    args = request.args
    if not args.get("q", "").strip():
        return home()
    limit = int_arg(args, "limit", PAGE_SIZE)
    page = int_arg(args, "page", 1)
    if not 1 <= page <= MAX_OFFSET // max(limit, 1) + 1:
        raise InvalidQuery(f"page={page} is out of range: pages start at 1 and results stop at {MAX_OFFSET}")
    kwargs = dict(search_kwargs(args), limit=limit, offset=(page - 1) * limit)
    results = get_service().search(**kwargs)
    return render_template("search.html", results=results, pager=Pager.of(results), **_state())


@bp.get("/articles/<article_id>")
def article(article_id: str) -> str:
    service = get_service()
    detail = service.detail(checked_id(article_id), listed_limit=LISTED_SHOWN)
    related = service.related(detail.article.id, limit=RELATED_SHOWN)
    q = request.args.get("q", "")[:1000]
    page = {"article": detail.article, "listed": detail.listed, "omitted": detail.listed_omitted}
    return render_template("article.html", related=related, q=q, **page)


@bp.get("/stories/<story_id>")
def story(story_id: str) -> str:
    found = get_service().story(checked_id(story_id))
    return render_template("story.html", story=found)


def _state() -> dict:
    """What the templates show of the request: the query, mode, sort and active filters."""
    args = request.args
    active = [(name, FILTER_LABELS[name], args[name]) for name in FILTERS if args.get(name)]
    return {
        "q": args.get("q", ""),
        "mode": args.get("mode") or "hybrid",
        "sort": args.get("sort") or "relevance",
        "active": active,
        "values": {name: args.get(name, "") for name in FILTERS},
    }
