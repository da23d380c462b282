"""The keyword index: the only module that imports whoosh.

BM25F over a stemmed title (boosted) and excerpt. Plain words are OR-ed; quoted phrases,
field:value and AND/OR/NOT work; malformed syntax falls back to plain terms.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from whoosh import fields, index, qparser, query, scoring
from whoosh.analysis import StemmingAnalyzer
from whoosh.reading import SegmentReader

from search.bm25 import ScoreMatrix
from search.errors import IndexCorrupt, IndexMissing
from search.models import Article

SEARCH_FIELDS = ("title", "excerpt")
FIELD_ALIASES = {"topic": "topics", "source": "provider", "site": "domain"}
MAX_SYNTAX_CHARS = 2000  # longer text is parsed as plain words (see KeywordIndex.parse)
_SYNTAX = re.compile(r"[\"()':*?\[\]{}^~+\-\\/]|\b(AND|OR|NOT|ANDNOT|ANDMAYBE)\b")


class LuceneBM25F(scoring.BM25F):
    """Whoosh's BM25F with the Robertson/Lucene idf, log(1 + (N - df + 0.5) / (df + 0.5)).

    Whoosh's own idf, log(N / (df + 1)) + 1, adds 1 to every term and so weighs common terms
    too much against rare ones. Measured (bench/results/eval_keyword.json): nDCG@10 on the
    dbpedia dev set 0.382 -> 0.383, msmarco 0.715 -> 0.724; Recall@100 0.825 -> 0.841 and 0.773 -> 0.779.
    """

    def idf(self, searcher, fieldname: str, text: bytes) -> float:
        parent = searcher.get_parent()
        df = parent.doc_frequency(fieldname, text)
        return math.log(1 + (parent.doc_count_all() - df + 0.5) / (df + 0.5))


WEIGHTING = LuceneBM25F(B=0.75, K1=1.2)


def make_schema(title_boost: float) -> fields.Schema:
    stem = StemmingAnalyzer()
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        title=fields.TEXT(analyzer=stem, field_boost=title_boost),
        excerpt=fields.TEXT(analyzer=stem),
        provider=fields.TEXT(),
        domain=fields.ID(),
        topics=fields.TEXT(),
        provider_exact=fields.ID(),
        topic_exact=fields.KEYWORD(commas=True, lowercase=True),
        published=fields.DATETIME(),
        url=fields.ID(),
    )


def _document(article: Article) -> dict:
    doc = {
        "id": article.id,
        "title": article.title,
        "excerpt": article.excerpt,
        "provider": article.provider,
        "domain": article.provider_domain,
        "topics": " ; ".join(article.topics),
        "provider_exact": article.provider,
        "topic_exact": ",".join(t.replace(",", " ") for t in article.topics),
        "url": article.url,
    }
    if article.published:
        doc["published"] = article.published.replace(tzinfo=None)
    return {k: v for k, v in doc.items() if v not in ("", None)}


class KeywordIndex:
    """A Whoosh index in one directory, opened for reading and optionally writing."""

    def __init__(self, path: Path, title_boost: float = 2.0, matrix_dir: Path | None = None):
        self.path = Path(path)
        self.title_boost = title_boost
        self.matrix_dir = matrix_dir
        self.matrix: ScoreMatrix | None = None
        self._ix = None
        self._local = threading.local()
        self._searchers: list = []  # every thread's searcher, so close() can close them all
        self._lock = threading.Lock()
        self._parsers: dict[bool, qparser.QueryParser] = {}
        self._parsed: OrderedDict[str, query.Query] = OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------------
    def create(self) -> KeywordIndex:
        self.path.mkdir(parents=True, exist_ok=True)
        self._ix = index.create_in(str(self.path), make_schema(self.title_boost))
        return self

    def open(self) -> KeywordIndex:
        if not index.exists_in(str(self.path)):
            raise IndexMissing(f"no keyword index in {self.path}")
        try:
            self._ix = index.open_dir(str(self.path))
        except Exception as exc:  # whoosh raises many types on a damaged directory
            raise IndexCorrupt(f"keyword index in {self.path} cannot be opened: {exc}") from None
        if self.matrix_dir is not None:
            self.matrix = ScoreMatrix.load(self.matrix_dir)
            if self.matrix is not None and self.matrix.size != self._ix.doc_count():
                raise IndexCorrupt(
                    f"score matrix in {self.matrix_dir} holds {self.matrix.size} articles, "
                    f"the keyword index {self._ix.doc_count()} - rebuild with --rebuild"
                )
        return self

    def close(self) -> None:
        with self._lock:
            for searcher in self._searchers:
                searcher.close()
            self._searchers.clear()
        self._local = threading.local()
        if self._ix is not None:
            self._ix.close()
            self._ix = None
        self.matrix = None  # unmaps its files

    def _searcher(self):
        searcher = getattr(self._local, "searcher", None)
        if searcher is None:
            searcher = self._ix.searcher(weighting=WEIGHTING)
            self._local.searcher = searcher
            with self._lock:
                self._searchers.append(searcher)
        return searcher

    # -- writing -----------------------------------------------------------------------------
    def apply(self, upserts: Iterable[Article], deletes: Iterable[str]) -> None:
        """Delete then add in one commit. Ids in ``upserts`` replace their old documents."""
        writer = self._ix.writer(limitmb=256, compound=False)  # compound segments are copied into every searcher
        try:
            for article_id in deletes:
                writer.delete_by_term("id", article_id)
            for article in upserts:
                writer.update_document(**_document(article))
            writer.commit(mergetype=_merge_small_into_one)
        except BaseException:
            writer.cancel()
            raise
        self.close()
        self.open()

    # -- reading -----------------------------------------------------------------------------
    def count(self) -> int:
        return self._ix.doc_count()

    def ids(self) -> set[str]:
        with self._ix.searcher() as s:
            return {fields_["id"] for fields_ in s.all_stored_fields()}

    def parse(self, text: str) -> query.Query:
        """``_parse``, remembered for the last 1,024 texts."""
        with self._lock:
            if text in self._parsed:
                self._parsed.move_to_end(text)
                return self._parsed[text]
        parsed = self._parse(text)
        with self._lock:
            self._parsed[text] = parsed
            if len(self._parsed) > 1024:
                self._parsed.popitem(last=False)
        return parsed

    def _parse(self, text: str) -> query.Query:
        """The query for user text (``parse`` is this, cached); syntax errors fall back to plain OR-ed terms.

        Text over MAX_SYNTAX_CHARS is read as plain words: whoosh's field-name tagger takes
        quadratic time on long runs of word characters (20,000 of them: about 2 s).
        """
        try:
            q = self._parser().parse(text) if len(text) <= MAX_SYNTAX_CHARS else None
        except Exception:  # whoosh's parser raises assorted types on odd input
            q = None
        if q is None or q is query.NullQuery:
            q = self._plain(text)
        return _prohibit(q)

    def _plain(self, text: str) -> query.Query:
        plain = _SYNTAX.sub(" ", text)
        try:
            return self._parser(plain_only=True).parse(plain)
        except Exception:
            return query.NullQuery

    def _parser(self, plain_only: bool = False) -> qparser.QueryParser:
        if plain_only not in self._parsers:
            self._parsers[plain_only] = self._make_parser(plain_only)
        return self._parsers[plain_only]

    def _make_parser(self, plain_only: bool) -> qparser.QueryParser:
        schema = self._ix.schema
        parser = qparser.MultifieldParser(list(SEARCH_FIELDS), schema, group=qparser.OrGroup)
        parser.remove_plugin_class(qparser.WildcardPlugin)
        if plain_only:
            for plugin in (
                qparser.FieldsPlugin,
                qparser.PhrasePlugin,
                qparser.OperatorsPlugin,
                qparser.GroupPlugin,
                qparser.RangePlugin,
                qparser.BoostPlugin,
            ):
                parser.remove_plugin_class(plugin)
        else:
            parser.add_plugin(qparser.FieldAliasPlugin({v: [k] for k, v in FIELD_ALIASES.items()}))
        return parser

    def search(
        self, text: str, limit: int, filter_query: query.Query | None = None, allowed: set[str] | None = None
    ) -> tuple[list[tuple[str, float]], int]:
        """Top ``limit`` (id, score) pairs and the number of matching documents.

        ``filter_query`` restricts Whoosh; ``allowed`` (the same filter as a set of ids) lets a
        query of OR-ed terms be answered from the score matrix instead.
        """
        return self.run(self.parse(text), limit, filter_query, allowed)

    def run(
        self, q: query.Query, limit: int, filter_query: query.Query | None = None, allowed: set[str] | None = None
    ) -> tuple[list[tuple[str, float]], int]:
        if q is query.NullQuery:
            return [], 0
        keys = self._matrix_keys(q) if filter_query is None or allowed is not None else None
        if keys is not None:
            mask = self.matrix.mask(allowed) if allowed is not None else None
            return self.matrix.top(self.matrix.scores(keys), limit, mask)
        searcher = self._searcher()
        results = searcher.search(q, limit=limit, filter=filter_query)
        hits = [(hit["id"], float(hit.score)) for hit in results]
        return hits, len(results)

    def score_ids(self, text: str, ids: Sequence[str]) -> dict[str, float]:
        """Keyword scores of the given documents for ``text`` (0 where they do not match)."""
        if not ids:
            return {}
        keys = self._matrix_keys(self.parse(text))
        if keys is not None:
            scores = self.matrix.scores(keys)
            rows = {i: self.matrix.row_of(i) for i in ids}
            return {i: float(scores[r]) for i, r in rows.items() if r is not None and scores[r] > 0}
        only = query.Or([query.Term("id", i) for i in ids])
        hits, _ = self.search(text, limit=len(ids), filter_query=only)
        return dict(hits)

    def key_terms_query(self, text: str, numterms: int = 20) -> query.Query:
        """An OR query of the most distinctive terms of ``text``, weighted by importance."""
        searcher = self._searcher()
        terms: list[query.Query] = []
        for field in SEARCH_FIELDS:
            for term, weight in searcher.key_terms_from_text(field, text, numterms=numterms):
                terms.append(query.Term(field, term, boost=float(weight)))
        return query.Or(terms) if terms else query.NullQuery

    def _matrix_keys(self, q: query.Query) -> list[tuple[str, float]] | None:
        """(matrix key, weight) pairs when ``q`` is OR-ed terms of the matrix's fields, else None."""
        if self.matrix is None:
            return None
        keys: list[tuple[str, float]] = []
        return keys if _collect_terms(q, 1.0, keys) else None

    # -- the score matrix --------------------------------------------------------------------
    def export_matrix(self, directory: Path) -> ScoreMatrix:
        """Write every (field, term) column of BM25F contributions, read from this index."""
        searcher = self._ix.searcher(weighting=WEIGHTING)
        try:
            reader = searcher.reader()
            docnums = list(reader.all_doc_ids())
            row = {d: n for n, d in enumerate(docnums)}
            ids = [reader.stored_fields(d)["id"] for d in docnums]
            columns = [col for field in SEARCH_FIELDS for col in _field_columns(searcher, field, row)]
            matrix = ScoreMatrix.build(ids, columns)
        finally:
            searcher.close()
        matrix.save(directory)
        return matrix


