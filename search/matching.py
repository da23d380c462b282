"""What a query matches: its words under a minimum-should-match rule, typo tolerance, and the
semantic floor. Pure functions over a reader's answers (no engine imports).

A document matches a query when it passes the query's constraints (phrases, field:value,
+/-/NOT, AND/OR groups, filters) and either

- holds enough of its free words: all of them up to ``match_all_upto`` words, else
  ``ceil(match_fraction * n)`` (an explicit OR needs one), a misspelled word standing for the
  indexed words within its typo budget; or
- is semantically close: cosine similarity to the query at least ``semantic_floor``, and at
  least ``semantic_relative`` times the best similarity within the constraints. A query none
  of whose words the index knows has no semantic matches (nonsense stays empty).

Queries with no free words and no semantic text (``topic:Sports``, ``"a phrase"``) match
exactly their constraints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from search.analysis import acronym_spellings
from search.query import All, Any, Not, Phrase, Plan, Word
from search.query import Node as _Node
from search.vocabulary import WORD, Vocabulary, typo_budget, words_of

TYPO_WEIGHT = 0.8  # BM25 weight of a word found through a typo correction
# A token the analyzer keeps whole though it holds dots: U.S., F.B.I., 3.5, huffpost.com. The index holds it as one
# term ("U.S." as "u."), so a query word is not split at its dots (split, "U.S." is two one-letter words: nothing).
_DOTTED = re.compile(r"(?<![^\W_])[^\W_]++(?:\.[^\W_]++)+")  # from a word's start, no backtracking: linear
_LETTER = re.compile(r"[^\W\d_]")
_SYMBOL = re.compile(r"[^\w\s.,;:!?'’\"()\[\]-]")  # &, +, #, @, $...: not the punctuation around words


@dataclass(frozen=True)
class Words:
    """A plan's free words resolved against one index."""

    groups: list[list[tuple[str, float]]]  # per free word: the indexed terms standing for it
    scoring: list[tuple[str, float]]  # every positive term, for BM25
    corrections: dict[str, str] = field(default_factory=dict)  # misspelled word -> indexed word
    known: bool = False  # the index knows at least one positive word (after corrections)
    semantic_text: str = ""


def searchable(plan: Plan, terms) -> Plan:
    """``plan`` without the constraints that hold no indexed term ("the", "?!", title:of): such a constraint
    restricts nothing, so a required one is dropped and an excluded one excludes nothing (kept, it would
    exclude every article)."""
    must = tuple(n for n in (_kept(node, terms) for node in plan.must) if n is not None)
    must_not = tuple(n for n in (_kept(node, terms) for node in plan.must_not) if n is not None)
    if (must, must_not) == (plan.must, plan.must_not):
        return plan
    notes = plan.notes or ("syntax",)  # the text holds what was dropped: its meaning is that of the positive words
    return replace(plan, must=must, must_not=must_not, notes=notes)


def _kept(node: _Node, terms) -> _Node | None:
    if isinstance(node, All | Any):
        children = tuple(c for c in (_kept(child, terms) for child in node.children) if c is not None)
        return None if not children else type(node)(children)
    if isinstance(node, Not):
        child = _kept(node.child, terms)
        return None if child is None else Not(child)
    if isinstance(node, Word | Phrase) and node.field in (None, "title", "excerpt"):
        return node if (isinstance(node, Word) and node.prefix) or terms(node.text) else None
    return node  # provider, topic, domain: matched as given


def nothing_to_match(plan: Plan, words: Words) -> bool:
    """True when a (searchable) plan asks for nothing the index can match: no word it holds terms for, no
    constraint, nothing to search by meaning ("to be or not to be", "?!"). Such a query matches no article,
    as a search engine's query of stop words does, rather than every one."""
    return not words.groups and not words.scoring and not plan.constrained and not words.known


