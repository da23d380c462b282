"""Shared fixtures: a small index built from seeds/ with the deterministic hash embedder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from search.config import Settings
from search.embedding import HashEmbedder
from search.indexer import Indexer
from search.service import SearchService

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "smartable-ai"
IBM_TITLE = "IBM says U.S. should adopt new export controls on facial recognition systems"


def shared_or_skip(path: Path) -> Path:
    """``path`` under ../shared; skipped where ../shared is absent, but never in CI."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def embedder() -> HashEmbedder:
    return HashEmbedder()


def fake_settings(index_dir: Path, **overrides) -> Settings:
    return Settings(index_dir=str(index_dir), query_embedder="hash", index_embedder="hash").with_overrides(**overrides)


BACKENDS = ("local", "qdrant")


def backend_settings(backend: str, folder: Path, **overrides) -> Settings:
    """Hash-embedder settings for an index in ``folder`` on ``backend``: local files, or an in-process
    Qdrant (local mode) in ``folder/qdrant``; skipped when the Qdrant client is not installed."""
    if backend == "qdrant":
        pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed: pip install '.[qdrant]'")
        overrides = {"backend": "qdrant", "qdrant_path": str(folder / "qdrant"), **overrides}
    return fake_settings(folder / "index", **overrides)


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, embedder) -> Settings:
    """An index of seeds/ built once per session (read-only for tests)."""
    settings = fake_settings(tmp_path_factory.mktemp("seed-index"))
    Indexer(settings, embedder).index([SEEDS])
    return settings


@pytest.fixture
def service(seed_index, embedder) -> SearchService:
    svc = SearchService(seed_index, embedder)
    yield svc
    svc.close()


@pytest.fixture
def article_dir(tmp_path) -> Path:
    """A writable copy of seeds/ for tests that change files."""
    target = tmp_path / "articles"
    shutil.copytree(SEEDS, target)
    return target


# The web tests' fixtures (an index of seeds/ plus pages-oriented extras), built once per run.
from webutil import client, web_app, web_service, web_settings  # noqa: E402,F401
