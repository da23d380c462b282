"""Synthetic news corpora of any size, recombined from the real news corpus.

Every synthetic article takes a real title (with a word swapped, replaced or inserted, and
an invented company, city or number), an excerpt stitched from sentences of other real
excerpts, a date spread over 2015-2024, one of the real providers and the topics of its
title's article. About a quarter list one to three earlier synthetic articles as related
items, as the real files do, so the merge path is exercised without adding articles.
Texts are unique (the embedding cache cannot short-cut a build) and about as long as the
real ones (title + excerpt: median ~55 tokens, 5-95% ~35-75).

Everything is labelled: ``synthetic: true``, provider names end in "(synthetic)" and URLs
live under ``.synthetic.invalid``. Article ``i`` depends only on the seed and articles
``< i``, so the 10k corpus is the first 10k articles of the 100k one.

    python -m bench.corpus --size 10k                  # bench/corpora/md-10k-s0/
    python -m bench.corpus --size 100k --format jsonl  # bench/corpora/jsonl-100k-s0/
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import CORPORA, SOURCE, parse_size, size_label
from search.loader import iter_article_files, load_file
from search.merge import merge_records

VERSION = 1
PER_DIR = 1000  # Markdown files per subdirectory
PER_JSONL = 500  # lines per JSON Lines file (the loader's limit is 1 MiB per file)
RELATED_SHARE = 0.25
_START = datetime(2015, 1, 1, tzinfo=UTC)
_SPAN_MINUTES = 10 * 365 * 24 * 60
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"^[A-Za-z][a-z]{3,}$")
_COMPANIES = [
    f"{a} {b}"
    for a in (
        "Acme",
        "Northwind",
        "Contoso",
        "Globex",
        "Initech",
        "Umbrella",
        "Vandelay",
        "Hooli",
        "Soylent",
        "Tyrell",
        "Cyberdyne",
        "Wonka",
        "Oscorp",
        "Aperture",
        "Monarch",
        "Zenith",
        "Helios",
        "Quantia",
    )
    for b in ("Labs", "Robotics", "AI", "Systems", "Health", "Motors", "Capital", "Analytics", "Vision", "Networks")
]
_CITIES = (
    "Berlin",
    "Austin",
    "Seoul",
    "Nairobi",
    "Toronto",
    "Lyon",
    "Osaka",
    "Pune",
    "Lagos",
    "Denver",
    "Oslo",
    "Porto",
    "Hanoi",
    "Quito",
    "Perth",
    "Leeds",
    "Tallinn",
    "Dubai",
    "Boston",
    "Shenzhen",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_SENTENCES = (
    "{company} said on {day}.",
    "The deal is worth ${n} million.",
    "Shares of {company} rose {n}% in {city}.",
    "{company} plans to hire {n} engineers in {city}.",
    "The pilot covers {n} sites across {city}.",
    "Analysts expect {n} new contracts this year.",
)


@dataclass(frozen=True)
class Pool:
    """The raw material: real titles (with their topics), excerpt sentences and providers."""

    titles: list[tuple[str, tuple[str, ...]]]
    sentences: list[str]
    excerpt_words: list[int]
    providers: list[tuple[str, str]]
    topics: list[str]
    vocab: list[str]


def load_pool(source: Path = SOURCE) -> Pool:
    """Read ``source`` with the project's loader and merge it (related stubs included)."""
    records = [r for path in iter_article_files([source]) for r in load_file(path).records]
    articles = sorted(merge_records(records).values(), key=lambda a: a.id)
    if not articles:
        raise SystemExit(f"no articles under {source}")
    sentences = [s.rstrip(".…").strip() for a in articles for s in _SENTENCE.split(a.excerpt.replace("...", "."))]
    providers = Counter((a.provider, a.provider_domain) for a in articles if a.provider)
    words = Counter(w for a in articles for w in f"{a.title} {a.excerpt}".split() if _WORD.match(w))
    return Pool(
        titles=[(a.title, a.topics) for a in articles],
        sentences=[s for s in sentences if len(s.split()) >= 4] or [a.title for a in articles],
        excerpt_words=[len(a.excerpt.split()) for a in articles if a.excerpt] or [30],
        providers=[p for p, _ in providers.most_common(40)] or [("Example Wire", "example.org")],
        topics=sorted({t for a in articles for t in a.topics}) or ["AI"],
        vocab=[w for w, _ in words.most_common(2000)],
    )


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        company=rng.choice(_COMPANIES), city=rng.choice(_CITIES), day=rng.choice(_DAYS), n=rng.randint(2, 950)
    )


