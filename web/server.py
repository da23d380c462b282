"""The production server: the app under waitress, whose own error pages carry the app's security headers.

waitress answers some requests without calling the app (a header block over its limit: 431, a
malformed Content-Length: 400, a body over its limit: 413). Its error task is given the same
headers that ``web.app`` adds to every Flask response.
"""

from __future__ import annotations

import gc
import warnings

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

from web.app import SECURITY_HEADERS

IDENT = "news-search"


class _SecureErrorTask(ErrorTask):
    def execute(self) -> None:
        self.response_headers.extend(SECURITY_HEADERS.items())
        super().execute()


class _SecureChannel(HTTPChannel):
    error_task_class = _SecureErrorTask


class ServeError(Exception):
    """The server cannot listen where it was asked to."""


def make_server(app: Flask, host: str, port: int, threads: int):
    """A waitress server bound to ``host``:``port`` (0: a free port), not yet running; ``.run()`` serves.

    Its ``effective_port`` (or, when the host resolves to several addresses, ``effective_listen``)
    says where it listens.
    """
    sockets: dict = {}
    failure = ""
    with warnings.catch_warnings():  # a failed bind leaves waitress's half-made sockets to the collector
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            server = create_server(app, map=sockets, host=host, port=port, threads=threads, ident=IDENT)
        except (OSError, ValueError) as exc:  # the port is taken, the host is not this machine's...
            for made in list(sockets.values()):
                made.close()
            failure = getattr(exc, "strerror", None) or str(exc)
        if failure:
            gc.collect()  # the failed attempt's socket goes now, while its warning is ignored
    if failure:
        raise ServeError(f"cannot serve on {host}:{port}: {failure}")
    for listener in list(sockets.values()):
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = _SecureChannel
    return server


def addresses(server) -> list[str]:
    """``http://host:port/`` for every socket the server listens on."""
    listen = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"http://{f'[{h}]' if ':' in str(h) else h}:{p}/" for h, p in listen]