def resolve(plan: Plan, terms, known, vocabulary: Callable[[], Vocabulary] | None) -> Words:
    """Index terms for the plan's words. ``terms(text)`` analyses text, ``known(term)`` says if the
    index holds a term, ``vocabulary()`` (called only when a word is unknown) proposes corrections."""
    groups: list[list[tuple[str, float]]] = []
    scoring: dict[str, float] = {}
    corrections: dict[str, str] = {}
    any_known = False
    for word in plan.words:
        before = len(groups)
        for part in _parts(word):
            analysed = terms(part)
            others = [t[0] for t in map(terms, acronym_spellings(part)) if t and known(t[0])]
            if not analysed and not others:
                continue  # a stop word
            term = analysed[0] if analysed else others[0]
            group = [(term, 1.0)] + [(t, 1.0) for t in others if t != term]
            if known(term) or others:
                any_known = True
            elif vocabulary is not None and typo_budget(part):
                fixes = [(f, terms(f)) for f in vocabulary().corrections(part.lower())]
                group = [(t[0], TYPO_WEIGHT) for f, t in fixes if t and known(t[0])] or group
                if group[0][0] != term:
                    corrections[part.lower()] = fixes[0][0]
                    any_known = True
            groups.append(list(dict.fromkeys(group)))
            for t, w in group:
                scoring[t] = max(scoring.get(t, 0.0), w)
        if len(groups) == before and _opaque(word):
            any_known = True  # "AT&T", "S&P", "C++": a name the index cannot hold as terms; its meaning is searched
    for text in (p for p in plan.positive if p not in plan.words):  # phrases and field words: score their terms too
        for term in terms(text):
            scoring.setdefault(term, 1.0)
            any_known = any_known or known(term)
    plain = not plan.constrained and not plan.notes and plan.positive
    semantic = _corrected(plan.text if plain else " ".join(plan.positive), corrections)
    return Words(groups, list(scoring.items()), corrections, any_known, semantic)


def _parts(word: str) -> list[str]:
    """The words of one query word, in order and as written, split as the analyzer splits text."""
    places = {m.group(0): m.start() for m in _DOTTED.finditer(word)}
    rest = _DOTTED.sub(" ", word)
    for m in WORD.finditer(rest):  # as the vocabulary's words: "Trump's" stays one
        if len(m.group(0)) >= 2 and m.group(0).lower() not in (p.lower() for p in places):
            places[m.group(0)] = m.start()
    return sorted(places, key=places.__getitem__)


def _opaque(word: str) -> bool:
    """A word of letters joined by symbols that the analyzer reduces to nothing: its letters are stop words or
    single letters (AT&T, S&P, C++). Not nonsense, so it is searched by meaning."""
    return bool(_LETTER.search(word)) and bool(_SYMBOL.search(word))


def required(n_words: int, any_word: bool, all_upto: int, fraction: float) -> int:
    """How many of ``n_words`` free words a document must hold."""
    if n_words == 0:
        return 0
    if any_word:
        return 1
    if n_words <= all_upto:
        return n_words
    return max(1, min(n_words, math.ceil(fraction * n_words - 1e-9)))


def suggestion(plan: Plan, known_word, vocabulary: Vocabulary) -> str | None:
    """The query with each word the index does not know replaced by its closest indexed word, or None."""
    changed = False
    out = plan.text
    for word in dict.fromkeys(w for p in plan.positive for w in words_of(p)):
        if known_word(word) or len(word) < 3:
            continue
        fixes = vocabulary.corrections(word, budget=max(1, typo_budget(word)))
        if fixes:
            out = _replace_word(out, word, fixes[0])
            changed = True
    return out if changed else None


def _corrected(text: str, corrections: dict[str, str]) -> str:
    for wrong, right in corrections.items():
        text = _replace_word(text, wrong, right)
    return text


def _replace_word(text: str, word: str, replacement: str) -> str:
    return re.sub(rf"(?i)(?<![^\W_]){re.escape(word)}(?![^\W_])", replacement, text)
