"""Who may call the app, and how often: API keys, CORS and a per-client rate limit, each a setting.

- ``api_keys``: when set, every ``/api/`` request but health and the OpenAPI document must carry one
  of the keys (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``), else 401. The keys are read-only:
  the API has no endpoint that changes anything. The HTML pages stay open.
- ``cors_origins``: browsers on these origins (``*``: any) may call the API; off by default. Preflight
  requests need no key, as browsers send them without one.
- ``rate_limit`` and ``rate_burst``: a token bucket per client (its API key, else its IP address, so
  behind a proxy every client shares one bucket); 429 with ``Retry-After`` when it is empty. Off by
  default. Health checks and static files are not counted.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, request
from werkzeug.exceptions import TooManyRequests, Unauthorized

from search.config import Settings

OPEN_PATHS = frozenset({"/api/health", "/api/health/ready", "/api/openapi.json"})
CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, X-API-Key, Content-Type"
CORS_MAX_AGE = "600"


class MissingKey(Unauthorized):
    description = "This API needs a key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'."

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", 'Bearer realm="news-search"')]


class TokenBuckets:
    """One bucket of ``burst`` tokens per client, refilled at ``rate`` tokens a second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ) -> None:
        self.rate, self.burst, self.clock, self.max_clients = rate, max(1, burst), clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if ``client`` may go ahead (a token is spent), else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                self._forget_full(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Bound the memory: past ``max_clients``, drop the clients whose bucket has refilled."""
        if len(self._buckets) <= self.max_clients:
            return
        refill = self.burst / self.rate
        self._buckets = {c: (t, w) for c, (t, w) in self._buckets.items() if now - w < refill}


def split(value: str) -> tuple[str, ...]:
    """A comma-separated setting as a tuple of its non-empty parts."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def register(app: Flask, settings: Settings) -> None:
    keys = tuple(k.encode() for k in split(settings.api_keys))
    origins = split(settings.cors_origins)
    buckets = TokenBuckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit > 0 else None

    @app.before_request
    def _admit() -> None:
        if request.method == "OPTIONS" or request.endpoint == "static" or request.path in OPEN_PATHS:
            return
        key = _given_key()
        if keys and _is_api() and not any(hmac.compare_digest(key.encode(), k) for k in keys):
            raise MissingKey()
        if buckets is not None:
            wait = buckets.take(f"key:{key}" if keys and key else f"ip:{request.remote_addr}")
            if wait:
                raise TooManyRequests(
                    f"Too many requests from this client: at most {settings.rate_burst} at once and "
                    f"{settings.rate_limit:g} a second. Try again in {math.ceil(wait)} s.",
                    retry_after=math.ceil(wait),
                )

    if origins:

        @app.after_request
        def _cors(response: Response) -> Response:
            origin = request.headers.get("Origin", "")
            if _is_api() and "*" not in origins:
                response.vary.add("Origin")  # the answer depends on the origin: a cache must not give one's to another
            if not _is_api() or not origin or not ("*" in origins or origin in origins):
                return response
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
            return response


def _is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _given_key() -> str:
    key = request.headers.get("X-API-Key", "")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = token.strip()
    return key
