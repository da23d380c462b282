"""Ready means ready: the port opens at once, /api/health/ready is 503 until the model is loaded and
the index open and warm, and then no request pays for start-up."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

import search.embedding
from search.config import Settings
from search.embedding import HashEmbedder
from search.service import SearchService
from web.app import create_app
from webutil import served


class SlowModel:
    """Stands in for load_embedder: the first load blocks until released (an ONNX export, say); counts loads."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.loads = 0

    def __call__(self, *args, **kwargs) -> HashEmbedder:
        self.loads += 1
        assert self.release.wait(30), "never released"
        return HashEmbedder()


@pytest.fixture
def slow_model(monkeypatch) -> SlowModel:
    model = SlowModel()
    monkeypatch.setattr(search.embedding, "load_embedder", model)
    return model


def test_ready_only_after_the_warm_up(web_settings, slow_model: SlowModel) -> None:
    service = SearchService(web_settings)  # no embedder given: the service loads one
    app = create_app(web_settings, service, warm_up=True)
    client = app.test_client()
    try:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.get_json()["ready"] is False
        waiting = client.get("/api/health/ready")
        assert waiting.status_code == 503 and waiting.headers["Retry-After"]
        assert waiting.get_json()["error"]["type"] == "not_ready"

        slow_model.release.set()
        assert app.extensions["search_readiness"].wait(30)
        ready = client.get("/api/health/ready")
        assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
        assert client.get("/api/health").get_json()["ready"] is True
        assert client.get("/api/search?q=robots&mode=semantic").status_code == 200
        assert slow_model.loads == 1  # loaded during the warm-up, never by a request
    finally:
        slow_model.release.set()
        app.extensions["search_readiness"].wait(30)
        service.close()


def test_a_failed_warm_up_is_not_ready(tmp_path, web_settings) -> None:
    settings = Settings(index_dir=web_settings.index_dir, query_embedder="onnx", model_path=str(tmp_path / "no-model"))
    app = create_app(settings)
    assert app.extensions["search_readiness"].wait(30)
    response = app.test_client().get("/api/health/ready")
    assert response.status_code == 500 and response.get_json()["error"]["type"] == "model_error"
    assert str(tmp_path) not in response.get_data(as_text=True)
    assert app.test_client().get("/api/health").get_json()["ready"] is False
    app.extensions["search_service"].close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.model
@pytest.mark.slow
def test_serve_exports_the_model_before_it_is_ready(web_settings, tmp_path) -> None:
    """With an empty model cache, `search-cli serve` answers at once, exports the ONNX model in the
    background, and says ready only when the export is done; the first search then exports nothing."""
    from search.embedding import MODEL_NAME

    cache = tmp_path / "models"
    env = {"SEARCH_QUERY_EMBEDDER": "onnx", "SEARCH_MODEL_CACHE": str(cache)}
    index = tmp_path / "ix"
    import shutil

    shutil.copytree(web_settings.index_dir, index)
    manifest = next(index.glob("gen-*/manifest.json"))
    data = json.loads(manifest.read_text())
    data["model_name"] = MODEL_NAME  # the hash-built index passes for one of the real model's (same dim)
    manifest.write_text(json.dumps(data))
    with served(index, env, timeout=30) as url:
        assert get(url + "/api/health")[0] == 200
        status, body = get(url + "/api/health/ready")
        assert status == 503 and body["error"]["type"] == "not_ready"
        deadline = time.monotonic() + 120
        while get(url + "/api/health/ready")[0] != 200:
            assert time.monotonic() < deadline, "not ready after 120 s"
            time.sleep(0.2)
        exported = sorted(p for p in cache.rglob("*") if p.is_file())
        assert any(p.suffix == ".onnx" for p in exported)
        stamps = [p.stat().st_mtime_ns for p in exported]
        status, results = get(url + "/api/search?q=facial+recognition&mode=hybrid")
        assert status == 200 and results["hits"]
        assert sorted(p for p in cache.rglob("*") if p.is_file()) == exported
        assert [p.stat().st_mtime_ns for p in exported] == stamps


def test_the_warm_up_copes_with_any_title(tmp_path) -> None:
    """It searches the newest titles: one far over the query limit, or of punctuation only, must not fail it."""
    from search.indexer import Indexer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, title in enumerate(["word " * 600, "?!... ---", "A plain title"]):
        (corpus / f"{n}.md").write_text(
            f'---\ntitle: "{title}"\nwebUrl: "https://x.example/{n}"\npublishedDateTime: "2021-01-0{n + 1}"\n---\n',
            encoding="utf-8",
        )
    settings = Settings(index_dir=str(tmp_path / "ix"), query_embedder="hash", index_embedder="hash")
    Indexer(settings, HashEmbedder()).index([corpus])
    service = SearchService(settings, HashEmbedder())
    try:
        service.warm_up()
    finally:
        service.close()


def test_an_index_built_after_start_up_is_warmed_before_ready(tmp_path) -> None:
    from search.indexer import Indexer
    from webutil import SEEDS

    settings = Settings(index_dir=str(tmp_path / "ix"), query_embedder="hash", index_embedder="hash")
    app = create_app(settings)
    client, readiness = app.test_client(), app.extensions["search_readiness"]
    assert readiness.wait(30)
    assert client.get("/api/health/ready").get_json()["error"]["type"] == "index_missing"
    Indexer(settings, HashEmbedder()).index([SEEDS])
    first = client.get("/api/health/ready")
    assert first.status_code == 503 and first.get_json()["error"]["type"] == "not_ready"  # warming up on it
    assert readiness.wait(30)
    assert client.get("/api/health/ready").status_code == 200
    assert client.get("/api/health").get_json()["ready"] is True
    app.extensions["search_service"].close()
