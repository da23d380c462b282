"""Parallel ingestion: worker processes embed disjoint shards of the input into the embedding cache.

    search-cli embed PATHS --shard 1/2 &    # one worker per shard (process or machine), no writer lock
    search-cli embed PATHS --shard 2/2 &
    wait
    search-cli index PATHS                  # the one writer: every vector comes from the cache

A record belongs to the shard its canonical URL hashes to, so every record of one article lands in
the same shard, and a worker merges them exactly as the writer will: the texts it embeds are the
articles' own (title and excerpt after merging), keyed like the writer's cache lookups. A worker
streams its shard into a private temporary ledger and embeds it batch by batch, so its memory does
not grow with the input either. Workers only add vectors to a cache (SQLite in WAL mode, waiting
for one another's short writes); a worker on another machine fills a cache file of its own, which
the writer takes in with ``merge_caches`` (``search-cli index --merge-cache FILE``).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from search.config import Settings
from search.embed_pool import cache_model, embed_one_per_call
from search.errors import ConfigError
from search.loader import Record
from search.mapping import FieldMap
from search.merge import merge_records
from search.scan import Progress, Scan, scan_sources
from search.store import ArticleStore, EmbeddingCache, UrlLog

BATCH = 1_000  # articles merged and looked up in the cache together
CHUNK = 64  # texts embedded between two cache writes: a killed worker loses no more than this


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): the records whose canonical URL hashes to it."""

    index: int
    count: int

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"I/N"`` with 1 <= I <= N; ConfigError otherwise."""
        try:
            index, count = (int(part) for part in spec.split("/"))
        except ValueError:
            raise ConfigError(f"bad shard {spec!r}: write I/N, e.g. 1/2 for the first of two shards") from None
        if not 1 <= index <= count:
            raise ConfigError(f"bad shard {spec!r}: I must be between 1 and N, e.g. 2/2")
        return cls(index, count)

    def holds(self, url: str) -> bool:
        return shard_of(url, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(url: str, count: int) -> int:
    """The shard (1..count) of a canonical URL: a stable hash, the same on every machine and run."""
    digest = hashlib.blake2b(url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


@dataclass
class EmbedReport:
    shard: str = ""
    files: int = 0
    records: int = 0  # records of this shard read
    articles: int = 0  # articles of this shard (records merged by URL)
    embedded: int = 0
    cache_hits: int = 0
    skipped_count: int = 0
    seconds: float = 0.0
    cache: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__, seconds=round(self.seconds, 3))


def default_cache(settings: Settings) -> Path:
    """The index's own embedding cache, which the writer reads (the same file for every backend)."""
    return settings.index_path / "cache" / "embeddings.sqlite"


def embed_shard(
    paths: Iterable[str | Path],
    shard: Shard,
    settings: Settings,
    embedder,
    *,
    cache_path: Path | None = None,
    progress: Progress | None = None,
) -> EmbedReport:
    """Embed the articles of ``shard`` found under ``paths`` into the cache; texts cached already are skipped."""
    started = time.perf_counter()
    cache_path = Path(cache_path) if cache_path else default_cache(settings)
    report = EmbedReport(shard=str(shard), cache=str(cache_path))
    scan = Scan()
    with tempfile.TemporaryDirectory(prefix="news-search-shard-") as tmp:
        ledger = ArticleStore(Path(tmp) / "ledger.sqlite")
        urls = UrlLog()
        cache = EmbeddingCache(cache_path)
        try:
            for changed in scan_sources(paths, {}, FieldMap(settings.fields), scan, progress=progress):
                urls.add(ledger.replace_source(changed.key, changed.digest, _mine(changed.records, shard, report)))
            for batch in urls.batches(BATCH):
                _embed_batch(ledger, batch, embedder, cache, report)
        finally:
            cache.close()
            urls.close()
            ledger.close()
    report.files, report.skipped_count = scan.seen, scan.errors.count
    report.seconds = time.perf_counter() - started
    return report


def _mine(records: Iterable[Record], shard: Shard, report: EmbedReport) -> Iterator[Record]:
    for record in records:
        if shard.holds(record.url):
            report.records += 1
            yield record


def _embed_batch(ledger: ArticleStore, urls: list[str], embedder, cache: EmbeddingCache, report: EmbedReport) -> None:
    """Merge one batch of URLs into articles and embed the texts the cache lacks, CHUNK at a time."""
    model = cache_model(embedder.model_id)
    texts = {a.text_hash: a.text for a in merge_records(ledger.records_for(urls)).values()}
    report.articles += len(urls)
    held = cache.known(model, list(texts))
    missing = [(h, t) for h, t in texts.items() if h not in held]
    report.cache_hits += len(texts) - len(missing)
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        vectors = embed_one_per_call(embedder, [text for _, text in chunk])
        cache.put_many(model, {h: v for (h, _), v in zip(chunk, vectors, strict=True)})
        report.embedded += len(chunk)


def merge_caches(settings: Settings, files: Iterable[str | Path]) -> int:
    """Copy other cache files' vectors (workers on other machines) into the index's cache; returns how many were new."""
    cache = EmbeddingCache(default_cache(settings))
    try:
        return sum(cache.merge_from(Path(f)) for f in files)
    finally:
        cache.close()
