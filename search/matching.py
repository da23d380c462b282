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
from dataclasses import dataclass, field

from search.query import Plan
from search.vocabulary import Vocabulary, typo_budget, words_of

TYPO_WEIGHT = 0.8  # BM25 weight of a word found through a typo correction


@dataclass(frozen=True)
class Words:
    """A plan's free words resolved against one index."""

    groups: list[list[tuple[str, float]]]  # per free word: the indexed terms standing for it
    scoring: list[tuple[str, float]]  # every positive term, for BM25
    corrections: dict[str, str] = field(default_factory=dict)  # misspelled word -> indexed word
    known: bool = False  # the index knows at least one positive word (after corrections)
    semantic_text: str = ""


def resolve(plan: Plan, terms, known, vocabulary: Callable[[], Vocabulary] | None) -> Words:
    """Index terms for the plan's words. ``terms(text)`` analyses text, ``known(term)`` says if the
    index holds a term, ``vocabulary()`` (called only when a word is unknown) proposes corrections."""
    groups: list[list[tuple[str, float]]] = []
    scoring: dict[str, float] = {}
    corrections: dict[str, str] = {}
    any_known = False
    for word in plan.words:
        for part in sorted(words_of(word), key=word.lower().find):
            analysed = terms(part)
            if not analysed:
                continue  # a stop word
            term = analysed[0]
            group = [(term, 1.0)]
            if known(term):
                any_known = True
            elif vocabulary is not None and typo_budget(part):
                fixes = [(f, terms(f)) for f in vocabulary().corrections(part)]
                group = [(t[0], TYPO_WEIGHT) for f, t in fixes if t and known(t[0])] or group
                if group[0][0] != term:
                    corrections[part] = fixes[0][0]
                    any_known = True
            groups.append(list(dict.fromkeys(group)))
            for t, w in group:
                scoring[t] = max(scoring.get(t, 0.0), w)
    for text in (p for p in plan.positive if p not in plan.words):  # phrases and field words: score their terms too
        for term in terms(text):
            scoring.setdefault(term, 1.0)
            any_known = any_known or known(term)
    plain = not plan.constrained and not plan.notes and plan.positive
    semantic = _corrected(plan.text if plain else " ".join(plan.positive), corrections)
    return Words(groups, list(scoring.items()), corrections, any_known, semantic)


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