def _edit(rng: random.Random, words: list[str], vocab: list[str]) -> list[str]:
    """One random edit: swap two neighbours, replace a word, or insert a name or number."""
    words = list(words)
    kind = rng.randrange(4)
    i = rng.randrange(len(words))
    if kind == 0 and len(words) > 2:
        j = min(i + 1, len(words) - 1) if i < len(words) - 1 else i - 1
        words[i], words[j] = words[j], words[i]
    elif kind == 1 and vocab:
        words[i] = rng.choice(vocab)
    elif kind == 2:
        words.insert(i, rng.choice((rng.choice(_COMPANIES), "in " + rng.choice(_CITIES))))
    else:
        words.insert(i, str(rng.randint(2, 2030)))
    return words


def _title(rng: random.Random, pool: Pool) -> tuple[str, tuple[str, ...]]:
    title, topics = rng.choice(pool.titles)
    words = title.split()
    for _ in range(rng.randint(1, 2)):
        words = _edit(rng, words, pool.vocab)
    if rng.random() < 0.3:
        words = [*rng.choice(_COMPANIES).split(), *words] if rng.random() < 0.5 else [*words, "in", rng.choice(_CITIES)]
    if rng.random() < 0.3 and pool.topics:
        topics = tuple(dict.fromkeys([*topics, rng.choice(pool.topics)]))
    return " ".join(words), topics


def _excerpt(rng: random.Random, pool: Pool) -> str:
    target = min(34, max(12, round(0.85 * rng.choice(pool.excerpt_words))))
    parts: list[str] = []
    n = 0
    while n < target:
        sentence = rng.choice(pool.sentences).split()
        if rng.random() < 0.5:
            sentence = _edit(rng, sentence, pool.vocab)
        if rng.random() < 0.35:
            sentence = _fill(rng, rng.choice(_SENTENCES)).split() + sentence
        parts.append(" ".join(sentence).rstrip(".") + ".")
        n += len(sentence)
    words = " ".join(parts).split()
    return " ".join(words[:target]) + (" ..." if len(words) > target else "")


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-") or "article"


def synthesize(pool: Pool, n: int, seed: int = 0) -> Iterator[dict]:
    """``n`` article mappings with the loader's field names; article i depends on the seed and articles < i."""
    seen: set[str] = set()
    made: list[dict] = []
    for i in range(n):
        rng = random.Random(f"news-search-bench:{seed}:{i}")
        title, topics = _title(rng, pool)
        excerpt = _excerpt(rng, pool)
        while f"{title}. {excerpt}" in seen:  # vanishingly rare; keep adding until unique
            title = f"{title} {rng.randint(2, 99999)}"
        seen.add(f"{title}. {excerpt}")
        name, domain = rng.choice(pool.providers)
        host = f"{_slug(domain or name, 40)}.synthetic.invalid"
        when = _START + timedelta(minutes=rng.randrange(_SPAN_MINUTES))
        article = {
            "synthetic": True,
            "title": title,
            "excerpt": excerpt,
            "publishedDateTime": when.strftime("%Y-%m-%dT%H:%M:00Z"),
            "webUrl": f"https://{host}/{when.year}/{i:07d}-{_slug(title)}",
            "type": "article",
            "provider": {"name": f"{name} (synthetic)", "domain": host},
            "topics": list(topics),
        }
        if i and rng.random() < RELATED_SHARE:
            picks = sorted({rng.randrange(i) for _ in range(rng.randint(1, 3))})
            article["related"] = [_related_entry(made[j]) for j in picks]
        made.append(article)
        yield article


