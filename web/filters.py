"""Jinja filters for the pages. Values stay text; Jinja's autoescape does the escaping."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import Flask

from web.highlight import highlight, snippet


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL, else None: never a ``javascript:`` link."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def host(url: str | None) -> str:
    """The host of a URL without ``www.``, for "Read on example.com"."""
    try:
        name = urlsplit(url or "").hostname or ""
    except ValueError:
        return ""
    return name.removeprefix("www.")


def nice_date(value: datetime | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else ""


def iso_date(value: str | None) -> str:
    """The YYYY-MM-DD part of a filter value, for an ``<input type="date">``."""
    return value[:10] if value and len(value) >= 10 and value[4] == "-" else ""


def register(app: Flask) -> None:
    for func in (highlight, snippet, safe_url, host, nice_date, iso_date):
        app.add_template_filter(func)
