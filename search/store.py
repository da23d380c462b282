"""The article store (SQLite): merged articles, the records each source file gave, and the
embedding cache. The only module that speaks SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search.errors import ConfigError, IndexCorrupt, is_disk_full
from search.generations import exclusive
from search.models import Article

if TYPE_CHECKING:  # the loader imports the YAML and feed parsers, which a query never needs
    from search.loader import Record

BUSY_TIMEOUT = 60.0  # seconds a cache write waits for another process's write to finish

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, provider TEXT, published TEXT,
    content_hash TEXT NOT NULL, text_hash TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS articles_provider ON articles(provider);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published);
CREATE TABLE IF NOT EXISTS topics (id TEXT NOT NULL, topic TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS topics_id ON topics(id);
CREATE INDEX IF NOT EXISTS topics_topic ON topics(topic COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stories (id TEXT PRIMARY KEY, story TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS stories_story ON stories(story);
CREATE TABLE IF NOT EXISTS records (
    url TEXT NOT NULL, path TEXT NOT NULL, line INTEGER NOT NULL, main INTEGER NOT NULL,
    fields TEXT NOT NULL, related TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_url ON records(url);
CREATE INDEX IF NOT EXISTS records_path ON records(path);
"""


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    try:
        if readonly:  # a URI, so the path is percent-encoded: '#', '?' and '%' are legal in directory names
            conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA query_only = 1" if readonly else "PRAGMA journal_mode = DELETE")
        return conn
    except sqlite3.Error as exc:
        raise IndexCorrupt(f"article store {path} cannot be opened: {exc}") from None


