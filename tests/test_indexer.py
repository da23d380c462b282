"""The writer: consistency, incremental updates, the atomic swap and crash leftovers."""

import json

import pytest

from conftest import CORPUS, fake_settings, shared_or_skip
from search import generations as gen
from search.errors import ArticleError, ConfigError, IndexLocked
from search.indexer import Indexer
from search.keyword import KeywordIndex
from search.service import SearchService
from search.store import ArticleStore
from search.urls import article_id
from search.vectors import VectorIndex

ARTICLE = '---\ntitle: {title}\nexcerpt: {excerpt}\nwebUrl: "{url}"\n---\n'


def live_parts(settings):
    path = gen.require_current(settings.index_path)
    keyword = KeywordIndex(path / gen.KEYWORD_DIR).open()
    vectors = VectorIndex.load(path / gen.VECTORS_FILE)
    store = ArticleStore(path / gen.STORE_FILE, readonly=True)
    try:
        return path, keyword.ids(), vectors.ids(), store.ids()
    finally:
        keyword.close()
        store.close()


def assert_consistent(settings):
    path, kw, vec, store = live_parts(settings)
    assert kw == vec == store
    assert gen.read_manifest(path).articles == len(store)
    return store


def test_build_is_consistent_and_has_a_manifest(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    report = Indexer(settings, embedder).index([article_dir])
    ids = assert_consistent(settings)
    assert report.added == len(ids) == report.articles
    assert report.skipped == []
    manifest = gen.read_manifest(gen.require_current(settings.index_path))
    assert manifest.model_name == embedder.model_name and manifest.dim == embedder.dim
    assert gen.checksums(gen.require_current(settings.index_path)) == manifest.checksums


def test_reindex_unchanged_does_nothing(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    first = Indexer(settings, embedder).index([article_dir])
    again = Indexer(settings, embedder).index([article_dir])
    assert again.generation == first.generation
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)


def test_changed_article_is_updated_and_only_it_is_embedded(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    target = article_dir / "003_robotaxi_pilot.md"
    target.write_text(target.read_text().replace("Robotaxi pilot expands", "Robotaxi service expands"))
    report = Indexer(settings, embedder).index([article_dir])
    assert (report.added, report.updated, report.removed, report.embedded) == (0, 1, 0, 1)
    assert_consistent(settings)
    svc = SearchService(settings, embedder)
    assert (
        "Robotaxi service expands"
        in svc.get(article_id("https://mobility.example.com/robotaxi-pilot-night-rides")).title
    )
    svc.close()


def test_prune_removes_articles_of_deleted_files(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    (article_dir / "004_speech_recognition_languages.md").unlink()
    kept = Indexer(settings, embedder).index([article_dir])
    assert kept.removed == 0
    pruned = Indexer(settings, embedder).index([article_dir], prune=True)
    assert pruned.removed == 1
    assert article_id("https://tech.example.org/speech-recognition-indian-languages") not in assert_consistent(settings)


def test_delete_by_id(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    victim = article_id("https://health.example.net/2020/11/12/xray-triage-model")
    report = Indexer(settings, embedder).delete([victim])
    assert report.removed == 1 and victim not in assert_consistent(settings)


def test_jsonl_update_stream(tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix")
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"title": "First version", "webUrl": "https://x.org/s"}) + "\n")
    Indexer(settings, embedder).index([feed])
    with feed.open("a") as fh:
        fh.write(json.dumps({"title": "Second version", "webUrl": "https://x.org/s/?utm_source=a"}) + "\n")
    report = Indexer(settings, embedder).index([feed])
    assert report.updated == 1 and report.articles == 1
    svc = SearchService(settings, embedder)
    assert svc.get(article_id("https://x.org/s")).title == "Second version"
    svc.close()


def test_bad_files_are_skipped_and_counted_strict_fails(tmp_path, article_dir, embedder):
    (article_dir / "broken.md").write_text("---\ntitle: [oops\n---\n")
    (article_dir / "empty.md").write_text("")
    settings = fake_settings(tmp_path / "ix")
    with pytest.raises(ArticleError, match="2 bad file"):
        Indexer(settings, embedder).index([article_dir], strict=True)
    assert gen.current_name(settings.index_path) is None  # strict wrote nothing
    report = Indexer(settings, embedder).index([article_dir])
    assert len(report.skipped) == 2 and report.articles > 0


def test_failure_mid_build_leaves_previous_generation_serving(tmp_path, article_dir, embedder, monkeypatch):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    before = live_parts(settings)
    (article_dir / "006_new.md").write_text(ARTICLE.format(title="New story", excerpt="x", url="https://x.org/new"))

    def explode(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(VectorIndex, "save", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        Indexer(settings, embedder).index([article_dir])
    assert live_parts(settings) == before
    assert not list(settings.index_path.glob("gen-*.tmp"))
    monkeypatch.undo()
    report = Indexer(settings, embedder).index([article_dir])
    assert report.added == 1
    assert_consistent(settings)


def test_leftover_temporary_build_is_cleaned_up(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    (settings.index_path / "gen-000099.tmp").mkdir()  # what a kill -9 mid-build leaves
    (article_dir / "006_new.md").write_text(ARTICLE.format(title="New", excerpt="x", url="https://x.org/new"))
    Indexer(settings, embedder).index([article_dir])
    assert not (settings.index_path / "gen-000099.tmp").exists()
    assert_consistent(settings)


def test_old_generation_kept_while_a_reader_holds_it(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    svc = SearchService(settings, embedder)
    svc.search("robotaxi", mode="keyword")
    old = gen.current_name(settings.index_path)
    (article_dir / "006_new.md").write_text(ARTICLE.format(title="Robotaxi news", excerpt="x", url="https://x.org/new"))
    Indexer(settings, embedder).index([article_dir])
    assert (settings.index_path / old).exists()  # still leased by svc
    results = svc.search("robotaxi news", mode="keyword")  # svc moves to the new generation
    assert results.hits[0].article.title == "Robotaxi news"
    svc.close()
    gen.cleanup(settings.index_path)
    assert not (settings.index_path / old).exists()


def test_second_writer_is_refused(tmp_path):
    root = tmp_path / "ix"
    with gen.WriterLock(root):
        with pytest.raises(IndexLocked, match="--wait"):
            gen.WriterLock(root, wait=0.1)
    gen.WriterLock(root).release()


def test_model_mismatch_is_refused(tmp_path, article_dir, embedder):
    from search.embedding import HashEmbedder

    settings = fake_settings(tmp_path / "ix")
    Indexer(settings, embedder).index([article_dir])
    other = HashEmbedder(dim=32)
    with pytest.raises(ConfigError, match="--rebuild"):
        (article_dir / "006_new.md").write_text(ARTICLE.format(title="New", excerpt="x", url="https://x.org/new"))
        Indexer(settings, other).index([article_dir])
    Indexer(settings, other).index([article_dir], rebuild=True)
    assert gen.read_manifest(gen.require_current(settings.index_path)).dim == 32


def test_real_corpus_indexes_with_one_bad_file(tmp_path, embedder):
    corpus = shared_or_skip(CORPUS)
    settings = fake_settings(tmp_path / "ix")
    report = Indexer(settings, embedder).index([corpus])
    assert len(report.skipped) == 1 and "project-innereye" in report.skipped[0]
    assert report.articles >= 360
    assert_consistent(settings)


def test_large_vector_index_is_compressed_and_deletions_stay_real(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix", approximate_above=5)
    Indexer(settings, embedder).index([article_dir])
    path = gen.require_current(settings.index_path)
    assert VectorIndex.load(path / gen.VECTORS_FILE).kind == "sq8"
    victim = article_id("https://health.example.net/2020/11/12/xray-triage-model")
    Indexer(settings, embedder).delete([victim])
    assert victim not in assert_consistent(settings)
    svc = SearchService(settings, embedder)
    top = svc.search("chest X-rays radiologists", mode="semantic").hits
    assert top and victim not in {h.article.id for h in top}
    svc.close()
