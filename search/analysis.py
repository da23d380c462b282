"""The project's text analyzer and BM25 term weights (pure Python, no engine imports).

``analyze`` turns text into the indexed terms: tokens of word characters (and ``*``) joined by
single dots, lower-cased, tokens shorter than two characters and stop words dropped, then
Porter-stemmed. It gives exactly the terms the keyword index has always held (Whoosh's
``StemmingAnalyzer``: ``tests/test_analysis.py`` compares the two on the real corpora), so a
backend that computes its own term weights (Qdrant's sparse vectors) indexes the same terms.

The stemmer is Porter's algorithm as Whoosh's ``whoosh.lang.porter`` applies it, which departs
from the published algorithm in three places, kept here because the index's terms depend on them:
step 1b's "add an e" and "undouble" rules only fire on two- and three-letter stems, and ``y``
counts as a vowel for "the stem holds a vowel" but as neither vowel nor consonant in the measure.

``bm25_weight`` is the per-document part of a term's BM25F score (everything but the idf), with
the keyword index's own rounding of field lengths.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache

TOKEN = re.compile(r"[\w*]+(?:\.?[\w*]+)*")
MIN_LENGTH = 2
STOP_WORDS = frozenset(
    "a an and are as at be by can for from have if in is it may not of on or tbd that the this to us we "
    "when will with yet you your".split()
)
K1, B = 1.2, 0.75
_DOTTED_LETTERS = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")  # U.S, F.B.I: one letter between dots
_CAPITALS = re.compile(r"[^\W\d_]{2,5}")  # FBI, US: an acronym written in capitals


# -- terms --------------------------------------------------------------------------------------
def analyze(text: str) -> list[str]:
    """The indexed terms of ``text``, in order (stop words and one-letter tokens dropped)."""
    out = []
    for match in TOKEN.finditer(text):
        word = match.group(0).lower()
        if len(word) >= MIN_LENGTH and word not in STOP_WORDS:
            out.append(stem(word))
    return out


def acronym_spellings(word: str) -> list[str]:
    """An acronym's other spelling, which outlets also write: "FBI" for "F.B.I" and "F.B.I" for "FBI", "U.S"
    for "US" (whose letters alone are a stop word); [] for any other word. The search matches both, and the
    page marks both."""
    if _DOTTED_LETTERS.fullmatch(word):
        return [word.replace(".", "")]
    if word.isupper() and _CAPITALS.fullmatch(word):
        return [".".join(word)]
    return []


# -- Porter's stemmer -----------------------------------------------------------------------------
# A word is read as a string of letter classes: "v" for a, e, i, o, u; "y" for y; "c" for anything
# else (a leading y is written Y first, which makes it a consonant).
_STEP2 = {
    "ational": "ate", "tional": "tion", "enci": "ence", "anci": "ance", "izer": "ize", "bli": "ble",
    "alli": "al", "entli": "ent", "eli": "e", "ousli": "ous", "ization": "ize", "ation": "ate",
    "ator": "ate", "alism": "al", "iveness": "ive", "fulness": "ful", "ousness": "ous", "aliti": "al",
    "iviti": "ive", "biliti": "ble", "logi": "log",
}  # fmt: skip
_STEP3 = {"icate": "ic", "ative": "", "alize": "al", "iciti": "ic", "ical": "ic", "ful": "", "ness": ""}
_STEP4 = "al ance ence er ic able ible ant ement ment ent ou ism ate iti ous ive ize".split()
_MEASURE_1 = re.compile(r"c*v+c")  # at least one vowel-consonant sequence
_MEASURE_2 = re.compile(r"c*v+c+v+c")  # at least two
_EXACTLY_1 = re.compile(r"c*v+c+v*")  # exactly one, with nothing after it but vowels


def _classes(word: str) -> str:
    return "".join("v" if ch in "aeiou" else "y" if ch == "y" else "c" for ch in word)


def _measure_above_0(stem_: str) -> bool:
    return _MEASURE_1.match(_classes(stem_)) is not None


def _measure_above_1(stem_: str) -> bool:
    return _MEASURE_2.match(_classes(stem_)) is not None


def _measure_is_1(stem_: str) -> bool:
    return _EXACTLY_1.fullmatch(_classes(stem_)) is not None


def _has_vowel(stem_: str) -> bool:
    return any(ch in "aeiouy" for ch in stem_)


def _short_syllable(word: str) -> bool:
    """Consonants, one vowel (y counts), then a last letter that is no vowel, w, x or y: the whole word."""
    if len(word) < 3 or word[-1] in "aeiouwxy" or word[-2] not in "aeiouy":
        return False
    return all(ch not in "aeiouy" for ch in word[:-2])


def _longest_suffix(word: str, suffixes) -> str | None:
    """The longest of ``suffixes`` that ends ``word`` and leaves at least one letter before it."""
    found = [s for s in suffixes if word.endswith(s) and len(word) > len(s)]
    return max(found, key=len) if found else None


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """Porter's stem of a lower-case ``word`` (see the module docstring for the variant)."""
    if len(word) < 3:
        return word
    leading_y = word[0] == "y"
    if leading_y:
        word = "Y" + word[1:]
    word = _step1(word)
    for table in (_STEP2, _STEP3):
        suffix = _longest_suffix(word, table)
        if suffix and _measure_above_0(word[: -len(suffix)]):
            word = word[: -len(suffix)] + table[suffix]
    word = _step4(word)
    word = _step5(word)
    return "y" + word[1:] if leading_y else word


