"""The index's own words, as written (lower-cased), with their document frequencies.

Typo tolerance and "did you mean" both come from here: a query word that is not in the index
is matched to the indexed words within a small edit distance (optimal string alignment, so a
swap of two letters is one typo), as Meilisearch does: one typo from 5 letters, two from 9.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

FILE = "vocabulary.json"
ONE_TYPO, TWO_TYPOS = 5, 9  # word lengths from which one and two typos are forgiven
MAX_ALTERNATIVES = 3  # indexed words a misspelled word may stand for
MAX_EXPANSIONS = 50  # indexed words a prefix (word*) may stand for, most frequent first
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # a word as the vocabulary counts it: "Trump's" is one


def words_of(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text) if len(w) >= 2}


def typo_budget(word: str) -> int:
    return 2 if len(word) >= TWO_TYPOS else 1 if len(word) >= ONE_TYPO else 0


class Vocabulary:
    def __init__(self, counts: Counter | None = None):
        self.counts: Counter = counts if counts is not None else Counter()
        self._choices: list[str] | None = None

    # -- building --------------------------------------------------------------------------------
    def add(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.counts.update(words_of(text))
        self._choices = None

    def remove(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.counts.subtract(words_of(text))
        self.counts = Counter({w: n for w, n in self.counts.items() if n > 0})
        self._choices = None

    def save(self, directory: Path) -> None:
        ordered = dict(sorted(self.counts.items()))
        (directory / FILE).write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Vocabulary:
        path = directory / FILE
        if not path.is_file():
            return cls()
        return cls(Counter(json.loads(path.read_text(encoding="utf-8"))))

    # -- lookups ---------------------------------------------------------------------------------
    def __contains__(self, word: str) -> bool:
        return word.lower() in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def corrections(self, word: str, budget: int | None = None) -> list[str]:
        """Indexed words within the typo budget of ``word``: the closest first, then the most frequent."""
        word = word.lower()
        budget = typo_budget(word) if budget is None else budget
        if budget <= 0 or not self.counts:
            return []
        found = process.extract(
            word, self._words(), scorer=OSA.distance, score_cutoff=budget, limit=None, processor=None
        )
        ranked = sorted(((d, -self.counts[w], w) for w, d, _ in found if w != word))
        if not ranked:
            return []
        best = ranked[0][0]
        return [w for d, _, w in ranked if d == best][:MAX_ALTERNATIVES]

    def expand(self, prefix: str) -> list[str]:
        """Indexed words starting with ``prefix``, most frequent first, at most MAX_EXPANSIONS."""
        prefix = prefix.lower()
        found = [(n, w) for w, n in self.counts.items() if w.startswith(prefix)]
        return [w for _, w in sorted(found, key=lambda nw: (-nw[0], nw[1]))[:MAX_EXPANSIONS]]

    def _words(self) -> list[str]:
        if self._choices is None:
            self._choices = list(self.counts)
        return self._choices
