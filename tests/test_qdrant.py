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


def test_each_full_build_is_a_collection_behind_the_alias(built, embedder, article_dir):
    backend = qdrant.QdrantBackend(built)
    first = backend.target()
    Indexer(built, embedder).index([SEEDS], rebuild=True)
    second = backend.target()
    Indexer(built, embedder).index([SEEDS], rebuild=True)
    third = backend.target()
    assert len({first, second, third}) == 3
    names = {c.name for c in backend.client("get_collections").collections}
    assert {second, third, f"{second}-meta", f"{third}-meta"} <= names  # the live build and the one it replaced
    assert first not in names and f"{first}-meta" not in names


def test_an_interrupted_build_is_dropped_and_the_live_one_kept(built, embedder):
    backend = qdrant.QdrantBackend(built)
    live = backend.live()
    writer = backend.writer(qdrant.ModelInfo(embedder.model_name, embedder.model_id, embedder.dim), None)
    unfinished = writer.collection
    assert backend.target() == live.handle  # nothing visible before publish
    backend.prepare()
    names = {c.name for c in backend.client("get_collections").collections}
    assert unfinished not in names and live.handle in names
    with SearchService(built, embedder) as svc:
        assert svc.search("export controls").hits[0].article.id == IBM


def test_stories_follow_the_story_model_of_the_release(built, embedder, monkeypatch):
    import search.indexer
    from search.stories import model_key

    backend = qdrant.QdrantBackend(built)
    first = backend.live()
    assert first.story_model == model_key()
    with SearchService(built, embedder) as svc:
        story = [a.id for a in svc.story(IBM).versions]
    monkeypatch.setattr(search.indexer, "model_key", lambda: "another-model")
    again = Indexer(built, embedder).index([SEEDS])  # no article changed, the story model did
    assert again.stories["model_changed"] == {"from": model_key(), "to": "another-model"}
    assert again.stories["recomputed"] == again.articles and again.embedded == 0
    live = backend.live()
    assert live.story_model == "another-model" and live.handle == first.handle  # updated in place
    with SearchService(built, embedder) as svc:
        assert [a.id for a in svc.story(IBM).versions] == story
    third = Indexer(built, embedder).index([SEEDS])
    assert "model_changed" not in third.stories and backend.live().version == live.version


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
    again = Indexer(target, embedder).index([SEEDS])  # the ledger and the story model came along: nothing to do
    assert (again.added, again.updated, again.embedded, again.files_unchanged) == (0, 0, 0, again.files)
    assert again.stories == {} and again.generation == build


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
    assert deleted.exit_code == 0 and "Removed 1 article(s); 10 remain (news-b000001+1)" in deleted.output
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


# -- updates in place ------------------------------------------------------------------------------
ARTICLE = '---\ntitle: "{title}"\nexcerpt: "{excerpt}"\nwebUrl: "{url}"\n---\n'
ROBOTAXI = article_id("https://mobility.example.com/robotaxi-pilot-night-rides")


@pytest.fixture
def calls(monkeypatch):
    """Every client call as (method, collection, points written), through the shared client wrapper."""
    seen = []
    call = qdrant._Client.__call__

    def counted(self, method, *args, **kwargs):
        points = kwargs.get("points", args[1] if len(args) > 1 else None)
        written = len(points) if method in ("upsert", "update_vectors") and isinstance(points, list) else 0
        seen.append((method, args[0] if args else kwargs.get("collection_name"), written))
        return call(self, method, *args, **kwargs)

    monkeypatch.setattr(qdrant._Client, "__call__", counted)
    return seen


def _written(calls, collection, method="upsert"):
    return sum(n for m, c, n in calls if m == method and c == collection)


