"""Every error the web app returns: one table from error type to HTTP status, one body shape.

Under ``/api/`` the body is ``{"error": {"status": 400, "type": "invalid_query", "message": "..."}}``;
elsewhere the same three fields are rendered into ``error.html``. Werkzeug's own HTTP errors
(an unknown URL, a wrong method, a body too large) go through the same handler, and anything
unexpected becomes a 500 whose message reveals nothing of the internals.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from search.errors import (
    ArticleError,
    ConfigError,
    DiskFull,
    IndexCorrupt,
    IndexLocked,
    IndexMissing,
    IndexReadOnly,
    InvalidQuery,
    ModelError,
    NotFound,
    QueryTimeout,
    SearchError,
)

log = logging.getLogger(__name__)

# The one place where a library error becomes an HTTP status. The most specific class wins.
# A client error passes the library's message on (it names the bad value). The others describe the
# server, and their messages name its files and settings: clients get the fixed text below, the
# log gets the library's message. (search-cli, run on the server, prints the library's message.)
ERRORS: dict[type[Exception], tuple[int, str, str | None]] = {
    InvalidQuery: (400, "invalid_query", None),
    NotFound: (404, "not_found", None),
    IndexMissing: (503, "index_missing", "No search index has been built yet: run `search-cli index` on the server."),
    IndexCorrupt: (
        503,
        "index_corrupt",
        "The search index failed its checks: rebuild it with `search-cli index --rebuild` on the server.",
    ),
    IndexLocked: (503, "index_locked", "The search index is busy; please try again in a moment."),
    QueryTimeout: (503, "timeout", "The search took too long and was stopped; try fewer or more specific words."),
    DiskFull: (503, "disk_full", "The server's disk is full."),
    IndexReadOnly: (503, "index_read_only", "The search index cannot be written on the server."),
    ConfigError: (500, "config_error", "The server is misconfigured; the details are in its log."),
    ModelError: (500, "model_error", "The embedding model could not be loaded; the details are in the server's log."),
    ArticleError: (500, "article_error", "A stored article could not be read; the details are in the server's log."),
    SearchError: (500, "search_error", "The search failed; the details are in the server's log."),
}
PASSED_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")  # from an HTTP error to the response
INTERNAL_MESSAGE = "Something went wrong on our side. The error was logged; please try again later."


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    type: str
    message: str

    def to_dict(self) -> dict:
        return {"error": {"status": self.status, "type": self.type, "message": self.message}}


def describe(exc: BaseException) -> ErrorInfo:
    """Status, type and message for any exception a request can raise."""
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        return ErrorInfo(code, _snake(exc.name), exc.description or exc.name)
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            status, kind, public = ERRORS[cls]
            return ErrorInfo(status, kind, public or str(exc))
    return ErrorInfo(500, "internal_error", INTERNAL_MESSAGE)


def wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def handle_error(exc: Exception) -> tuple[Response, int]:
    info = describe(exc)
    if info.type == "internal_error":
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    elif info.status >= 500:
        log.error("%s on %s %s: %s", info.type, request.method, request.path, exc)
    if wants_json():
        response = jsonify(info.to_dict())
    else:
        response = Response(
            render_template("error.html", error=info, q=request.args.get("q", "")[:1000]), mimetype="text/html"
        )
    if isinstance(exc, HTTPException):
        for name, value in exc.get_headers():
            if name in PASSED_HEADERS:
                response.headers[name] = value
    return response, info.status


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_error)
    app.register_error_handler(Exception, handle_error)


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