def _merge_small_into_one(writer, segments):
    """Whoosh merge policy: keep the largest segment, fold every other one into the new one.

    An update then rewrites only the small segments, and readers never hold more than two
    (Whoosh's default lets about a dozen pile up, each costing every reader thread memory).
    When the small side reaches a fifth of the largest, everything is merged.
    """
    if len(segments) <= 1:
        return segments
    largest = max(segments, key=lambda s: s.doc_count_all())
    rest = [s for s in segments if s is not largest]
    if sum(s.doc_count_all() for s in rest) * 5 >= largest.doc_count_all():
        rest = segments
    for segment in rest:
        reader = SegmentReader(writer.storage, writer.schema, segment)
        writer.add_reader(reader)
        reader.close()
    return [s for s in segments if s not in rest]


def _field_columns(searcher, field: str, row: dict[int, int]):
    """(key, rows, BM25F contributions) of every term of ``field``."""
    avgfl = searcher.avg_field_length(field) or 1
    b, k1 = WEIGHTING.B, WEIGHTING.K1
    norm: dict[int, float] = {}
    for term in searcher.reader().lexicon(field):
        text = term.decode("utf-8") if isinstance(term, bytes) else term
        idf = searcher.idf(field, text)
        matcher = searcher.postings(field, text)
        rows, values = [], []
        while matcher.is_active():
            doc = matcher.id()
            if doc not in norm:
                norm[doc] = k1 * ((1 - b) + b * searcher.doc_field_length(doc, field, 1) / avgfl)
            tf = matcher.weight()
            rows.append(row[doc])
            values.append(idf * tf * (k1 + 1) / (tf + norm[doc]))
            matcher.next()
        if rows:
            yield ScoreMatrix.key(field, text), np.asarray(rows), np.asarray(values)


