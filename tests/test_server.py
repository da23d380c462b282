"""The production server (web/server.py) as `search-cli serve` runs it, on 127.0.0.1."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from web.app import SECURITY_HEADERS
from webutil import served


def raw_request(base_url: str, request: bytes) -> tuple[int, dict[str, str]]:
    """Send bytes as they are (no client library would send these) and parse the status and headers."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), headers


@pytest.fixture(scope="module")
def server(web_settings):
    with served(web_settings.index_dir) as url:
        yield url


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
        (b"POST /api/related HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/related HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200),  # the app's own response, for comparison
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ],
    ids=["header-too-large", "bad-content-length", "two-content-lengths", "app-page", "app-404"],
)
def test_every_response_carries_the_security_headers(server, request_bytes: bytes, status: int) -> None:
    got, headers = raw_request(server, request_bytes)
    assert got == status
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, headers)
