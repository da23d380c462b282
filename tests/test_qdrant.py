"""The Qdrant backend's own behaviour (local mode): stored tokens, caps and exactness, builds behind the
alias, the writer lock, settings errors, moving a local index in, and the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SEEDS, backend_settings, fake_settings
from search.cli import main
from search.errors import ConfigError, IndexLocked
from search.indexer import Indexer
from search.service import SearchService
from search.urls import article_id

qdrant = pytest.importorskip("search.qdrant")
pytest.importorskip("qdrant_client")
IBM = article_id("https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043")


@pytest.fixture
def settings(tmp_path):
    return backend_settings("qdrant", tmp_path)


@pytest.fixture
def built(settings, embedder):
    Indexer(settings, embedder).index([SEEDS])
    return settings


def test_tokens_survive_any_tokenizer():
    assert qdrant.token("export") == "export" and qdrant.token("2020") == "2020"
    odd = [qdrant.token(t) for t in ("u.s", "café", "under_score", "f***")]
    assert all(t.isalnum() and t.isascii() and t.startswith("x") for t in odd) and len(set(odd)) == 4
    assert qdrant.tokens("The U.S. export controls") == [qdrant.token("u."), "export", "control"]  # "u.s" stems to "u."
    assert qdrant.domain_suffixes("News.BBC.co.uk") == ["news.bbc.co.uk", "bbc.co.uk", "co.uk", "uk"]
    assert qdrant.domain_suffixes("") == []


def test_payload_holds_filters_terms_and_sequences(built):
    backend = qdrant.QdrantBackend(built)
    point = backend.client("retrieve", backend.target(), ids=[qdrant.id_to_int(IBM)], with_payload=True)[0]
    p = point.payload
    assert p["provider_key"] == "reuters" and "reuters.com" in p["domains"] and p["published_at"] > 0
    assert "export" in p["title_terms"] and p["title_seq"].split()[:2] == ["ibm", "sai"]
    assert set(p["terms"]) == set(p["title_terms"]) | set(p["excerpt_terms"])
    vectors = backend.client("retrieve", backend.target(), ids=[point.id], with_vectors=True)[0].vector
    assert len(vectors["dense"]) == 384 and len(vectors["title"].indices) == len(set(p["title_seq"].split()))


def test_past_the_cap_totals_are_a_lower_bound(built, embedder, monkeypatch):
    with SearchService(built, embedder) as svc:
        full = svc.search("recognition", mode="keyword", collapse=False)
        assert full.total_relation == "eq" and full.total >= 4
        monkeypatch.setattr(qdrant, "CAP", 2)
        capped = svc.search("recognition", mode="keyword", collapse=False)
        assert capped.total_relation == "gte" and capped.total <= 2 < full.total
        assert capped.hits[0].article.id == full.hits[0].article.id  # the best ones are kept
        meaning = svc.search("facial recognition cameras police", mode="semantic", collapse=False)
        assert meaning.total_relation == "gte"
        assert svc.search("xqzv", mode="hybrid").total_relation == "eq"


def test_each_build_is_a_collection_behind_the_alias(built, embedder, article_dir):
    backend = qdrant.QdrantBackend(built)
    first = backend.target()
    Indexer(built, embedder).index([article_dir])  # an update: a copy, published
    second = backend.target()
    target = article_dir / "003_robotaxi_pilot.md"
    target.write_text(target.read_text().replace("Robotaxi pilot expands", "Robotaxi service expands"))
    Indexer(built, embedder).index([article_dir])
    third = backend.target()
    assert len({first, second, third}) == 3
    names = {c.name for c in backend.client("get_collections").collections}
    assert {second, third, f"{second}-meta", f"{third}-meta"} <= names  # the live build and the one it replaced
    assert first not in names and f"{first}-meta" not in names


def test_an_interrupted_build_is_dropped_and_the_live_one_kept(built, embedder):
    backend = qdrant.QdrantBackend(built)
    live = backend.live()
    writer = backend.writer(qdrant.ModelInfo(embedder.model_name, embedder.model_id, embedder.dim), live)
    unfinished = writer.collection
    assert backend.target() == live.handle  # nothing visible before publish
    backend.prepare()
    names = {c.name for c in backend.client("get_collections").collections}
    assert unfinished not in names and live.handle in names
    with SearchService(built, embedder) as svc:
        assert svc.search("export controls").hits[0].article.id == IBM


def test_a_model_change_needs_a_rebuild(built):
    backend = qdrant.QdrantBackend(built)
    with pytest.raises(ConfigError, match="--rebuild"):
        backend.writer(qdrant.ModelInfo("other-model", "other:1", 384), backend.live())


def test_one_writer_at_a_time(built):
    backend = qdrant.QdrantBackend(built)
    with backend.lock(0):
        with pytest.raises(IndexLocked, match="another writer"):
            with backend.lock(0):
                pass
    with backend.lock(0):  # released
        pass


def test_a_dead_writers_lock_is_taken_over(built):
    backend = qdrant.QdrantBackend(built)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"owner": "crashed", "host": qdrant.socket.gethostname(), "pid": int(gone.stdout), "since": 0}
    backend.client("upsert", backend.names.lock, [qdrant.qm.PointStruct(id=1, vector={}, payload=holder)])
    with backend.lock(0):
        pass


def test_settings_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="qdrant_url .* or qdrant_path"):
        qdrant.QdrantBackend(fake_settings(tmp_path, backend="qdrant"))
    with pytest.raises(ConfigError, match="qdrant_collection"):
        qdrant.QdrantBackend(
            fake_settings(tmp_path, backend="qdrant", qdrant_path=str(tmp_path), qdrant_collection="a b")
        )


def test_a_folder_open_in_another_process_is_reported(tmp_path):
    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from qdrant_client import QdrantClient; c = QdrantClient(path={str(folder)!r}); "
         "print('open', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(IndexLocked, match="another process"):
            qdrant.QdrantBackend(fake_settings(tmp_path, backend="qdrant", qdrant_path=str(folder)))
    finally:
        holder.communicate("\n", timeout=30)


def test_export_moves_a_local_index_without_embedding(tmp_path, embedder, seed_index):
    target = backend_settings("qdrant", tmp_path)
    build, count = qdrant.import_local(seed_index.index_path, target)
    assert count == 11 and build.startswith("news-b")
    with SearchService(seed_index, embedder) as local, SearchService(target, embedder) as moved:
        for text in ("export controls", "facial recognition police", '"facial recognition"', "recogn*"):
            a, b = local.search(text, limit=20), moved.search(text, limit=20)
            assert [h.article.id for h in a.hits] == [h.article.id for h in b.hits] and a.total == b.total
        assert [a.id for a in moved.story(IBM).versions] == [a.id for a in local.story(IBM).versions]
    again = Indexer(target, embedder).index([SEEDS])  # the ledger came along: nothing to do
    assert (again.added, again.updated, again.embedded, again.files_unchanged) == (0, 0, 0, again.files)


def test_the_cli_runs_against_qdrant(tmp_path):
    env = {"SEARCH_INDEX_EMBEDDER": "hash", "SEARCH_QUERY_EMBEDDER": "hash", "SEARCH_QDRANT_PATH": str(tmp_path / "q")}
    run = lambda *args: CliRunner().invoke(main, [*args, "--index-dir", str(tmp_path / "ix")], env=env)  # noqa: E731
    indexed = run("index", str(SEEDS), "--backend", "qdrant")
    assert indexed.exit_code == 0, indexed.output
    assert "11 articles in Qdrant" in indexed.output and "collection news-b000001" in indexed.output
    found = run("query", "export controls", "--backend", "qdrant", "--json")
    assert found.exit_code == 0 and json.loads(found.output)["hits"][0]["id"] == IBM
    stats = json.loads(run("stats", "--backend", "qdrant", "--json").output)
    assert stats["backend"] == "qdrant" and stats["articles"] == 11 and stats["generation"] == "news-b000001"
    assert run("show", IBM, "--backend", "qdrant").exit_code == 0
    assert run("related", IBM, "--backend", "qdrant").exit_code == 0
    assert run("story", IBM, "--backend", "qdrant").exit_code == 0
    deleted = run("delete", IBM, "--backend", "qdrant")
    assert deleted.exit_code == 0 and "Removed 1 article(s); 10 remain (news-b000002)" in deleted.output
    missing = run("query", "x", "--backend", "local")
    assert missing.exit_code == 1 and "No index in" in missing.output


def test_eval_runs_against_an_in_process_qdrant(monkeypatch):
    toy = os.path.join(os.path.dirname(__file__), "data", "toy_beir")
    env = {"SEARCH_INDEX_EMBEDDER": "hash", "SEARCH_QUERY_EMBEDDER": "hash"}
    local = CliRunner().invoke(main, ["eval", toy, "--json"], env=env)
    remote = CliRunner().invoke(main, ["eval", toy, "--json", "--backend", "qdrant"], env=env)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a, b = json.loads(local.output), json.loads(remote.output)
    assert b["settings"]["backend"] == "qdrant" and a["settings"]["backend"] == "local"
    for mode in ("keyword", "semantic", "hybrid"):
        assert a["modes"][mode]["mean"]["ndcg@10"] == pytest.approx(b["modes"][mode]["mean"]["ndcg@10"], abs=1e-9)


def test_the_web_api_serves_a_qdrant_index(built, embedder):
    from web.app import create_app

    with SearchService(built, embedder) as svc:
        client = create_app(built, svc).test_client()
        body = client.get("/api/search?q=export+controls&mode=hybrid").get_json()
        assert body["hits"][0]["id"] == IBM and body["total_relation"] == "eq"
        assert client.get(f"/api/articles/{IBM}/related").status_code == 200
        assert client.get("/api/stats").get_json()["backend"] == "qdrant"
        assert "export controls" in client.get("/search?q=export+controls").get_data(as_text=True).lower()


def test_short_postings_and_the_server_filter_find_the_same_match_sets(built, monkeypatch):
    from search import matching
    from search.query import parse

    reader = qdrant.QdrantBackend(built).open_reader()
    asked = {}
    for text in ("facial recognition police", "export controls", "recognition speech languages", "ban OR vote"):
        plan = parse(text)
        words = matching.resolve(plan, reader.terms, reader.known, reader.vocabulary)
        need = matching.required(len(words.groups), plan.any_word, 2, 0.6)
        asked[text] = (words, need, reader.keyword_match(words.groups, need, words.scoring, None))
    assert all(1 <= len(found) < 8 for _, _, found in asked.values())

    def refuse(*args):
        raise AssertionError("postings counted here")

    monkeypatch.setattr(qdrant.QdrantReader, "_count_groups", refuse)
    for text, (words, need, counted) in asked.items():
        monkeypatch.setattr(qdrant, "CAP", len(counted))  # postings add up past it: the server filters, exactly
        filtered = reader.keyword_match(words.groups, need, words.scoring, None)
        assert filtered.exact and filtered.keys.tolist() == counted.keys.tolist(), text
        assert np.allclose(filtered.scores, counted.scores), text