def _collect_terms(q: query.Query, boost: float, out: list[tuple[str, float]]) -> bool:
    if isinstance(q, query.Term) and q.fieldname in SEARCH_FIELDS:
        out.append((ScoreMatrix.key(q.fieldname, q.text), boost * q.boost))
        return True
    if type(q) is query.Or:
        return all(_collect_terms(sub, boost * q.boost, out) for sub in q.subqueries)
    return False


def _prohibit(q: query.Query) -> query.Query:
    """Lucene semantics for NOT among OR-ed words: ``a b NOT c`` is (a OR b) minus c.

    Whoosh would read it as ``a OR b OR (everything but c)``.
    """
    if isinstance(q, query.Or):
        parts = [_prohibit(sub) for sub in q.subqueries]
        negated = [sub.query for sub in parts if isinstance(sub, query.Not)]
        positive = [sub for sub in parts if not isinstance(sub, query.Not)]
        if negated and positive:
            return query.AndNot(query.Or(positive), query.Or(negated))
        return query.Or(parts, boost=q.boost)
    if isinstance(q, query.And):
        return query.And([_prohibit(sub) for sub in q.subqueries], boost=q.boost)
    return q


def filter_query(
    provider: str | None = None, topic: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> query.Query | None:
    """A whoosh filter for the structured filters, or None when there are none."""
    parts: list[query.Query] = []
    if provider:
        parts.append(query.Term("provider_exact", provider))
    if topic:
        parts.append(query.Term("topic_exact", topic.lower()))
    if since or until:
        start = since.replace(tzinfo=None) if since else None
        end = until.replace(tzinfo=None) if until else None
        parts.append(query.DateRange("published", start, end))
    return query.And(parts) if parts else None
