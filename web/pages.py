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
    capped: bool = False  # the results go on past the last page that can be reached

    @classmethod
    def of(cls, results: Results) -> Pager:
        limit = results.limit
        pages = math.ceil(results.total / limit)
        last = max(1, min(pages, _last_page(limit)))
        page = results.offset // limit + 1
        numbers = tuple(range(max(1, page - 3), min(last, page + 3) + 1))
        return cls(page, last, numbers, pages > last)


def _last_page(limit: int) -> int:
    """The last page whose offset the service accepts."""
    return MAX_OFFSET // max(limit, 1) + 1


@bp.app_template_global()
def search_url(**changes: str | int | None) -> str:
    """The search page with the current query, mode, sort and filters, changed by ``changes``.

    A value of None removes a parameter; the page number is dropped unless given.
    """
    params: dict = {k: request.args[k] for k in STATE if request.args.get(k)}
    params.update(changes)
    return url_for("pages.search", **{k: v for k, v in params.items() if v not in (None, "")})


@bp.app_template_global()
def search_state(*leave: str) -> dict:
    """The search the request came from (query, mode, sort, filters, grouping and page), for a link that leads back
    to it or a form that keeps it; ``leave`` names the parameters the link or form sets itself."""
    return {k: request.args[k] for k in (*STATE, "page") if request.args.get(k) and k not in leave}


@bp.app_template_global()
def topic_url(topic: str) -> str:
    """The newest stories of one topic: the topic as a filter (``topic:"..."``), not as words to look for."""
    return url_for("pages.search", q=f'topic:"{topic.replace(chr(34), " ")}"', sort="newest")


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
    if not 1 <= page <= _last_page(limit):
        raise InvalidQuery(
            f"page={page} is out of range: pages 1 to {_last_page(limit)} can be browsed - narrow the search, add a "
            "filter or sort by newest to reach later results"
        )
    kwargs = dict(search_kwargs(args), limit=limit, offset=(page - 1) * limit)
    results = get_service().search(**kwargs)
    page_info = {"pager": Pager.of(results), "max_browsable": MAX_OFFSET + results.limit}
    return render_template("search.html", results=results, **page_info, **_state())


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