def _step1(word: str) -> str:
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("s") and word[-2] != "s":
        word = word[:-1]
    if word.endswith("eed"):
        if _measure_above_0(word[:-3]):
            word = word[:-1]
    else:
        cut = 2 if word.endswith("ed") else 3 if word.endswith("ing") else 0
        if cut and _has_vowel(word[:-cut]):
            word = word[:-cut]
            if word in ("at", "bl", "iz"):
                word += "e"
            elif len(word) == 2 and word[0] == word[1] and word[0] not in "aeiouylsz":
                word = word[:-1]
            elif _short_syllable(word):
                word += "e"
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    return word


def _step4(word: str) -> str:
    suffix = _longest_suffix(word, _STEP4)
    if suffix:
        return word[: -len(suffix)] if _measure_above_1(word[: -len(suffix)]) else word
    if len(word) > 4 and word.endswith("ion") and word[-4] in "st" and _measure_above_1(word[:-3]):
        return word[:-3]
    return word


def _step5(word: str) -> str:
    if len(word) > 1 and word.endswith("e"):
        rest = word[:-1]
        if _measure_above_1(rest) or (_measure_is_1(rest) and not _short_syllable(rest)):
            word = rest
    if word.endswith("ll") and _measure_above_1(word):
        word = word[:-1]
    return word


# -- BM25 -----------------------------------------------------------------------------------------
def _stored_lengths() -> list[int]:
    """The 256 field lengths the keyword index can store (one byte each, logarithmic); a length is
    stored as the smallest of them that is not below it."""
    return [int(round((1.033**n - 1) * 27)) for n in range(256)]


_LENGTHS = _stored_lengths()


def stored_length(length: int) -> int:
    """``length`` as the keyword index stores it (exact up to 10, then rounded up, capped)."""
    return _LENGTHS[min(bisect_left(_LENGTHS, length), 255)]


def bm25_weight(count: float, length: int, average: float) -> float:
    """A term's BM25 weight in one field without the idf: ``count`` occurrences (times the field's
    boost) in a field of ``length`` terms, when the field's average length is ``average``."""
    norm = K1 * ((1 - B) + B * stored_length(length) / (average or 1))
    return count * (K1 + 1) / (count + norm)