def _state(settings) -> dict:
    """What must agree after any sequence of updates: the articles (content and sparse weights by term,
    since sparse indices differ between builds), term statistics, vocabulary, names, lengths, the ledger."""
    backend = qdrant.QdrantBackend(settings)
    client, live = backend.client, backend.target()
    meta = f"{live}-meta"
    terms = {p.payload["token"]: p.payload for p in qdrant._points(client, meta, qdrant._kind("term"))}
    token_of = {t["index"]: tok for tok, t in terms.items()}
    articles = {}
    for p in qdrant._points(client, live, payload=["content_hash"], vectors=["title", "excerpt"]):
        weights = {
            f: {token_of[i]: round(v, 4) for i, v in zip(p.vector[f].indices, p.vector[f].values, strict=True)}
            for f in ("title", "excerpt")
            if f in p.vector
        }
        articles[int(p.id)] = (p.payload["content_hash"], weights)
    records = {(p.payload["path"], p.payload["url"], p.payload["line"]) for p in qdrant._points(
        client, meta, qdrant._kind("record"))}  # fmt: skip
    info = backend.metadata(live)
    return {
        "articles": articles,
        "terms": {tok: (t["df"], t["cf"]) for tok, t in terms.items()},
        "vocabulary": dict(qdrant._load_vocabulary(client, meta).counts),
        "names": qdrant._load_json_chunks(client, meta, "names"),
        "ledger": backend.ledger(backend.live()),
        "records": records,
        "info": {k: info[k] for k in ("articles", "lengths", "averages")},
    }


def _journal(settings) -> int:
    backend = qdrant.QdrantBackend(settings)
    meta = f"{backend.target()}-meta"
    kinds = qdrant.qm.Filter(
        should=[qdrant._kind(k) for k in (*qdrant._JOURNAL, "touched")]
        + [qdrant.qm.HasIdCondition(has_id=[qdrant._UPDATE])]
    )
    return backend.client("count", meta, count_filter=kinds, exact=True).count


def _change(article_dir) -> None:
    """Two articles changed, two added, one file removed."""
    for name, old, new in (
        ("003_robotaxi_pilot.md", "Robotaxi pilot expands", "Robotaxi service expands"),
        ("001_chip_export_rules.md", "export", "import"),
    ):
        target = article_dir / name
        target.write_text(target.read_text().replace(old, new, 1))
    for n, (title, excerpt) in enumerate((("Quantum sensors map volcano", "Muons image magma."),
                                         ("Glacier robots sample meltwater", "Autonomous boats on ice."))):  # fmt: skip
        (article_dir / f"new{n}.md").write_text(
            ARTICLE.format(title=title, excerpt=excerpt, url=f"https://q.example/{n}")
        )
    (article_dir / "004_speech_recognition_languages.md").unlink()


def test_an_update_writes_into_the_live_collection_in_proportion_to_the_change(settings, embedder, article_dir, calls):
    built = settings
    Indexer(built, embedder).index([article_dir])
    backend = qdrant.QdrantBackend(built)
    live = backend.target()
    calls.clear()
    assert Indexer(built, embedder).index([article_dir]).files_unchanged == 6  # nothing to write
    assert _written(calls, live) == 0 and _written(calls, f"{live}-meta") == 0
    target = article_dir / "003_robotaxi_pilot.md"
    target.write_text(target.read_text().replace("Robotaxi pilot expands", "Robotaxi service expands"))
    calls.clear()
    report = Indexer(built, embedder).index([article_dir])
    assert report.updated == 1 and report.generation == f"{live}+1" and backend.target() == live
    assert not any(m == "create_collection" for m, _, _ in calls)
    assert _written(calls, live) == 1  # the one article, with its sparse vectors
    assert _written(calls, live, "update_vectors") == 0  # the averages barely moved: no rewrite
    assert _written(calls, f"{live}-meta") < 60  # its records, journal and statistics, not the corpus's
    assert _journal(built) == 0
    with SearchService(built, embedder) as svc:
        assert svc.search("robotaxi service", mode="keyword").hits[0].article.id == ROBOTAXI
        assert svc.stats()["generation"] == f"{live}+1"


