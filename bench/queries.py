"""Distinct, realistic query strings: hand-written news queries, then 2-3 word runs of real titles.

Distinct so the service's query-vector cache (512 entries) cannot hide the embedding cost.
"""

from __future__ import annotations

import random
import re

from bench.corpus import Pool

HANDWRITTEN = (
    "export controls",
    "facial recognition ban",
    "self-driving car lawsuit",
    "AI in healthcare",
    "speech recognition languages",
    "chip export rules",
    "robotaxi pilot",
    "hospital triage model",
    "computer vision retail",
    "autonomous trucks",
    "deepfake detection",
    "AI ethics guidelines",
    "machine learning fraud detection",
    "natural language processing startup",
    "AWS machine learning service",
    "IBM Watson",
    "Microsoft translator",
    "Google AI research",
    "Facebook AI",
    "NVIDIA GPU data center",
    "robot warehouse automation",
    "AI market forecast",
    "coronavirus AI diagnosis",
    "drone delivery",
    "quantum computing",
    "voice assistant privacy",
    "police surveillance cameras",
    "AI chip startup funding",
    "medical imaging deep learning",
    "bank chatbot",
)
_STOP = frozenset(
    "a an and are as at be by for from has have in into is it its of on or that the their this to was were will with "
    "after over new says said how why what who can could may more than".split()
)


def make_queries(pool: Pool, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct queries (cycled with a numeric suffix if the pool runs out)."""
    runs: dict[str, None] = dict.fromkeys(q.lower() for q in HANDWRITTEN)
    for title, _ in pool.titles:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9'-]+", title)]
        for size in (2, 3):
            for i in range(len(words) - size + 1):
                window = words[i : i + size]
                if window[0].lower() in _STOP or window[-1].lower() in _STOP:
                    continue
                runs.setdefault(" ".join(window).lower())
    found = list(runs)
    head, tail = found[: len(HANDWRITTEN)], found[len(HANDWRITTEN) :]
    random.Random(f"queries:{seed}").shuffle(tail)
    found = head + tail
    out = found[:n]
    k = 2
    while len(out) < n:
        out += [f"{q} {k}" for q in found[: n - len(out)]]
        k += 1
    return out
