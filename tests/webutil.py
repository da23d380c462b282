"""Helpers shared by the web, API, OpenAPI and browser tests: a small index built once.

The corpus is ``seeds/`` plus a handful of articles written here, chosen to give the pages
something to show: several providers, topics and dates, publisher-listed related items, and
a hostile article (a ``<script>`` title, HTML in every field, ``javascript:`` URLs) for the escaping tests.
"""

from __future__ import annotations

import html
import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from search.config import Settings
from search.embedding import HashEmbedder
from search.indexer import Indexer
from search.service import SearchService
from search.urls import article_id

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
IBM_TITLE = "IBM says U.S. should adopt new export controls on facial recognition systems"
IBM_URL = "https://cn.reuters.com/article/ibm-facial-recognition-exports-idCNL1N2G8043"
XSS_TITLE = "<script>alert(1)</script>"
XSS_URL = "javascript:alert(document.domain)//evil"

# title, provider, topics, published, excerpt, url slug, related slugs
EXTRA = [
    (
        "Commerce Department tightens export rules for AI chips",
        "Financial Times",
        ["Semiconductors", "AI"],
        "2021-01-15T09:00:00Z",
        "New restrictions on the export of advanced semiconductors aim at military uses of AI.",
        "ft-chips",
        ["oregon-ban", "politico-scrutiny"],
    ),
    (
        "Portland bans facial recognition in shops and restaurants",
        "The Oregonian",
        ["Computer Vision", "Policy"],
        "2020-09-10T18:30:00Z",
        "The city council voted to ban private use of facial recognition technology in public places.",
        "oregon-ban",
        [],
    ),
    (
        "Facial recognition firms face scrutiny from European privacy regulators",
        "Politico Europe",
        ["Computer Vision", "Policy"],
        "2020-10-02T07:15:00Z",
        "Regulators question whether facial recognition systems sold to police respect human rights.",
        "politico-scrutiny",
        [],
    ),
    (
        "Walking robot uses neural network to change gaits",
        "IEEE Spectrum",
        ["Robotics"],
        "2020-04-15T12:00:00Z",
        "A four-legged robot learned to switch between walking and trotting with a neural network controller.",
        "ieee-gaits",
        ["tc-warehouse"],
    ),
    (
        "Warehouse robots learn to pick unfamiliar objects",
        "TechCrunch",
        ["Robotics", "AI"],
        "2021-06-01T16:45:00Z",
        "Robot arms trained in simulation now pick objects they have never seen before.",
        "tc-warehouse",
        [],
    ),
    (
        "New language model writes convincing news articles",
        "The Verge",
        ["Natural Language Processing", "AI"],
        "2020-07-20T10:00:00Z",
        "Researchers warn that a large language model can write fake news at scale.",
        "verge-language",
        [],
    ),
    (
        "Speech recognition improves for accented English",
        "VentureBeat",
        ["Speech Recognition", "AI"],
        "2020-05-05T08:00:00Z",
        "Voice assistants now understand more accents after training on diverse speech data.",
        "vb-speech",
        [],
    ),
    (
        "Hospitals use computer vision to monitor patients",
        "Network World",
        ["Computer Vision", "Healthcare"],
        "2020-04-14T19:41:00Z",
        "Cameras and computer vision help nurses monitor patients in intensive care.",
        "nw-hospitals",
        [],
    ),
    (
        "Self-driving startup settles trade secrets lawsuit",
        "Reuters",
        ["Autonomous Vehicles"],
        "2020-04-15T15:00:00Z",
        "The self-driving car startup agreed to settle a lawsuit over stolen trade secrets.",
        "reuters-zoox",
        [],
    ),
]


def slug_url(slug: str) -> str:
    return f"https://news.example.com/{slug}"


def _front_matter(fields: dict) -> str:
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in fields.items()] + ["---", ""]
    return "\n".join(lines)


def write_corpus(folder: Path) -> Path:
    """The extra articles as Markdown files with YAML front matter (JSON scalars are valid YAML)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, (title, provider, topics, published, excerpt, slug, related) in enumerate(EXTRA):
        fields = {
            "title": title,
            "excerpt": excerpt,
            "publishedDateTime": published,
            "webUrl": slug_url(slug),
            "provider": {"name": provider},
            "topics": topics,
            "related": [{"title": f"Related: {r}", "webUrl": slug_url(r)} for r in related],
        }
        (folder / f"{n:03d}_{slug}.md").write_text(_front_matter(fields), encoding="utf-8")
    hostile = {  # markup written as entities: stored as the text they stand for, which pages must show as text
        "title": html.escape(XSS_TITLE),
        "excerpt": html.escape('Control <b>panels</b> & "quotes" <img src=x onerror=alert(2)>'),
        "publishedDateTime": "2020-06-01T00:00:00Z",
        "webUrl": XSS_URL,
        "provider": {"name": "<i>Evil</i> News"},
        "topics": ["<u>Hacks</u>"],
        "images": [{"url": "javascript:alert(4)"}],
    }
    (folder / "900_hostile.md").write_text(_front_matter(hostile), encoding="utf-8")
    return folder


def build_index(root: Path) -> Settings:
    """Index seeds/ and the extra articles into ``root``/index; return settings that point there."""
    settings = Settings(index_dir=str(root / "index"), query_embedder="hash", index_embedder="hash")
    corpus = write_corpus(root / "corpus")
    Indexer(settings, HashEmbedder()).index([SEEDS, corpus])
    return settings


def make_service(settings: Settings) -> SearchService:
    return SearchService(settings, HashEmbedder())


@pytest.fixture(scope="session")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_index(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="session")
def web_service(web_settings: Settings):
    service = make_service(web_settings)
    yield service
    service.close()


@pytest.fixture(scope="session")
def web_app(web_settings: Settings, web_service: SearchService):
    from web.app import create_app

    return create_app(web_settings, web_service)


@pytest.fixture()
def client(web_app):
    return web_app.test_client()


IBM_ID = article_id(IBM_URL)
XSS_ID = article_id(XSS_URL)


@contextmanager
def served(index_dir: str | Path, env: dict[str, str] | None = None, timeout: float = 30) -> Iterator[str]:
    """A real ``search-cli serve`` process on a free 127.0.0.1 port; yields its base URL (no trailing slash).

    ``env`` adds to the environment (the hash embedders are the default here).
    """
    environ = {**os.environ, "SEARCH_QUERY_EMBEDDER": "hash", "SEARCH_INDEX_EMBEDDER": "hash", **(env or {})}
    args = [sys.executable, "-m", "search.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--threads", "2"]
    proc = subprocess.Popen(
        [*args, "--index-dir", str(index_dir)],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, f"search-cli serve did not say where it listens: {line!r}"
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
