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

from search.analysis import acronym_spellings

STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he in is it its not of on or she that the their "
    "they this to us was we were will with".split()
)
MIN_PREFIX = 4
OPERATORS = ("AND", "OR", "NOT")  # the query language's, not acronyms
_WORD = re.compile(r"\w+(?:\.\w+)*")  # dotted tokens stay whole, as the index holds them: U.S., 3.5
_TEXT_FIELD = re.compile(r"\b(?:title|excerpt):", re.IGNORECASE)  # their values are words of the text
_OTHER_FIELD = re.compile(r'\b\w+:(?:"[^"]*"?|\S*)')  # topic:"World News", provider:AP: filters, not words
_TOKEN = re.compile(r"&#?\w+;|\w+(?:\.\w+)*")  # in escaped text: an entity (left alone) or a word
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
    """Stems of the query's words, without stop words or operators. A ``title:`` or ``excerpt:`` value is
    words of the text; another field's value (``topic:Politics``) restricts, and marks nothing."""
    words = _WORD.findall(_OTHER_FIELD.sub(" ", _TEXT_FIELD.sub(" ", query or "")))
    words += [other for w in words if w not in OPERATORS for other in acronym_spellings(w)]  # "U.S" adds "us": stopped
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


def highlight(text: str, query: str, corrections: dict[str, str] | None = None) -> Markup:
    """``text`` escaped, with every word that matches a query word wrapped in ``<mark>``; a misspelled word
    that was searched as corrected (``corrections``, as the results give them) marks its correction."""
    escaped = str(escape(text or ""))
    terms = query_terms(" ".join((query or "", *(corrections or {}).values())))
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


def fragments(title: str, excerpt: str, query: str, corrections: dict[str, str] | None = None) -> dict[str, str]:
    """What the search page shows of a hit, as HTML: the title and the excerpt's snippet, marked."""
    return {
        "title": str(highlight(title, query, corrections)),
        "excerpt": str(highlight(snippet(excerpt), query, corrections)),
    }
