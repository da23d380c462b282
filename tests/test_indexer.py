"""The writer: consistency, incremental updates, the atomic swap and crash leftovers."""

import gzip
import io
import json
import os

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


def test_stories_follow_the_story_model_of_the_release(tmp_path, article_dir, embedder, monkeypatch):
    import search.indexer
    from search.stories import model_key

    settings = fake_settings(tmp_path / "ix")
    first = Indexer(settings, embedder).index([article_dir])
    assert gen.read_manifest(gen.require_current(settings.index_path)).story_model == model_key()
    assert "model_changed" not in first.stories
    store = ArticleStore(gen.require_current(settings.index_path) / gen.STORE_FILE, readonly=True)
    stories = store.stories()
    store.close()
    # another release's story model: the next run assigns every story again, though no article changed
    monkeypatch.setattr(search.indexer, "model_key", lambda: "another-model")
    again = Indexer(settings, embedder).index([article_dir])
    assert again.generation != first.generation and (again.added, again.updated, again.embedded) == (0, 0, 0)
    assert again.stories["model_changed"] == {"from": model_key(), "to": "another-model"}
    assert again.stories["recomputed"] == again.articles  # all of them, not only the ones near a change
    path = gen.require_current(settings.index_path)
    assert gen.read_manifest(path).story_model == "another-model"
    store = ArticleStore(path / gen.STORE_FILE, readonly=True)
    assert store.stories() == stories  # the same articles, the same rule: the same stories and ids
    store.close()
    assert_consistent(settings)
    third = Indexer(settings, embedder).index([article_dir])
    assert third.generation == again.generation  # recorded: nothing to do


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
    settings = fake_settings(tmp_path / "ix", approximate_above=5, semantic_floor=0.0, semantic_relative=0.0)
    Indexer(settings, embedder).index([article_dir])
    path = gen.require_current(settings.index_path)
    assert VectorIndex.load(path / gen.VECTORS_FILE).kind == "sq8"
    victim = article_id("https://health.example.net/2020/11/12/xray-triage-model")
    Indexer(settings, embedder).delete([victim])
    assert victim not in assert_consistent(settings)
    svc = SearchService(settings, embedder)
    top = svc.search("machine learning model to triage chest X-rays", mode="semantic").hits
    assert top and victim not in {h.article.id for h in top}
    svc.close()


# -- inputs other than a folder of Markdown (issues 11 and 12) ------------------------------------------


def test_an_empty_folder_warns_and_writes_no_generation(tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix")
    (tmp_path / "in").mkdir()
    report = Indexer(settings, embedder).index([tmp_path / "in"])
    assert report.generation == "" and report.articles == 0 and report.files == 0
    assert report.warnings_count == 1 and "no article files" in report.warnings[0]
    assert gen.current_name(settings.index_path) is None


def test_an_empty_folder_does_not_replace_a_live_index_on_rebuild(tmp_path, article_dir, embedder):
    settings = fake_settings(tmp_path / "ix")
    before = Indexer(settings, embedder).index([article_dir])
    (tmp_path / "in").mkdir()
    report = Indexer(settings, embedder).index([tmp_path / "in"], rebuild=True)
    assert report.generation == "" and gen.current_name(settings.index_path) == before.generation


def test_nothing_indexable_from_a_non_empty_input_is_an_error(tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix")
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"headline": "no link"}\n{"broken\n')
    with pytest.raises(ArticleError, match=r"nothing could be indexed.*no URL.*\(and 1 more\)"):
        Indexer(settings, embedder).index([feed])
    assert gen.current_name(settings.index_path) is None


def test_bad_sources_among_good_ones_are_reported_and_the_rest_indexed(tmp_path, article_dir, embedder):
    (article_dir / "loop.md").symlink_to(article_dir / "loop.md")
    os.mkfifo(article_dir / "pipe.md")
    settings = fake_settings(tmp_path / "ix")
    report = Indexer(settings, embedder).index([article_dir])
    assert report.skipped_count == 2 and report.articles > 0
    assert any("symbolic link loop" in s for s in report.skipped) and any("FIFO" in s for s in report.skipped)
    assert_consistent(settings)


def test_field_mapping_from_settings_and_the_report_of_fields(tmp_path, embedder):
    feed = tmp_path / "feed.jsonl"
    rows = [
        {"hed": "Mapped title", "permalink": "https://x.org/1", "when": "Fri, 23 Sep 2022 10:00:00 GMT"},
        {"hed": "Second", "permalink": "https://x.org/2", "when": "soon"},
    ]
    feed.write_text("\n".join(json.dumps(r) for r in rows))
    settings = fake_settings(tmp_path / "ix", fields={"title": "hed", "published": "when"})
    report = Indexer(settings, embedder).index([feed])
    assert report.articles == 2
    assert report.fields == {"title": {"hed": 2}, "url": {"permalink": 2}, "published": {"when": 1}}
    assert report.warnings_count == 1 and f"{feed}:2: when 'soon' is not a date" in report.warnings[0]
    svc = SearchService(settings, embedder)
    assert svc.get(article_id("https://x.org/1")).published.isoformat() == "2022-09-23T10:00:00+00:00"
    svc.close()


def test_standard_input_adds_up_and_the_same_stream_twice_is_unchanged(tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix")
    first = b'{"title": "One", "url": "https://x.org/1"}\n'
    second = b'{"title": "Two", "url": "https://x.org/2"}\n'
    report = Indexer(settings, embedder).index(["-"], stdin=io.BytesIO(first))
    assert report.articles == 1
    again = Indexer(settings, embedder).index(["-"], stdin=io.BytesIO(first))
    assert again.generation == report.generation and again.files_unchanged == 1
    more = Indexer(settings, embedder).index(["-"], stdin=io.BytesIO(second))
    assert more.articles == 2 and more.added == 1


def test_csv_and_gzip_files_are_updated_incrementally(tmp_path, embedder):
    settings = fake_settings(tmp_path / "ix")
    table = tmp_path / "news.csv.gz"
    table.write_bytes(gzip.compress(b"headline,link,category\nOne,https://x.org/1,A\nTwo,https://x.org/2,B\n"))
    first = Indexer(settings, embedder).index([tmp_path])
    assert first.articles == 2 and first.fields["topics"] == {"category": 2}
    same = Indexer(settings, embedder).index([tmp_path])
    assert same.generation == first.generation and same.files_unchanged == 1 and same.fields == {}
    table.write_bytes(gzip.compress(b"headline,link,category\nOne again,https://x.org/1,A\nTwo,https://x.org/2,B\n"))
    changed = Indexer(settings, embedder).index([tmp_path])
    assert (changed.added, changed.updated, changed.embedded) == (0, 1, 1)
