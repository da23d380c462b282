"""Offline evaluation: BEIR collections for search, publisher links for "more like this".

``run_beir`` indexes a BEIR collection into a temporary index (each ``_id`` kept as given) and
scores every judged query in each mode: nDCG@10 and MRR@10 of the first page a user would see
(``limit=10``) and Recall@100 of a ``limit=100`` request. ``run_related`` indexes a news corpus
and checks ``related()`` against the items each publisher linked. Metrics: :mod:`search.metrics`.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from search import metrics
from search.config import MODES, Settings
from search.dates import parse_datetime
from search.errors import ArticleError, ConfigError
from search.indexer import Indexer
from search.loader import Record, iter_article_files, load_file
from search.merge import merge_records
from search.models import Article
from search.service import MAX_QUERY_CHARS, SearchService
from search.urls import article_id, canonical_url

BEIR_METRICS = ("ndcg@10", "recall@100", "mrr@10")
SET_METRICS = ("p@10", "p@10_newest", "total", "total_stable")
RELATED_METRICS = ("recall@10", "mrr@10")
# related() three ways: the configured blend, and each side alone (convex with all weight on it; the
# related_halflife time decay applies to all three)
RELATED_CONFIGS = {
    "keyword": {"fusion": "convex", "related_alpha": 0.0},
    "semantic": {"fusion": "convex", "related_alpha": 1.0},
    "fused": {},
}
_REPORTED_SETTINGS = tuple(
    "fusion alpha rrf_k candidates min_candidates title_boost feedback_docs feedback_weight match_all_upto "
    "match_fraction semantic_floor semantic_relative related_alpha related_halflife related_decay_floor "
    "related_floor related_keyword_floor related_keyword_similarity index_embedder query_embedder backend".split()
)


@dataclass(frozen=True)
class BeirCollection:
    name: str
    corpus: list[dict]  # {"_id", "title", "text"}
    queries: dict[str, str]  # judged queries only, in file order
    qrels: dict[str, dict[str, int]]
    skipped: int  # queries without judgements


def load_beir(directory: str | Path) -> BeirCollection:
    """Read corpus.jsonl, queries.jsonl and qrels/test.tsv; drop the queries nobody judged."""
    root = Path(directory)
    paths = [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / "test.tsv"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"{root} is not a BEIR collection: missing {', '.join(missing)}")
    corpus = [
        {"_id": str(d["_id"]), "title": d.get("title") or "", "text": d.get("text") or "", "published": _date_of(d)}
        for d in _jsonl(paths[0])
    ]
    qrels = _qrels(paths[2])
    all_queries = {str(q["_id"]): str(q.get("text") or "") for q in _jsonl(paths[1])}
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirCollection(root.name, corpus, queries, qrels, len(all_queries) - len(queries))


def _date_of(doc: dict) -> str | None:
    """A corpus document's publication date, if it has one (``published`` or ``date``, also under
    ``metadata``): news collections carry them, so newest-first precision can be measured."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    for value in (doc.get("published"), doc.get("date"), meta.get("published"), meta.get("date")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: invalid JSON ({exc.msg})") from None


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as rows:
        for number, row in enumerate(csv.reader(rows, delimiter="\t"), start=1):
            if not row or (number == 1 and not _is_int(row[-1])):
                continue  # the header line
            if len(row) < 3 or not _is_int(row[2]):
                raise ConfigError(f"{path}:{number}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def beir_records(collection: BeirCollection) -> tuple[list[Record], dict[str, str]]:
    """One main record per document, with URL ``beir:<quoted _id>``; and article id -> ``_id``.

    Quoting keeps every ``_id`` distinct through URL canonicalisation (URLs, spaces, case).
    """
    records: list[Record] = []
    ids: dict[str, str] = {}
    for line, doc in enumerate(collection.corpus, start=1):
        url = canonical_url("beir:" + quote(doc["_id"], safe=""))
        key = article_id(url)
        if ids.setdefault(key, doc["_id"]) != doc["_id"]:
            raise ConfigError(f"corpus ids {ids[key]!r} and {doc['_id']!r} map to one article id")
        fields = {
            "title": " ".join(doc["title"].split()),
            "excerpt": " ".join(doc["text"].split()),
            "published": parse_datetime(doc.get("published")),
            "provider": "",
            "provider_domain": "",
            "topics": (),
            "image": "",
            "quality": None,
        }
        records.append(Record(url, fields, True, f"beir:{collection.name}", line))
    return records, ids


@contextmanager
def _index_dir(settings: Settings, index_dir: str | Path | None) -> Iterator[Settings]:
    """``settings`` pointed at ``index_dir``, or at a temporary directory removed afterwards.

    With the qdrant backend and neither ``qdrant_url`` nor ``qdrant_path`` set, the index is built
    in an in-process Qdrant in that directory (``qdrant/``), on a memory file system where there
    is one: local mode commits every point to SQLite, which costs milliseconds each on a disk. Its
    brute-force searches are slow, so these runs have no per-request time budget."""
    if index_dir is not None:
        yield _with_qdrant(settings.with_overrides(index_dir=str(index_dir)), Path(index_dir))
        return
    memory = Path("/dev/shm")
    where = str(memory) if settings.backend == "qdrant" and memory.is_dir() and os.access(memory, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="search-eval-", dir=where) as tmp:
        chosen = _with_qdrant(settings.with_overrides(index_dir=tmp), Path(tmp))
        try:
            yield chosen
        finally:
            if chosen.qdrant_path and chosen.qdrant_path.startswith(tmp):
                from search.qdrant import close_clients

                close_clients(under=tmp)


def _with_qdrant(settings: Settings, folder: Path) -> Settings:
    if settings.backend != "qdrant" or settings.qdrant_url:
        return settings
    return settings.with_overrides(qdrant_path=settings.qdrant_path or str(folder / "qdrant"), request_budget_ms=0)


# Queries that mean nothing in any language the model knows: every mode must find nothing.
NONSENSE = (
    "xqzv",
    "qwrtzpl mnbvc",
    "zzkqj",
    "fjdksla",
    "vbnmxc wqpz",
    "blorft snazzle",
    "kxjh pqwo zzt",
    "ptkwq dflgh",
)


def run_beir(
    collection_dir: str | Path,
    settings: Settings,
    modes: Sequence[str] | str = MODES,
    embedder=None,
    index_dir: str | Path | None = None,
    corpus: Sequence[str | Path] = (),
    typos: str | Path | None = None,
    nonsense: Sequence[str] = NONSENSE,
) -> dict:
    """Index a BEIR collection and score its judged queries in each of ``modes``.

    ``corpus`` (article files) replaces the collection's corpus.jsonl: the judged ``_id``s are
    then the articles' URLs, and the articles keep their dates, so newest-first precision means
    something. ``typos`` is a JSON Lines file of misspelled queries (``_id``, ``text``) scored
    against the clean ones; ``nonsense`` queries should find nothing. ``embedder`` (if given)
    embeds both documents and queries; ``index_dir`` keeps the index for later runs.
    """
    modes = _modes(modes)
    collection = load_beir(collection_dir)
    misspelled = _typo_queries(typos, collection) if typos else {}
    with _index_dir(settings, index_dir) as local:
        started = time.perf_counter()
        indexer = Indexer(local, embedder)
        if corpus:
            report = indexer.index(list(corpus), rebuild=True)
            ids = url_ids(collection)
        else:
            records, ids = beir_records(collection)
            report = indexer.index_records(records, f"beir:{collection.name}", rebuild=True)
        out = _beir_header(collection, local, report.to_dict(), indexer.embedder.model_id)
        out["corpus"] = [str(p) for p in corpus] or "corpus.jsonl"
        out["typos"] = str(typos) if typos else None
        out["index_seconds"] = round(time.perf_counter() - started, 2)
        service = SearchService(local, embedder)
        try:
            out["modes"] = {mode: evaluate_mode(service, collection, ids, mode, misspelled, nonsense) for mode in modes}
            stories = judged_stories(service, collection, ids)
            if len(set(stories.values())) < len(stories):  # some judged articles share a story: collapsed view
                out["collapsed"] = {
                    mode: evaluate_mode(service, collection, ids, mode, misspelled, (), stories) for mode in modes
                }
        finally:
            service.close()
    return out


TYPOS_DIR = Path(__file__).resolve().parent.parent / "eval" / "typos"


def default_typos(collection_dir: str | Path) -> Path | None:
    """The project's misspelled variants of a dev collection's queries, if it has them."""
    path = TYPOS_DIR / f"{Path(collection_dir).resolve().name}.jsonl"
    return path if path.is_file() else None


def url_ids(collection: BeirCollection) -> dict[str, str]:
    """Article id -> judged ``_id`` for collections whose ``_id``s are article URLs."""
    out: dict[str, str] = {}
    judged = {doc for q in collection.qrels.values() for doc in q} | {d["_id"] for d in collection.corpus}
    for doc in judged:
        try:
            out[article_id(canonical_url(doc))] = doc
        except ValueError:
            continue
    return out


def _typo_queries(path: str | Path, collection: BeirCollection) -> dict[str, str]:
    found = {str(q["_id"]): str(q.get("text") or "") for q in _jsonl(Path(path))}
    return {qid: text for qid, text in found.items() if qid in collection.queries}


def _modes(modes: Sequence[str] | str) -> list[str]:
    chosen = list(MODES) if modes in ("all", None) else [modes] if isinstance(modes, str) else list(modes)
    chosen = [m for m in ("keyword", "semantic", "hybrid") if m in chosen] + [m for m in chosen if m not in MODES]
    bad = [m for m in chosen if m not in MODES]
    if bad or not chosen:
        raise ConfigError(f"mode {', '.join(bad) or '(none)'}: use keyword, semantic, hybrid or all")
    return chosen


def _beir_header(collection: BeirCollection, settings: Settings, report: dict, model_id: str) -> dict:
    return {
        "kind": "beir",
        "collection": collection.name,
        "documents": len(collection.corpus),
        "queries": len(collection.queries),
        "skipped_queries": collection.skipped,
        "settings": {name: getattr(settings, name) for name in _REPORTED_SETTINGS},
        "index_model": model_id,
        "indexed": report["articles"],
        "embedded": report["embedded"],
        "cache_hits": report["cache_hits"],
    }


def evaluate_mode(
    service: SearchService,
    collection: BeirCollection,
    ids: dict[str, str],
    mode: str,
    typos: dict[str, str] | None = None,
    nonsense: Sequence[str] = (),
    stories: dict[str, str] | None = None,
) -> dict:
    """Per-query and mean metrics of one mode over the collection's judged queries.

    Beside the ranking metrics: precision@10 by relevance and newest first, the match set's
    size (``total``) and whether page 3 reports the same total as page 1; nDCG@10 of the
    misspelled queries; and how many results the nonsense queries get.

    Without ``stories`` every article is ranked on its own (``collapse=False``), as the judgements
    are per article. With ``stories`` (judged ``_id`` -> story id) the results are collapsed by story
    as users see them, and a story counts with the best grade of its judged articles.
    """
    started = time.perf_counter()
    collapse = stories is not None
    per_query: dict[str, dict[str, float]] = {}
    for qid, text in collection.queries.items():
        qrels = _story_qrels(collection.qrels[qid], stories) if collapse else collection.qrels[qid]
        rank = lambda t, limit=10, **kw: _ranking(service, t, mode, limit, ids, collapse=collapse, **kw)  # noqa: E731
        page, total = rank(text)
        deep, _ = rank(text, 100)
        newest, _ = rank(text, sort="newest")
        _, total_page3 = rank(text, offset=20)
        per_query[qid] = {
            "ndcg@10": metrics.ndcg(page, qrels, 10),
            "recall@100": metrics.recall(deep, qrels, 100),
            "mrr@10": metrics.reciprocal_rank(page, qrels, 10),
            "p@10": metrics.precision(page, qrels, 10),
            "p@10_newest": metrics.precision(newest, qrels, 10),
            "total": total,
            "total_stable": float(total == total_page3),
        }
        if typos and qid in typos:
            per_query[qid]["typo_ndcg@10"] = metrics.ndcg(rank(typos[qid])[0], qrels, 10)
    means = {name: metrics.mean(q[name] for q in per_query.values()) for name in (*BEIR_METRICS, *SET_METRICS)}
    if typos:
        typo = [q for q in per_query.values() if "typo_ndcg@10" in q]
        means["typo_ndcg@10"] = metrics.mean(q["typo_ndcg@10"] for q in typo)
        clean = metrics.mean(q["ndcg@10"] for q in typo)
        means["typo_retained"] = means["typo_ndcg@10"] / clean if clean else 0.0
    if nonsense:
        means["nonsense_results"] = sum(_ranking(service, text, mode, 10, ids)[1] for text in nonsense)
    return {"mean": means, "seconds": round(time.perf_counter() - started, 2), "per_query": per_query}


def _story_qrels(qrels: dict[str, int], stories: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for doc, grade in qrels.items():
        story = stories.get(doc, doc)
        out[story] = max(out.get(story, grade), grade)
    return out


def judged_stories(service: SearchService, collection: BeirCollection, ids: dict[str, str]) -> dict[str, str]:
    """Judged ``_id`` -> the story id of its article (for the collapsed, story-level figures)."""
    article_of = {doc: key for key, doc in ids.items()}
    judged = sorted({d for q in collection.qrels.values() for d in q if d in article_of})
    found = {a.id: a.story or a.id for a in service.get_many([article_of[d] for d in judged])}
    return {d: found[article_of[d]] for d in judged if article_of[d] in found}


def _ranking(
    service: SearchService,
    text: str,
    mode: str,
    limit: int,
    ids: dict[str, str],
    sort: str = "relevance",
    offset: int = 0,
    collapse: bool = False,
) -> tuple[list[str], int]:
    """The judged ``_id``s of a result page (story ids when collapsed), and the total."""
    text = text.strip()[:MAX_QUERY_CHARS]
    if not text:
        return [], 0
    results = service.search(text, mode=mode, limit=limit, offset=offset, sort=sort, collapse=collapse)
    if collapse:
        return [hit.article.story or hit.article.id for hit in results.hits], results.total
    return [ids.get(hit.article.id, hit.article.id) for hit in results.hits], results.total


# -- more like this ---------------------------------------------------------------------------
def corpus_articles(corpus_dir: str | Path) -> dict[str, Article]:
    """The articles an index of ``corpus_dir`` holds (stubs included), merged as the indexer does."""
    records = [r for path in iter_article_files([corpus_dir]) for r in load_file(path).records]
    return merge_records(records)


def related_truth(articles: dict[str, Article]) -> dict[str, dict[str, list[str]]]:
    """Expected related items per main article, two ways.

    ``main``: the linked items that are main articles of the corpus (not stubs): the primary
    figure, since a stub is in the index only because of that very link. ``linked``: every item
    the publisher linked (all of them are indexed, stubs included).
    """
    mains = {i for i, a in articles.items() if not a.is_stub}
    truth: dict[str, dict[str, list[str]]] = {"main": {}, "linked": {}}
    for a in articles.values():
        if a.is_stub:
            continue
        linked = [r for r in a.related if r in articles and r != a.id]
        if linked:
            truth["linked"][a.id] = linked
        if any(r in mains for r in linked):
            truth["main"][a.id] = [r for r in linked if r in mains]
    return truth


def judged_related_truth(collection: BeirCollection, ids: dict[str, str]) -> dict[str, list[str]]:
    """ "More like this" expectations from a judged news collection: for each article judged
    fully relevant (grade 2) to a query, the other articles judged relevant to it (grade 1+).
    They are the same subject, often months apart: what a reader who liked the anchor wants next."""
    article_of = {doc: key for key, doc in ids.items()}
    truth: dict[str, set[str]] = {}
    for qrels in collection.qrels.values():
        relevant = [article_of[d] for d, g in qrels.items() if g > 0 and d in article_of]
        for doc, grade in qrels.items():
            if grade >= 2 and doc in article_of:
                anchor = article_of[doc]
                truth.setdefault(anchor, set()).update(r for r in relevant if r != anchor)
    return {anchor: sorted(expected) for anchor, expected in truth.items() if expected}


def run_related(corpus_dir: str | Path, settings: Settings, embedder=None, index_dir: str | Path | None = None) -> dict:
    """Index a news corpus and score ``related()`` against its publisher links (see related_truth).

    Three configurations: keyword only, semantic only, and the fusion the settings describe.
    """
    articles = corpus_articles(corpus_dir)
    if not articles:
        raise ArticleError(
            "nothing to evaluate: no articles, no BEIR collection (corpus.jsonl, queries.jsonl, qrels/) and no "
            "story grouping (JSON of stories)",
            str(corpus_dir),
        )
    truth = related_truth(articles)
    with _index_dir(settings, index_dir) as local:
        started = time.perf_counter()
        report = Indexer(local, embedder).index([corpus_dir], rebuild=True)
        out = {
            "kind": "related",
            "corpus": Path(corpus_dir).name,
            "articles": report.articles,
            "index_seconds": round(time.perf_counter() - started, 2),
            "settings": {name: getattr(local, name) for name in _REPORTED_SETTINGS},
            "truth": {name: {"articles": len(t), "links": sum(map(len, t.values()))} for name, t in truth.items()},
            "configs": {},
        }
        for name, overrides in RELATED_CONFIGS.items():
            out["configs"][name] = evaluate_related(local.with_overrides(**overrides), truth, embedder)
    return out


def evaluate_related(settings: Settings, truth: dict[str, dict[str, list[str]]], embedder=None) -> dict:
    """Recall@10 and MRR@10 of ``related(id, limit=10)`` for each ground-truth variant, counted by story:
    an expected item is found when any article of its story is. The anchor's own story counts as found
    when related() lists its other articles (``also_reported``), as readers see them. Also: how many
    items a list shows on average (the floors may make it shorter than 10)."""
    started = time.perf_counter()
    service = SearchService(settings, embedder)
    try:
        queries = sorted(set().union(*(t.keys() for t in truth.values())))
        found = {i: service.related(i, limit=10) for i in queries}
        expected_ids = sorted({e for t in truth.values() for items in t.values() for e in items} | set(queries))
        story = {a.id: a.story or a.id for a in service.get_many(expected_ids)}
    finally:
        service.close()
    out: dict = {"seconds": round(time.perf_counter() - started, 2)}
    out["shown"] = metrics.mean(len(r.hits) for r in found.values())
    for variant, expected in truth.items():
        per = {}
        for i, items in expected.items():
            ranking = [h.article.story or h.article.id for h in found[i].hits]
            wanted = dict.fromkeys((story.get(e, e) for e in items), 1)
            own = story.get(i, i)
            found_own = own in wanted and bool(found[i].also_reported)
            recall = metrics.recall(ranking, wanted, 10)
            if found_own:
                recall += 1 / len(wanted)
            per[i] = {"recall@10": min(1.0, recall), "mrr@10": metrics.reciprocal_rank(ranking, wanted, 10)}
        out[variant] = {
            "mean": {m: metrics.mean(p[m] for p in per.values()) for m in RELATED_METRICS},
            "per_article": per,
        }
    return out


# -- report -----------------------------------------------------------------------------------
def format_report(result: dict) -> str:
    """A plain-text table of a ``run_beir`` or ``run_related`` result."""
    s = result["settings"]
    setting_line = " ".join(f"{name}={value}" for name, value in s.items())
    if result["kind"] == "related":
        return _related_table(result, setting_line)
    lines = [
        f"{result['collection']}: {result['documents']} documents, {result['queries']} judged queries "
        f"({result['skipped_queries']} without judgements skipped), indexed in {result['index_seconds']} s",
        setting_line,
        "",
        "  ".join(f"{label:>{width}}" for label, _, width in _COLUMNS),
    ]
    for mode, figures in result["modes"].items():
        m = dict(figures["mean"], mode=mode, seconds=figures["seconds"])
        lines.append("  ".join(_cell(m.get(key), width) for _, key, width in _COLUMNS))
    if result.get("collapsed"):
        lines += ["", "collapsed by story, as users see results (a story counts with its best-judged article):"]
        for mode, figures in result["collapsed"].items():
            m = dict(figures["mean"], mode=mode, seconds=figures["seconds"])
            lines.append("  ".join(_cell(m.get(key), width) for _, key, width in _COLUMNS))
    return "\n".join(lines)


_COLUMNS = (  # label, key in the mean figures, width
    ("mode", "mode", 8),
    ("nDCG@10", "ndcg@10", 7),
    ("R@100", "recall@100", 6),
    ("MRR@10", "mrr@10", 6),
    ("P@10", "p@10", 6),
    ("P@10 new", "p@10_newest", 8),
    ("total", "total", 7),
    ("stable", "total_stable", 6),
    ("typo nDCG", "typo_ndcg@10", 9),
    ("kept", "typo_retained", 6),
    ("nonsense", "nonsense_results", 8),
    ("seconds", "seconds", 7),
)


def _cell(value: object, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, str):
        return f"{value:<{width}}"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 2:
        return f"{value:>{width}.0f}"
    return f"{value:>{width}.4f}" if abs(value) < 10 else f"{value:>{width}.1f}"


def _related_table(result: dict, setting_line: str) -> str:
    t = result["truth"]
    lines = [
        f"related on {result['corpus']}: {result['articles']} indexed articles, indexed in {result['index_seconds']} s",
        setting_line,
        *(f"truth '{name}': {v['articles']} articles, {v['links']} expected items" for name, v in t.items()),
        "",
        f"{'config':<10}" + "".join(f"{f'{v} {m}':>20}" for v in t for m in RELATED_METRICS),
    ]
    for name, figures in result["configs"].items():
        lines.append(f"{name:<10}" + "".join(f"{figures[v]['mean'][m]:>20.4f}" for v in t for m in RELATED_METRICS))
    return "\n".join(lines)
