"""Scale: build, disk, memory and latency at 100k articles, and a linear estimate for 1M."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench.common import Context, dir_size, loadavg, size_label, target, write_result
from bench.corpus import build_corpus, load_pool
from bench.indexing import build, ensure_index, index_dir, summary
from bench.queries import make_queries
from bench.query import warm_figures
from bench.serving import serve_run
from search import generations as gen


def disk(ix: Path) -> dict:
    """Bytes of the live generation by part, and of the embedding cache."""
    live = gen.require_current(ix)
    parts = {p.name: dir_size(p) if p.is_dir() else p.stat().st_size for p in live.iterdir()}
    cache = ix / "cache"
    return {
        "generation_bytes": sum(parts.values()),
        "parts": parts,
        "embedding_cache_bytes": dir_size(cache) if cache.exists() else 0,
    }


def _line(x0: float, y0: float, x1: float, y1: float, x: float) -> float:
    """y at x on the line through (x0, y0) and (x1, y1)."""
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def estimate(points: dict[int, dict], n: int) -> dict:
    """Linear extrapolation of build time, disk and serving memory from two measured sizes to ``n``."""
    (a, fa), (b, fb) = sorted(points.items())[:2]
    keys = ("build_s", "build_cpu_s", "disk_mb", "server_rss_mb", "build_peak_rss_mb", "hybrid_p50_ms", "faiss_ms")
    return {k: round(_line(a, fa[k], b, fb[k], n), 1) for k in keys if fa.get(k) is not None and fb.get(k) is not None}


def _point(build_run: dict, ix: Path, serve: dict | None, warm: dict | None) -> dict:
    d = disk(ix)
    parts = (warm or {}).get("breakdown_ms", {})
    full = build_run["embedded"] == build_run["articles"]  # a build from the embedding cache is not comparable
    return {
        "build_s": build_run["wall_s"] if full else None,
        "build_cpu_s": build_run.get("cpu_s") if full else None,
        "build_peak_rss_mb": build_run["max_rss_mb"],
        "disk_mb": round((d["generation_bytes"] + d["embedding_cache_bytes"]) / 2**20, 1),
        "server_rss_mb": serve["server_peak_rss_mb"] if serve else None,
        "hybrid_p50_ms": warm["hybrid_miss"]["p50"] if warm else None,
        "faiss_ms": parts.get("faiss: search"),
        "whoosh_ms": sum(v for k, v in parts.items() if k.startswith("whoosh")) if parts else None,
    }


def bench_scale(ctx: Context) -> Path:
    """Target 6 (and the 100k parts of 2 and 5): the scale corpus end to end."""
    started = time.perf_counter()
    t0 = time.perf_counter()
    corpus = build_corpus(ctx.scale, "md", ctx.seed, ctx.corpora, ctx.source)
    generated = time.perf_counter() - t0
    ix = index_dir(ctx, ctx.scale)
    reuse = ctx.reuse_cache and (ix / "cache").is_dir()
    if not reuse:
        shutil.rmtree(ix, ignore_errors=True)
    load_before = loadavg()
    built = summary(build(ctx, corpus, ix, *(["--rebuild"] if reuse else [])))
    figures: dict = {
        "embedding_cache_reused": reuse,
        "corpus": str(corpus),
        "corpus_generation_s": round(generated, 1),
        "loadavg_before": load_before,
        "build": built,
        "disk": disk(ix),
    }
    figures["build_peak_rss_mb"] = memory_points(ctx, built)
    figures["warm"] = warm_figures(ctx, ix, max(ctx.queries // 2, 20))
    queries = make_queries(load_pool(ctx.source), ctx.serve_requests + 100, ctx.seed + 4)
    quick = Context(**{**ctx.__dict__, "serve_seconds": min(ctx.serve_seconds, 15)})
    figures["serve"] = serve_run(quick, ix, max(ctx.serve_threads), queries)
    points = {ctx.scale: _point(built, ix, figures["serve"], figures["warm"])}
    small = _small_point(ctx)
    if small:
        points[ctx.size] = small
        figures["estimate_1m"] = estimate(points, 1_000_000)
    figures["points"] = {str(k): v for k, v in points.items()}
    n = size_label(ctx.scale)
    cmd = "python -m bench.run_all scale"
    targets = [
        target(
            f"Warm hybrid p50, {n} articles, distinct queries", figures["warm"]["hybrid_miss"]["p50"], 40, "ms", cmd
        ),
        target(
            f"Server RSS while serving {n} articles",
            figures["serve"]["server_peak_rss_mb"],
            1536,
            "MB",
            figures["serve"]["command"],
        ),
    ]
    targets.append(target(f"Indexing peak RSS at {n}", built["max_rss_mb"], 1024, "MB", built["command"]))
    if not reuse:  # a build from the embedding cache says nothing about indexing speed
        targets.append(
            target(
                f"Indexing {n} articles end to end", built["docs_per_second"], 300, "articles/s", built["command"], ">="
            )
        )
    return write_result(ctx, "scale", figures, targets, started)


def memory_points(ctx: Context, built: dict) -> dict[str, dict]:
    """Peak RSS of a first build at the headline size, half the scale and the scale (``built``): flat, or growing?"""
    points = {}
    for size in sorted({ctx.size, ctx.scale // 2} - {ctx.scale}):
        corpus = build_corpus(size, "md", ctx.seed, ctx.corpora, ctx.source)
        ix = index_dir(ctx, size, "md", "-mem")
        shutil.rmtree(ix, ignore_errors=True)
        points[str(size)] = _memory(summary(build(ctx, corpus, ix)))
        shutil.rmtree(ix, ignore_errors=True)
    points[str(ctx.scale)] = _memory(built)
    return points


def _memory(run: dict) -> dict:
    keys = ("articles", "max_rss_mb", "embedded", "docs_per_second", "wall_s", "command", "loadavg_after")
    return {k: run[k] for k in keys}


def _small_point(ctx: Context) -> dict | None:
    """The headline size's figures from the index and serve results, if they were run."""
    try:
        index, serve, warm = (
            json.loads((ctx.results / f"{name}.json").read_text())["figures"] for name in ("index", "serve", "warm")
        )
    except (OSError, KeyError, ValueError):
        return None
    if index.get("articles") != ctx.size and index["first_build"].get("articles") != ctx.size:
        return None
    ix = ensure_index(ctx, ctx.size)
    best = next((r for r in serve["runs"] if r["threads"] == serve["best_threads"]), serve["runs"][0])
    return _point(index["first_build"], ix, best, warm)
