"""Start-up: warm the service up in the background, so the port opens at once and ``/api/health/ready``
answers 200 only once a search is as fast as it will ever be (see SearchService.warm_up)."""

from __future__ import annotations

import copy
import logging
import threading

from werkzeug.exceptions import ServiceUnavailable

from search.errors import IndexCorrupt, IndexMissing

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 2


class Readiness:
    """``done`` once the warm-up has finished; ``error`` is what it raised, if anything."""

    def __init__(self, service) -> None:
        self.service = service
        self.error: Exception | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="warm-up", daemon=True)
        thread.start()
        return thread

    def retry_when_indexed(self) -> bool:
        """After a warm-up that found no usable index, start another if one opens now; True if started."""
        with self._lock:
            if not self.done or not isinstance(self.error, IndexMissing | IndexCorrupt):
                return False
            self.service.health()  # raises while there is still no usable index
            self.error = None
            self._done.clear()
        self.start()
        return True

    def run(self) -> None:
        try:
            self.service.warm_up()
        except Exception as exc:  # kept for /api/health/ready; the server keeps running
            self.error = exc
            log.error("warm-up failed: %s", exc)
        finally:
            self._done.set()

    def mark_ready(self) -> None:
        """Ready without a warm-up (an app whose service was injected, as in tests)."""
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def blocking_error(self) -> Exception | None:
        """The warm-up's error if it still stands: a missing or broken index may have been built since."""
        if self.error is None or isinstance(self.error, IndexMissing | IndexCorrupt):
            return None
        return copy.copy(self.error)  # a fresh object: re-raising the one stored would grow its traceback


class NotReady(ServiceUnavailable):
    """503 ``not_ready`` with Retry-After, while the warm-up runs."""

    name = "Not Ready"
    description = "Starting up: loading the model and opening the index. Try again in a few seconds."

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Retry-After", str(RETRY_AFTER_SECONDS))]
