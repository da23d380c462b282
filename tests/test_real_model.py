"""The real all-MiniLM-L6-v2 model end to end (the slower tier; CI runs it)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import IBM_TITLE, ROOT, SEEDS
from search.config import Settings
from search.indexer import Indexer
from search.service import SearchService

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    settings = Settings(index_dir=str(tmp_path_factory.mktemp("real")))
    report = Indexer(settings).index([SEEDS])
    assert report.articles >= 10 and report.skipped == []
    return settings


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
def test_export_controls_puts_the_ibm_story_first(real_index, mode):
    service = SearchService(real_index)
    assert service.search("export controls", mode=mode).hits[0].article.title == IBM_TITLE
    service.close()


def test_related_lists_facial_recognition_stories(real_index):
    service = SearchService(real_index)
    ibm = service.search("export controls", mode="keyword").hits[0].article
    hits = service.related(ibm.id, limit=5).hits
    assert sum("facial recognition" in h.article.title.lower() for h in hits) >= 3
    service.close()


def test_cli_query_does_not_import_torch(real_index):
    """The query path embeds with ONNX Runtime: a fresh process never imports torch."""
    code = (
        "import sys, json; from click.testing import CliRunner; from search.cli import main; "
        f"args = ['query', 'export controls', '--json', '--index-dir', {real_index.index_dir!r}]; "
        "r = CliRunner().invoke(main, args); "
        "print(json.dumps({'out': r.output, 'torch': 'torch' in sys.modules, "
        "'st': 'sentence_transformers' in sys.modules}))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(result["out"])["hits"][0]["title"] == IBM_TITLE
    assert not result["torch"] and not result["st"]