class ArticleStore:
    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        self._conn = _connect(self.path, readonly)
        if not readonly:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def commit(self) -> None:
        self._conn.commit()

    # -- articles ----------------------------------------------------------------------------
    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM articles").fetchone()[0]

    def ids(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT id FROM articles")}

    def hashes(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """id -> (content_hash, text_hash) for the ids that are stored."""
        out: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT id, content_hash, text_hash FROM articles WHERE id IN ({marks})", chunk
            ):
                out[row[0]] = (row[1], row[2])
        return out

    def get_many(self, ids: Sequence[str]) -> dict[str, Article]:
        out: dict[str, Article] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT a.data, s.story FROM articles a LEFT JOIN stories s ON s.id = a.id WHERE a.id IN ({marks})"
            for data, story in self._conn.execute(sql, chunk):
                article = Article.from_dict(dict(json.loads(data), story=story or ""))
                out[article.id] = article
        return out

    def facts(self) -> dict[str, tuple[str, str, tuple[str, ...], datetime | None, str]]:
        """id -> (provider, domain, topics, published, story) of every article: what the columns hold."""
        rows = self._conn.execute(
            "SELECT a.id, a.provider, json_extract(a.data, '$.provider_domain'), json_extract(a.data, '$.topics'), "
            "a.published, s.story FROM articles a LEFT JOIN stories s ON s.id = a.id"
        )
        return {
            i: (provider or "", domain or "", tuple(json.loads(topics or "[]")), _when(published), story or i)
            for i, provider, domain, topics, published, story in rows
        }

    def upsert(self, articles: Iterable[Article]) -> None:
        for a in articles:
            self._remove(a.id)
            published = a.published.isoformat() if a.published else None
            self._conn.execute(
                "INSERT INTO articles VALUES (?,?,?,?,?,?,?)",
                (
                    a.id,
                    a.url,
                    a.provider,
                    published,
                    a.content_hash,
                    a.text_hash,
                    json.dumps(a.to_dict(), ensure_ascii=False),
                ),
            )
            self._conn.executemany("INSERT INTO topics VALUES (?,?)", [(a.id, t) for t in a.topics])

    def delete(self, ids: Iterable[str]) -> None:
        for article_id in ids:
            self._remove(article_id)
            self._conn.execute("DELETE FROM stories WHERE id = ?", (article_id,))

    def _remove(self, article_id: str) -> None:
        self._conn.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        self._conn.execute("DELETE FROM topics WHERE id = ?", (article_id,))

    # -- stories -----------------------------------------------------------------------------
    def stories(self) -> dict[str, str]:
        """Article id -> story id, for the stored articles that have one."""
        return dict(self._conn.execute("SELECT s.id, s.story FROM stories s JOIN articles a ON a.id = s.id"))

    def set_stories(self, stories: dict[str, str]) -> None:
        """Record the story of each article given (only the ones that changed are written)."""
        current = self.stories()
        changed = [(i, s) for i, s in stories.items() if current.get(i) != s]
        self._conn.executemany("INSERT OR REPLACE INTO stories VALUES (?, ?)", changed)

    def story_members(self, story: str) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT id FROM stories WHERE story = ?", (story,))]

    def dates(self) -> dict[str, datetime | None]:
        """id -> publication time of every article (None when undated)."""
        return {i: _when(published) for i, published in self._conn.execute("SELECT id, published FROM articles")}

    def filter_ids(
        self, provider: str | None, topic: str | None, since: datetime | None, until: datetime | None
    ) -> set[str]:
        """Ids that pass the structured filters."""
        sql, args = "SELECT id FROM articles WHERE 1=1", []
        if provider:
            sql, args = sql + " AND provider = ?", [*args, provider]
        if since:
            sql, args = sql + " AND published >= ?", [*args, since.isoformat()]
        if until:
            sql, args = sql + " AND published <= ?", [*args, until.isoformat()]
        if topic:
            sql += " AND id IN (SELECT id FROM topics WHERE topic = ? COLLATE NOCASE)"
            args.append(topic)
        return {row[0] for row in self._conn.execute(sql, args)}

    def facets(self, ids: Sequence[str], size: int = 10) -> dict[str, list[tuple[str, int]]]:
        """Provider and topic counts over ``ids``, most frequent first."""
        providers: dict[str, int] = {}
        topics: dict[str, int] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for value, n in self._conn.execute(
                f"SELECT provider, count(*) FROM articles WHERE id IN ({marks}) AND provider != '' GROUP BY provider",
                chunk,
            ):
                providers[value] = providers.get(value, 0) + n
            for value, n in self._conn.execute(
                f"SELECT topic, count(*) FROM topics WHERE id IN ({marks}) GROUP BY topic", chunk
            ):
                topics[value] = topics.get(value, 0) + n
        top = lambda d: sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:size]  # noqa: E731
        return {"provider": top(providers), "topic": top(topics)}

    def top_topics(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent topics (case-insensitively) and their article counts."""
        sql = (
            "SELECT min(topic), count(*) AS n FROM topics GROUP BY topic COLLATE NOCASE "
            "ORDER BY n DESC, min(topic) LIMIT ?"
        )
        return [(topic, count) for topic, count in self._conn.execute(sql, (n,))]

    def newest(self, n: int) -> list[Article]:
        """The ``n`` most recently published main articles (not related-item stubs)."""
        sql = (
            "SELECT data FROM articles WHERE published IS NOT NULL AND NOT json_extract(data, '$.is_stub') "
            "ORDER BY published DESC, id LIMIT ?"
        )
        return [Article.from_dict(json.loads(data)) for (data,) in self._conn.execute(sql, (n,))]

    def stats(self) -> dict:
        q = self._conn.execute
        return {
            "articles": self.count(),
            "stubs": q("SELECT count(*) FROM articles WHERE json_extract(data, '$.is_stub')").fetchone()[0],
            "providers": q("SELECT count(DISTINCT provider) FROM articles WHERE provider != ''").fetchone()[0],
            "sources": q("SELECT count(*) FROM sources").fetchone()[0],
            "oldest": q("SELECT min(published) FROM articles").fetchone()[0],
            "newest": q("SELECT max(published) FROM articles").fetchone()[0],
        }

    # -- sources and their records -----------------------------------------------------------
    def source_digests(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT path, digest FROM sources"))

    def replace_source(self, path: str, digest: str | None, records: Iterable[Record]) -> set[str]:
        """Store the records of one file (None digest removes it); returns the URLs touched.

        ``records`` is read once, as it comes: a source of any size is never held in memory."""
        touched = {row[0] for row in self._conn.execute("SELECT url FROM records WHERE path = ?", (path,))}
        self._conn.execute("DELETE FROM records WHERE path = ?", (path,))
        self._conn.execute("DELETE FROM sources WHERE path = ?", (path,))
        if digest is not None:
            self._conn.execute("INSERT INTO sources VALUES (?, ?)", (path, digest))

            def rows() -> Iterator[tuple]:
                for record in records:
                    touched.add(record.url)
                    yield _record_row(record)

            self._conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?)", rows())
        return touched

    def records_for(self, urls: Iterable[str]) -> list[Record]:
        out: list[Record] = []
        for chunk in _chunks(list(urls)):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT url, path, line, main, fields, related FROM records WHERE url IN ({marks})", chunk
            )
            out.extend(_row_record(row) for row in rows)
        return out


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record_row(r: Record) -> tuple:
    fields = dict(r.fields, published=r.fields["published"].isoformat() if r.fields.get("published") else None)
    fields["topics"] = list(fields.get("topics") or ())
    return (r.url, r.source, r.line, int(r.main), json.dumps(fields, ensure_ascii=False), json.dumps(list(r.related)))


def _row_record(row: tuple) -> Record:
    url, path, line, main, fields_json, related_json = row
    fields = json.loads(fields_json)
    fields["published"] = datetime.fromisoformat(fields["published"]) if fields.get("published") else None
    fields["topics"] = tuple(fields.get("topics") or ())
    from search.loader import Record

    return Record(url, fields, bool(main), path, line, tuple(json.loads(related_json)))


def _chunks(items: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EmbeddingCache:
    """Vectors keyed by (model id, text hash); shared by every generation of an index."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Embedding workers open one cache at once. Two processes creating it together can see each
        # other's half-made file as damaged, and the rebuild below would delete the other's vectors:
        # the opening is one process at a time (writes after it are SQLite's to share).
        with exclusive(path.with_name(path.name + ".lock")):
            try:
                self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT)
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vec BLOB, PRIMARY KEY (model, hash))"
                )
            except sqlite3.DatabaseError as exc:  # a damaged cache is rebuilt, never fatal
                if is_disk_full(exc):  # not damaged: the disk is full, and the cache is worth keeping
                    raise
                path.unlink(missing_ok=True)
                self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT)
                self._conn.execute("CREATE TABLE vectors (model TEXT, hash TEXT, vec BLOB, PRIMARY KEY (model, hash))")

    def get_many(self, model: str, hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(hashes)):
            marks = ",".join("?" * len(chunk))
            for h, blob in self._conn.execute(
                f"SELECT hash, vec FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *chunk]
            ):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (dim,):
                    out[h] = vec
        return out

    def known(self, model: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` the cache holds a vector for (the vectors are not read)."""
        out: set[str] = set()
        for chunk in _chunks(list(hashes)):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT hash FROM vectors WHERE model = ? AND hash IN ({marks})"
            out.update(row[0] for row in self._conn.execute(sql, [model, *chunk]))
        return out

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        rows = [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?,?,?)", rows)

    def merge_from(self, other: Path) -> int:
        """Copy in the vectors of another cache file that this one lacks; returns how many."""
        if not Path(other).is_file():
            raise ConfigError(f"no embedding cache file {other} - give the file a `search-cli embed --cache` wrote")
        before = self._conn.total_changes
        try:
            self._conn.execute("ATTACH DATABASE ? AS other", (str(Path(other).absolute()),))
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read the embedding cache {other}: {exc}") from None
        try:
            with self._conn:
                self._conn.execute("INSERT OR IGNORE INTO vectors SELECT model, hash, vec FROM other.vectors")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{other} is not an embedding cache: {exc}") from None
        finally:
            self._conn.execute("DETACH DATABASE other")
        return self._conn.total_changes - before

    def close(self) -> None:
        self._conn.close()


class UrlLog:
    """An ordered set of URLs kept on disk (a private temporary SQLite database): the URLs a build
    touched, in the order it first touched them, however many there are."""

    def __init__(self):
        self._conn = sqlite3.connect("", check_same_thread=False)  # "": a temporary file, removed on close
        self._conn.execute("CREATE TABLE urls (n INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE)")
        self.count = 0

    def add(self, urls: Iterable[str]) -> None:
        before = self._conn.total_changes
        self._conn.executemany("INSERT OR IGNORE INTO urls (url) VALUES (?)", ((u,) for u in urls))
        self.count += self._conn.total_changes - before

    def batches(self, size: int) -> Iterator[list[str]]:
        """The URLs in the order they were first added, ``size`` at a time."""
        last = 0
        while True:
            rows = self._conn.execute("SELECT n, url FROM urls WHERE n > ? ORDER BY n LIMIT ?", (last, size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [url for _, url in rows]

    def close(self) -> None:
        self._conn.close()