def test_a_delete_removes_points_in_place(built, embedder, calls):
    backend = qdrant.QdrantBackend(built)
    live, before = backend.target(), backend.live().articles
    unique = qdrant.token("robotaxi")
    assert qdrant._terms(backend.client, f"{live}-meta", [unique])[unique].df["title"] == 1
    calls.clear()
    report = Indexer(built, embedder).delete([ROBOTAXI])
    assert report.removed == 1 and backend.target() == live and backend.live().articles == before - 1
    assert not any(m == "create_collection" for m, _, _ in calls) and _written(calls, live) == 0
    assert backend.client("retrieve", live, ids=[qdrant.id_to_int(ROBOTAXI)]) == []
    assert unique not in qdrant._terms(backend.client, f"{live}-meta", [unique])  # its only article went
    with SearchService(built, embedder) as svc:
        assert svc.search("robotaxi", mode="keyword").total == 0


def test_the_averages_are_kept_within_the_tolerance_and_rewritten_past_it(
    built, embedder, article_dir, calls, monkeypatch
):
    backend = qdrant.QdrantBackend(built)
    live = backend.target()
    stored = backend.metadata(live)["averages"]
    long = " ".join(f"word{n}" for n in range(60))
    (article_dir / "long.md").write_text(ARTICLE.format(title=long, excerpt=long, url="https://l.example/1"))
    monkeypatch.setattr(qdrant, "DRIFT", 10.0)  # a tolerance nothing moves past
    Indexer(built, embedder).index([article_dir])
    info = backend.metadata(live)
    assert _written(calls, live, "update_vectors") == 0 and info["averages"] == stored
    assert info["lengths"]["title"] / info["articles"] > stored["title"] * 1.05  # the true average moved
    monkeypatch.setattr(qdrant, "DRIFT", 0.05)
    (article_dir / "long.md").write_text(ARTICLE.format(title=long, excerpt="Short.", url="https://l.example/1"))
    calls.clear()
    Indexer(built, embedder).index([article_dir])
    info = backend.metadata(live)
    assert _written(calls, live, "update_vectors") == info["articles"] == 12  # every sparse vector, once
    assert info["averages"] == {f: info["lengths"][f] / info["articles"] for f in ("title", "excerpt")}


def test_an_interrupted_delete_is_finished_by_the_next_writer(built, embedder, monkeypatch):
    backend = qdrant.QdrantBackend(built)
    live, unique = backend.target(), qdrant.token("robotaxi")
    monkeypatch.setattr(qdrant, "_apply", lambda *args: (_ for _ in ()).throw(RuntimeError("stopped")))
    with pytest.raises(RuntimeError, match="stopped"):
        Indexer(built, embedder).delete([ROBOTAXI])
    monkeypatch.undo()
    assert unique in qdrant._terms(backend.client, f"{live}-meta", [unique]) and _journal(built) > 0
    again = Indexer(built, embedder).delete([ROBOTAXI])  # already gone: nothing to write, but finished
    assert again.not_found == [ROBOTAXI] and _journal(built) == 0 and backend.live().articles == 10
    assert unique not in qdrant._terms(backend.client, f"{live}-meta", [unique])


