"""Per-article columns held in memory (numpy only): keys, provider, domain, topics, publication time.

They answer, for any set of articles, the structured filters, facet counts and newest-first
order without a database round trip: a filter is a boolean mask over rows, a facet count a
``bincount`` over the rows of a match set. Rows follow the keyword score matrix (``bm25.py``),
so the keyword side, the filters and the facets share one row number per article.

Provider and topic names compare case-insensitively (``casefold``); the facets show the
spelling most articles use.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from search.arrays import load_array
from search.urls import id_to_int

Facts = tuple[str, str, tuple[str, ...], "datetime | None", str]  # provider, domain, topics, published, story
NO_DATE = np.iinfo(np.int64).min  # sorts after every real date in newest-first order
FILES = (
    "keys.npy",
    "provider.npy",
    "domain.npy",
    "published.npy",
    "topic_ptr.npy",
    "topic_codes.npy",
    "story.npy",
    "names.json",
)


def fold(name: str) -> str:
    """How provider and topic names compare: case and surrounding space ignored."""
    return " ".join(name.split()).casefold()


def timestamp(when: datetime | None) -> int:
    return NO_DATE if when is None else int(when.timestamp())


class Columns:
    def __init__(
        self,
        keys: np.ndarray,
        provider: np.ndarray,
        domain: np.ndarray,
        published: np.ndarray,
        topic_ptr: np.ndarray,
        topic_codes: np.ndarray,
        story: np.ndarray,
        names: dict[str, list[str]],
    ):
        self.keys = keys  # int64 article key per row
        self.provider = provider  # int32 code into names["provider"], -1 for none
        self.domain = domain
        self.published = published  # int64 seconds since the epoch, NO_DATE for none
        self.topic_ptr = topic_ptr  # CSR: topics of row r are topic_codes[topic_ptr[r]:topic_ptr[r+1]]
        self.topic_codes = topic_codes
        self.story = story  # int32 code into names["story"] (story ids): articles of one story share it
        self.names = names  # "provider", "domain", "topic": display names by code
        self._codes = {
            kind: {fold(n): i for i, n in enumerate(values)} for kind, values in names.items() if kind != "story"
        }
        self._order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._order]
        self._topic_rows: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.keys)

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, ids: Sequence[str], facts: dict[str, Facts]) -> Columns:
        """Columns for the rows ``ids`` from each id's (provider, domain, topics, published)."""
        providers, domains, topics = _Names(), _Names(), _Names()
        story_codes: dict[str, int] = {}
        story = np.empty(len(ids), dtype=np.int32)
        provider = np.empty(len(ids), dtype=np.int32)
        domain = np.empty(len(ids), dtype=np.int32)
        published = np.empty(len(ids), dtype=np.int64)
        ptr = [0]
        codes: list[int] = []
        for row, article_id in enumerate(ids):
            provider_name, domain_name, topic_names, when, story_id = facts[article_id]
            story[row] = story_codes.setdefault(story_id, len(story_codes))
            provider[row] = providers.code(provider_name)
            domain[row] = domains.code(domain_name.lower())
            published[row] = timestamp(when)
            codes.extend(dict.fromkeys(c for c in (topics.code(t) for t in topic_names) if c >= 0))
            ptr.append(len(codes))
        keys = np.fromiter((id_to_int(i) for i in ids), dtype=np.int64, count=len(ids))
        names = {
            "provider": providers.values(),
            "domain": domains.values(),
            "topic": topics.values(),
            "story": list(story_codes),
        }
        return cls(
            keys,
            provider,
            domain,
            published,
            np.asarray(ptr, dtype=np.int64),
            np.asarray(codes, dtype=np.int32),
            story,
            names,
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in FILES[:-1]:
            np.save(directory / name, getattr(self, name.removesuffix(".npy")))
        (directory / "names.json").write_text(json.dumps(self.names, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Columns | None:
        if not all((directory / name).is_file() for name in FILES):
            return None
        arrays = {name.removesuffix(".npy"): load_array(directory / name) for name in FILES[:-1]}
        names = json.loads((directory / "names.json").read_text(encoding="utf-8"))
        return cls(names=names, **arrays)

    # -- rows and keys ---------------------------------------------------------------------------
    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key (-1 where a key is unknown)."""
        keys = np.asarray(keys, dtype=np.int64)
        if self.size == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.searchsorted(self._sorted_keys, keys)
        at = np.minimum(at, self.size - 1)
        found = self._sorted_keys[at] == keys
        return np.where(found, self._order[at], -1)

    # -- filters ---------------------------------------------------------------------------------
    def provider_mask(self, name: str) -> np.ndarray:
        return self._code_mask(self.provider, "provider", name)

    def domain_mask(self, name: str) -> np.ndarray:
        folded = fold(name).removeprefix("www.")
        codes = [i for i, d in enumerate(self.names["domain"]) if d == folded or d.endswith("." + folded)]
        return np.isin(self.domain, codes) if codes else np.zeros(self.size, dtype=bool)

    def topic_mask(self, name: str) -> np.ndarray:
        code = self._codes["topic"].get(fold(name))
        mask = np.zeros(self.size, dtype=bool)
        if code is not None:
            mask[self._row_of_topic()[self.topic_codes == code]] = True
        return mask

    def date_mask(self, since: datetime | None, until: datetime | None) -> np.ndarray:
        mask = self.published != NO_DATE
        if since is not None:
            mask &= self.published >= int(since.timestamp())
        if until is not None:
            mask &= self.published <= int(until.timestamp())
        return mask

    def _code_mask(self, column: np.ndarray, kind: str, name: str) -> np.ndarray:
        code = self._codes[kind].get(fold(name))
        return column == code if code is not None else np.zeros(self.size, dtype=bool)

    def _row_of_topic(self) -> np.ndarray:
        """Row of each entry of ``topic_codes``."""
        if self._topic_rows is None:
            self._topic_rows = np.repeat(np.arange(self.size), np.diff(self.topic_ptr))
        return self._topic_rows

    # -- facets and order ------------------------------------------------------------------------
    def facets(self, rows: np.ndarray, size: int | None = 10) -> dict[str, list[tuple[str, int]]]:
        """Provider and topic counts over ``rows``, most frequent first (ties by name); ``size`` None: all."""
        rows = rows[rows >= 0]
        providers = self.provider[rows]
        provider_counts = np.bincount(providers[providers >= 0], minlength=len(self.names["provider"]))
        chosen = np.zeros(self.size, dtype=bool)
        chosen[rows] = True
        topics = self.topic_codes[chosen[self._row_of_topic()]]
        topic_counts = np.bincount(topics, minlength=len(self.names["topic"]))
        return {
            "provider": _top(provider_counts, self.names["provider"], size),
            "topic": _top(topic_counts, self.names["topic"], size),
        }

    def stories(self, rows: np.ndarray) -> np.ndarray:
        """Story code of each row (-1 for an unknown row)."""
        out = np.full(len(rows), -1, dtype=np.int64)
        known = rows >= 0
        out[known] = self.story[rows[known]]
        return out

    def story_id(self, code: int) -> str:
        return self.names["story"][code]

    def dates(self, rows: np.ndarray) -> np.ndarray:
        out = np.full(len(rows), NO_DATE, dtype=np.int64)
        known = rows >= 0
        out[known] = self.published[rows[known]]
        return out


class _Names:
    """Codes for names compared case-insensitively; the display name is the most used spelling."""

    def __init__(self):
        self._codes: dict[str, int] = {}
        self._spellings: list[Counter] = []

    def code(self, name: str) -> int:
        name = " ".join(name.split())
        if not name:
            return -1
        key = fold(name)
        code = self._codes.setdefault(key, len(self._codes))
        if code == len(self._spellings):
            self._spellings.append(Counter())
        self._spellings[code][name] += 1
        return code

    def values(self) -> list[str]:
        return [min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for c in self._spellings]


def _top(counts: np.ndarray, names: list[str], size: int | None) -> list[tuple[str, int]]:
    nonzero = np.flatnonzero(counts)
    pairs = sorted(((names[i], int(counts[i])) for i in nonzero), key=lambda kv: (-kv[1], kv[0]))
    return pairs[:size]


def keys_of(ids: Iterable[str]) -> np.ndarray:
    return np.fromiter((id_to_int(i) for i in ids), dtype=np.int64)
