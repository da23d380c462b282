"""Mark the query's words in a text, safely (pure functions, no Flask).

The text is HTML-escaped first; only then are whole words wrapped in ``<mark>``. Entities such
as ``&amp;`` or ``&lt;`` are skipped as units, so a mark never lands inside one, and the only
tags in the output are the marks themselves.

Words match case-insensitively after a light stemming (plural and -ing/-ed endings), or when
one stem is a prefix of the other and the shorter has at least four letters: "controls"
marks "control", "Controlled" and "controlling", but "cat" does not mark "category".
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he in is it its not of on or she that the their "
    "they this to was we were will with".split()
)
MIN_PREFIX = 4
_WORD = re.compile(r"\w+")
_FIELD_PREFIX = re.compile(r"\b\w+:")
_TOKEN = re.compile(r"&#?\w+;|\w+")  # in escaped text: an entity (left alone) or a word
_JOIN_MARKS = re.compile(r"</mark>(\s+)<mark>")


def stem(word: str) -> str:
    """A deliberately small English stemmer: enough to join a word and its plural."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def query_terms(query: str) -> tuple[str, ...]:
    """Stems of the query's words, without stop words, operators or ``field:`` prefixes."""
    words = _WORD.findall(_FIELD_PREFIX.sub(" ", query or ""))
    stems = (stem(w) for w in words if w.lower() not in STOPWORDS and len(w) > 1)
    return tuple(dict.fromkeys(stems))


def matches(word: str, terms: tuple[str, ...]) -> bool:
    s = stem(word)
    for term in terms:
        if s == term:
            return True
        short, long_ = sorted((s, term), key=len)
        if len(short) >= MIN_PREFIX and long_.startswith(short):
            return True
    return False


def highlight(text: str, query: str) -> Markup:
    """``text`` escaped, with every word that matches a query word wrapped in ``<mark>``."""
    escaped = str(escape(text or ""))
    terms = query_terms(query)
    if not terms:
        return Markup(escaped)

    def mark(m: re.Match) -> str:
        token = m.group(0)
        if token.startswith("&") or not matches(token, terms):
            return token
        return f"<mark>{token}</mark>"

    marked = _TOKEN.sub(mark, escaped)
    return Markup(_JOIN_MARKS.sub(r"\1", marked))


def snippet(text: str, limit: int = 320) -> str:
    """``text`` cut at a word boundary to at most about ``limit`` characters."""
    text = text or ""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return cut + "…"


def fragments(title: str, excerpt: str, query: str) -> dict[str, str]:
    """What the search page shows of a hit, as HTML: the title and the excerpt's snippet, marked."""
    return {"title": str(highlight(title, query)), "excerpt": str(highlight(snippet(excerpt), query))}