@pytest.mark.parametrize("stop", ["write", "apply"])
def test_an_interrupted_update_converges_when_run_again(tmp_path, embedder, article_dir, monkeypatch, stop):
    """Stopped between two batches (or while storing the statistics), an update leaves its sources
    pending; running the same command again ends where one uninterrupted run would have."""
    from search import indexer as indexer_module

    monkeypatch.setattr(qdrant, "DRIFT", 0.0)  # exact averages, so the sparse weights can be compared
    settings = backend_settings("qdrant", tmp_path / "updated")
    Indexer(settings, embedder).index([article_dir])
    _change(article_dir)
    monkeypatch.setattr(indexer_module, "BATCH", 2)  # several batches
    if stop == "write":
        write, done = qdrant.QdrantUpdate.write, []

        def fail_second(self, *args):
            done.append(1)
            if len(done) == 2:
                raise RuntimeError("stopped")
            return write(self, *args)

        monkeypatch.setattr(qdrant.QdrantUpdate, "write", fail_second)
    else:
        monkeypatch.setattr(qdrant, "_apply", lambda *args: (_ for _ in ()).throw(RuntimeError("stopped")))
    with pytest.raises(RuntimeError, match="stopped"):
        Indexer(settings, embedder).index([article_dir], prune=True)
    monkeypatch.undo()
    monkeypatch.setattr(qdrant, "DRIFT", 0.0)
    backend = qdrant.QdrantBackend(settings)
    assert "" in backend.ledger(backend.live()).values() and _journal(settings) > 0  # pending, to be redone
    again = Indexer(settings, embedder).index([article_dir], prune=True)
    assert again.removed >= (1 if stop == "write" else 0) and _journal(settings) == 0
    rebuilt = backend_settings("qdrant", tmp_path / "rebuilt")
    Indexer(rebuilt, embedder).index([article_dir])
    assert _state(settings) == _state(rebuilt)
    last = Indexer(settings, embedder).index([article_dir], prune=True)
    assert (last.added, last.updated, last.removed, last.files_changed) == (0, 0, 0, 0)


def test_a_build_asks_for_the_cluster_layout_and_quantisation_of_the_settings(settings, embedder, monkeypatch):
    """Local mode ignores shards, replicas and quantisation, so what is checked is what the server is asked for."""
    created = {}
    real = qdrant._Client.__call__

    def recorded(self, method, *args, **kwargs):
        if method == "create_collection" and "-b" in args[0]:  # a build's collections, not the writer lock's
            created[args[0]] = kwargs
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(qdrant._Client, "__call__", recorded)
    cluster = settings.with_overrides(
        qdrant_shards=6, qdrant_replicas=2, qdrant_write_consistency=1, qdrant_quantization="int8"
    )
    Indexer(cluster, embedder).index([SEEDS])
    articles = next(kw for name, kw in created.items() if not name.endswith("-meta"))
    meta = next(kw for name, kw in created.items() if name.endswith("-meta"))
    for kwargs in (articles, meta):
        assert (kwargs["shard_number"], kwargs["replication_factor"], kwargs["write_consistency_factor"]) == (6, 2, 1)
    assert articles["quantization_config"].scalar.type == "int8" and articles["vectors_config"]["dense"].on_disk
    with SearchService(cluster, embedder) as svc:
        assert svc.search("facial recognition").total > 0


def test_cluster_settings_are_checked():
    from search.config import Settings

    with pytest.raises(ConfigError, match="qdrant_quantization"):
        Settings().with_overrides(qdrant_quantization="pq")
    with pytest.raises(ConfigError, match="must not exceed qdrant_replicas"):
        Settings().with_overrides(qdrant_replicas=1, qdrant_write_consistency=2)
    with pytest.raises(ConfigError, match="qdrant_shards"):
        Settings().with_overrides(qdrant_shards=0)


def test_reading_a_missing_local_folder_creates_nothing_and_a_file_is_refused(tmp_path):
    env = {"SEARCH_INDEX_EMBEDDER": "hash", "SEARCH_QUERY_EMBEDDER": "hash", "SEARCH_BACKEND": "qdrant"}
    for command in (("query", "x"), ("stats",), ("show", IBM), ("delete", IBM)):
        result = CliRunner().invoke(main, list(command), env={**env, "SEARCH_QDRANT_PATH": str(tmp_path / "none")})
        assert result.exit_code == 1 and "No index in Qdrant" in result.output, result.output
        assert not (tmp_path / "none").exists()
    (tmp_path / "plain").write_text("not a folder")
    result = CliRunner().invoke(main, ["query", "x"], env={**env, "SEARCH_QDRANT_PATH": str(tmp_path / "plain")})
    assert result.exit_code == 1 and "qdrant_path" in result.output and "not a directory" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