def _related_entry(a: dict) -> dict:
    keys = ("title", "excerpt", "publishedDateTime", "webUrl", "type", "provider")
    return {k: a[k] for k in keys}


# -- writing ---------------------------------------------------------------------------------------
def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def to_markdown(a: dict) -> str:
    """The article as a Markdown file with YAML front matter, in the real corpus's layout."""
    lines = [
        "---",
        "synthetic: true",
        f"title: {_q(a['title'])}",
        f"excerpt: {_q(a['excerpt'])}",
        f"publishedDateTime: {a['publishedDateTime']}",
        f"webUrl: {_q(a['webUrl'])}",
        "type: article",
        "",
        "provider:",
        f"  name: {_q(a['provider']['name'])}",
        f"  domain: {a['provider']['domain']}",
        "",
    ]
    if a["topics"]:
        lines += ["topics:", *(f"  - {_q(t)}" for t in a["topics"]), ""]
    if a.get("related"):
        lines.append("related:")
        for r in a["related"]:
            lines += [
                f"  - title: {_q(r['title'])}",
                f"    excerpt: {_q(r['excerpt'])}",
                f"    publishedDateTime: {r['publishedDateTime']}",
                f"    webUrl: {_q(r['webUrl'])}",
                "    type: article",
                "    provider:",
                f"      name: {_q(r['provider']['name'])}",
                f"      domain: {r['provider']['domain']}",
            ]
    return "\n".join([*lines, "---", ""])


def write_markdown(articles: Iterator[dict], out: Path) -> int:
    n = 0
    for n, a in enumerate(articles, start=1):
        sub = out / f"{(n - 1) // PER_DIR:04d}"
        if (n - 1) % PER_DIR == 0:
            sub.mkdir(parents=True, exist_ok=True)
        name = f"{a['webUrl'].rsplit('/', 1)[1][:70]}.md"
        (sub / name).write_text(to_markdown(a), encoding="utf-8")
    return n


def write_jsonl(articles: Iterator[dict], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n, fh = 0, None
    try:
        for n, a in enumerate(articles, start=1):
            if (n - 1) % PER_JSONL == 0:
                if fh:
                    fh.close()
                fh = open(out / f"part-{(n - 1) // PER_JSONL:05d}.jsonl", "w", encoding="utf-8")
            fh.write(json.dumps(a, ensure_ascii=False) + "\n")
    finally:
        if fh:
            fh.close()
    return n


def build_corpus(size: int, fmt: str = "md", seed: int = 0, out_root: Path = CORPORA, source: Path = SOURCE) -> Path:
    """The directory of a synthetic corpus, generated unless an identical one is already there."""
    if fmt not in ("md", "jsonl"):
        raise ValueError(f"format {fmt!r}: use md or jsonl")
    out = Path(out_root) / f"{fmt}-{size_label(size)}-s{seed}"
    stamp = {"version": VERSION, "size": size, "format": fmt, "seed": seed, "source": str(source)}
    marker = out / ".complete"  # a dot file: the loader skips it
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    articles = synthesize(load_pool(source), size, seed)
    (write_markdown if fmt == "md" else write_jsonl)(articles, out)
    marker.write_text(json.dumps(stamp))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="10k", help="number of articles: 1k, 10k, 100k ...")
    parser.add_argument("--format", choices=("md", "jsonl"), default="md")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CORPORA, help="parent directory (default bench/corpora)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the real corpus to recombine")
    args = parser.parse_args(argv)
    print(build_corpus(parse_size(args.size), args.format, args.seed, args.out, args.source))


if __name__ == "__main__":
    main()
