"""The keyword index: the only module that imports whoosh.

BM25F over a stemmed title (boosted) and excerpt. Whoosh stores the postings and positions;
queries are parsed by ``search/query.py`` and scored from the BM25F score matrix
(``search/bm25.py``) that is read out of this index at build time. Whoosh itself answers what
needs positions (phrases) and picks an article's key terms for "more like this".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from whoosh import fields, index, query, scoring
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.reading import SegmentReader

from search import analysis
from search.bm25 import ScoreMatrix
from search.errors import IndexCorrupt, IndexMissing
from search.models import Article

SEARCH_FIELDS = ("title", "excerpt")


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


def make_analyzer():
    """The project's analyzer (search/analysis.py) as a Whoosh analyzer: the same terms, so the Qdrant
    backend, which computes its own BM25 weights, indexes exactly what this index does."""
    return (
        RegexTokenizer(analysis.TOKEN)
        | LowercaseFilter()
        | StopFilter(stoplist=analysis.STOP_WORDS, minsize=analysis.MIN_LENGTH)
        | StemFilter(stemfn=analysis.stem)
    )


def make_schema(title_boost: float) -> fields.Schema:
    stem = make_analyzer()
    return fields.Schema(
        id=fields.ID(stored=True, unique=True),
        title=fields.TEXT(analyzer=stem, field_boost=title_boost),
        excerpt=fields.TEXT(analyzer=stem),
    )


def _document(article: Article) -> dict:
    doc = {"id": article.id, "title": article.title, "excerpt": article.excerpt}
    return {k: v for k, v in doc.items() if v}


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
        self._writer = None
        self._analyzer = None
        self._analysed: dict[str, list[str]] = {}  # word -> terms, for the query path

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
    def begin_writes(self) -> None:
        """Open one Whoosh writer for the batches that follow; ``commit_writes`` ends it."""
        # compound segments are copied into every searcher; limitmb bounds the writer's memory
        self._writer = self._ix.writer(limitmb=128, compound=False)
        self._empty = self._ix.doc_count_all() == 0

    def write(self, upserts: Iterable[Article], deletes: Iterable[str]) -> None:
        """Delete, then add or replace (ids in ``upserts`` replace their old documents)."""
        writer = self._writer
        try:
            for article_id in deletes:
                writer.delete_by_term("id", article_id)
            add = writer.add_document if self._empty else writer.update_document
            for article in upserts:
                add(**_document(article))
        except BaseException:
            self.cancel_writes()
            raise

    def commit_writes(self) -> None:
        writer, self._writer = self._writer, None
        try:
            writer.commit(mergetype=_merge_small_into_one)
        except BaseException:
            writer.cancel()
            raise
        self.close()
        self.open()

    def cancel_writes(self) -> None:
        """Drop what was written since ``begin_writes`` (and close the writer's files)."""
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            try:
                writer.cancel()
            except Exception:  # noqa: BLE001 - whoosh may fail to clean up on a full disk; the directory goes anyway
                pass

    def apply(self, upserts: Iterable[Article], deletes: Iterable[str]) -> None:
        """Delete then add in one commit. Ids in ``upserts`` replace their old documents."""
        self.begin_writes()
        self.write(upserts, deletes)
        self.commit_writes()

    # -- reading -----------------------------------------------------------------------------
    def count(self) -> int:
        return self._ix.doc_count()

    def ids(self) -> set[str]:
        with self._ix.searcher() as s:
            return {fields_["id"] for fields_ in s.all_stored_fields()}

    def analyze(self, text: str) -> list[str]:
        """The indexed terms of ``text`` (stemmed, stop words dropped), in order."""
        cached = self._analysed.get(text)
        if cached is None:
            if self._analyzer is None:
                self._analyzer = self._ix.schema["title"].analyzer  # whoosh reads its TOC file for the schema
            cached = [token.text for token in self._analyzer(text)]
            if len(self._analysed) > 4096:
                self._analysed.clear()
            self._analysed[text] = cached
        return list(cached)

    def phrase_docnums(self, terms: Sequence[str], fields_: Sequence[str]) -> np.ndarray:
        """Whoosh document numbers holding ``terms`` in this order in any of ``fields_``."""
        phrase = query.Or([query.Phrase(f, list(terms)) for f in fields_])
        return np.fromiter(self._searcher().docs_for_query(phrase), dtype=np.int64)

    def key_terms(self, text: str, numterms: int = 20) -> list[tuple[str, str, float]]:
        """(field, term, weight) of the most distinctive terms of ``text``, per searched field."""
        searcher = self._searcher()
        return [
            (field, term, float(weight))
            for field in SEARCH_FIELDS
            for term, weight in searcher.key_terms_from_text(field, text, numterms=numterms)
        ]

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
            matrix = ScoreMatrix.build(ids, columns, docnums)
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
