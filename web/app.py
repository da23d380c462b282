"""The Flask app factory: a thin shell over SearchService (parse -> call the service -> render).

    create_app()                      settings from search.yaml / SEARCH_* variables
    create_app(settings)              what `search-cli serve` does
    create_app(settings, service)     tests inject a service

The service is created once per app, i.e. once per process; it reopens the index by itself
when a newer generation is published. An app that creates its service warms it up in a background
thread (``warm_up``; /api/health/ready says when it is done); one given a service counts as ready.
Debug mode is never turned on.
"""

from __future__ import annotations

from flask import Flask, Response

from search.config import Settings, load_settings
from search.service import SearchService
from web import access, api, errors, filters, pages
from web.inputs import READINESS_KEY, SERVICE_KEY, check_query_string
from web.readiness import Readiness

MAX_BODY_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: http: data:; style-src 'self'; "
    "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def create_app(
    settings: Settings | None = None, service: SearchService | None = None, *, warm_up: bool | None = None
) -> Flask:
    if warm_up is None:
        warm_up = service is None
    if service is None:
        service = SearchService(settings or load_settings())
    settings = settings or getattr(service, "settings", None) or Settings()
    readiness = Readiness(service)
    app = Flask(__name__)
    app.debug = False
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, PROPAGATE_EXCEPTIONS=False)
    app.json.sort_keys = False  # keep the field order of to_dict(), as the CLI prints it
    app.json.ensure_ascii = False
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.extensions[SERVICE_KEY] = service
    app.extensions[READINESS_KEY] = readiness
    app.before_request(check_query_string)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    errors.register(app)
    filters.register(app)
    access.register(app, settings)
    app.after_request(_secure)
    if warm_up:
        readiness.start()
    else:
        readiness.mark_ready()
    return app


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
