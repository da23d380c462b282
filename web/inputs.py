"""Request parsing shared by the pages and the API: strings in, service arguments out.

Only the shape of a value is checked here (a whole number, a JSON object, an id's pattern);
ranges and choices are checked once, by the service, so both shells give the same message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from flask import current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from search.errors import InvalidQuery, NotFound
from search.service import SearchService, parse_date
from search.urls import id_problem, is_valid_id
from web.readiness import Readiness

SERVICE_KEY = "search_service"
READINESS_KEY = "search_readiness"
FILTERS = ("provider", "topic", "since", "until")
SEARCH_PARAMS = ("q", "mode", "limit", "offset", "sort", "collapse", *FILTERS)
RELATED_PARAMS = ("limit", "offset", *FILTERS)
BODY_FIELDS = ("text", "limit", "offset", *FILTERS)
DEFAULT_LIMIT = 10
_WHOLE = re.compile(r"-?[0-9]+")


def get_service() -> SearchService:
    """The one SearchService of this app (it reloads itself when a new index generation appears)."""
    return current_app.extensions[SERVICE_KEY]


def known_args(allowed: tuple[str, ...]) -> MultiDict:
    """The request's query parameters, refused (400) if any is not in ``allowed``: a typo such as
    ``limt=3`` must not silently fall back to a default."""
    _refuse_unknown(request.args.keys(), allowed, "parameter")
    return request.args


def _refuse_unknown(names: Iterable[str], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        shown = ", ".join(repr(n if len(n) <= 40 else n[:40] + "…") for n in unknown[:5])
        takes = ", ".join(allowed) if allowed else "none"
        raise InvalidQuery(f"unknown {what}{'s' if len(unknown) > 1 else ''} {shown} (this endpoint takes: {takes})")


def get_readiness() -> Readiness:
    return current_app.extensions[READINESS_KEY]


def int_arg(args: MultiDict, name: str, default: int) -> int:
    """A whole number written in ASCII digits (int() would also take "5_0", "+5" and other scripts' digits)."""
    raw = args.get(name, "")
    if raw.strip() == "":
        return default
    if not _WHOLE.fullmatch(raw):
        raise InvalidQuery(f"{name}={raw[:40]!r} is not a whole number")
    return int(raw)


def check_query_string() -> None:
    """A query string that does not decode as UTF-8 is refused: decoded with replacements, or left escaped
    ("hurricane%FF"), it would be searched as other words than the ones sent."""
    try:
        unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidQuery("the query string is not valid UTF-8 - percent-encode the UTF-8 bytes of the text") from None


def search_kwargs(args: MultiDict) -> dict:
    """Keyword arguments of ``SearchService.search`` from query-string parameters."""
    kwargs = {
        "query": args.get("q", ""),
        "mode": args.get("mode") or "hybrid",
        "sort": args.get("sort") or "relevance",
        "limit": int_arg(args, "limit", DEFAULT_LIMIT),
        "offset": int_arg(args, "offset", 0),
        "collapse": bool_arg(args, "collapse", True),
    }
    return dict(kwargs, **filter_kwargs(args))


def related_kwargs(args: MultiDict) -> dict:
    """Keyword arguments of ``SearchService.related`` (after the id) from query-string parameters."""
    return dict(limit=int_arg(args, "limit", DEFAULT_LIMIT), offset=int_arg(args, "offset", 0), **filter_kwargs(args))


def filter_kwargs(args) -> dict:
    kwargs = {name: args.get(name) or None for name in FILTERS}
    for name in ("since", "until"):
        if kwargs[name]:
            parse_date(kwargs[name], name)  # the service skips an impossible `until` day like 2020-13-01
    return kwargs


def bool_arg(args: MultiDict, name: str, default: bool) -> bool:
    raw = args.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise InvalidQuery(f"{name}={raw[:40]!r} must be true or false")


def checked_id(article_id: str) -> str:
    """An article id from a URL path. A malformed id names no article, so it is a 404 like an unknown one."""
    if not is_valid_id(article_id):
        raise NotFound(id_problem(article_id))
    return article_id


def related_body() -> tuple[str, dict]:
    """``text`` and the other arguments of ``related_text`` from the JSON body of ``POST /api/related``."""
    if not request.is_json:
        raise UnsupportedMediaType('Send the body as JSON with "Content-Type: application/json".')
    try:
        body = request.get_json()
    except BadRequest:
        raise InvalidQuery('the request body is not valid JSON - send {"text": "...", "limit": 10}') from None
    except RecursionError:  # json gives up on deep nesting ([[[[...]]]]) this way
        raise InvalidQuery('the request body nests too deeply - send {"text": "...", "limit": 10}') from None
    if not isinstance(body, dict):
        raise InvalidQuery('the request body must be a JSON object like {"text": "...", "limit": 10}')
    _refuse_unknown(body.keys(), BODY_FIELDS, "field")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuery('"text" is missing or empty - send the text to find related stories for')
    numbers = {}
    for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidQuery(f"{name}={value!r} must be a whole number")
        numbers[name] = value
    filters = {name: body.get(name) for name in FILTERS if body.get(name) is not None}
    bad = [name for name, value in filters.items() if not isinstance(value, str)]
    if bad:
        raise InvalidQuery(f"{bad[0]} must be a string")
    return text, dict(numbers, **filter_kwargs(filters))
