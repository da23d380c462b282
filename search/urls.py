"""Canonical URLs and the article ids derived from them (pure functions, no I/O)."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "mkt_tok",
        "ocid",
        "cmpid",
        "ncid",
        "sr_share",
        "guccounter",
        "__twitter_impression",
        "ref_src",
    }
)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{11}$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no tracking parameters, fragment or trailing slash.

    >>> canonical_url("HTTPS://Example.COM/a/?utm_source=x&id=3#top")
    'https://example.com/a?id=3'
    """
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return url
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None and str(parts.port) != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path.rstrip("/")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    ]
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def _digest(canonical: str) -> bytes:
    raw = bytearray(hashlib.blake2b(canonical.encode("utf-8"), digest_size=8).digest())
    raw[0] &= 0x7F  # keep the integer form positive: it is the FAISS id
    return bytes(raw)


def article_id(url: str) -> str:
    """Stable 11-character URL-safe id of an article, from its canonical URL."""
    return base64.urlsafe_b64encode(_digest(canonical_url(url))).decode("ascii").rstrip("=")


def id_to_int(article_id_: str) -> int:
    """The 63-bit integer behind an article id (its FAISS id)."""
    return int.from_bytes(base64.urlsafe_b64decode(article_id_ + "="), "big")


def int_to_id(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(8, "big")).decode("ascii").rstrip("=")


def id_problem(value: str, what: str = "an article id") -> str:
    """Why ``value`` is not ``what``, for a message (call it when ``is_valid_id`` is False)."""
    shown = value if len(value) <= 40 else value[:40] + "…"
    if isinstance(value, str) and ID_PATTERN.match(value):
        return f"{shown!r} is not {what}: it has their form, 11 characters of A-Z a-z 0-9 _ -, but no URL gives it"
    return f"{shown!r} is not {what} (ids are 11 characters of A-Z a-z 0-9 _ -)"


def is_valid_id(value: str) -> bool:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        return False
    number = id_to_int(value)
    return number < 2**63 and int_to_id(number) == value
