"""Query latency: a cold ``search-cli query`` process, and warm in-process searches with a breakdown."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    ROOT,
    Context,
    loadavg,
    percentiles,
    profile,
    rss_mb,
    run_cli,
    settings_for,
    size_label,
    target,
    write_result,
)
from bench.corpus import load_pool
from bench.indexing import ensure_index
from bench.queries import make_queries
from bench.stopwatch import Stopwatch, instrument
from search.service import SearchService

HEAVY = ("torch", "sentence_transformers", "transformers")
COLD_QUERY = "export controls"
# What a query cannot do without: issue 12 measured 0.23 s for these on an idle machine.
REFERENCE_IMPORTS = "import numpy, faiss, onnxruntime, tokenizers, whoosh.index, whoosh.qparser"

_PHASES = """
import json, sys, time
t0 = time.perf_counter()
from search.config import load_settings
from search.service import SearchService
t1 = time.perf_counter()
svc = SearchService(load_settings(index_dir=sys.argv[1]))
svc.get_many([])
t2 = time.perf_counter()
svc.embedder
t3 = time.perf_counter()
svc.search(sys.argv[2])
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open_index": t2 - t1, "load_embedder": t3 - t2, "first_search": t4 - t3}))
"""

_MODULES = """
import contextlib, io, json, sys
from search.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["query", sys.argv[2], "--index-dir", sys.argv[1]], standalone_mode=False)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
""".replace("HEAVY", repr(HEAVY))


def _python(ctx: Context, code: str, *args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code, *args],
        capture_output=True,
        text=True,
        env=ctx.environ(),
        cwd=ROOT,
        check=True,
    )


def _import_times(ctx: Context, ix: Path) -> list[dict]:
    """The slowest imports of a cold query, three levels deep (python -X importtime)."""
    err = _python(ctx, _PHASES, str(ix), COLD_QUERY, flags=("-X", "importtime")).stderr
    rows = []
    for line in err.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2][1:]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        if depth <= 2 and int(parts[1]) >= 5000:  # top-level imports and their imports, >= 5 ms
            rows.append({"module": name.strip(), "depth": depth, "cumulative_ms": round(int(parts[1]) / 1000, 1)})
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:25]


def bench_cold(ctx: Context) -> Path:
    """Target 1: a fresh ``search-cli query`` process, median of 5; and that it never imports torch."""
    started = time.perf_counter()
    ix = ensure_index(ctx, ctx.size)
    load_before = loadavg()
    run_cli(ctx, "query", COLD_QUERY, "--index-dir", str(ix))  # page cache warm-up, not counted
    runs: dict[str, list] = {"hybrid": [], "keyword": []}
    reference = []
    for _ in range(5):  # interleaved, so that a change in the machine's load hits all three alike
        for mode in runs:
            runs[mode].append(run_cli(ctx, "query", COLD_QUERY, "--index-dir", str(ix), "--mode", mode))
        t0 = time.perf_counter()
        _python(ctx, REFERENCE_IMPORTS)
        reference.append(time.perf_counter() - t0)
    help_runs = [run_cli(ctx, "--help").wall for _ in range(3)]
    phases = [json.loads(_python(ctx, _PHASES, str(ix), COLD_QUERY).stdout) for _ in range(3)]
    heavy = json.loads(_python(ctx, _MODULES, str(ix), COLD_QUERY).stdout)
    hybrid = [r.wall for r in runs["hybrid"]]
    figures = {
        "index": str(ix),
        "loadavg_before": load_before,
        "hybrid_wall_s": [round(x, 3) for x in hybrid],
        "hybrid_median_s": round(statistics.median(hybrid), 3),
        "reference_imports": REFERENCE_IMPORTS,
        "reference_imports_median_s": round(statistics.median(reference), 3),
        "hybrid_over_reference": round(statistics.median(hybrid) / statistics.median(reference), 2),
        "keyword_median_s": round(statistics.median(r.wall for r in runs["keyword"]), 3),
        "help_median_s": round(statistics.median(help_runs), 3),
        "max_rss_mb": max(r.max_rss_mb for r in runs["hybrid"]),
        "phases_median_s": {k: round(statistics.median(p[k] for p in phases), 3) for k in phases[0]},
        "top_imports": _import_times(ctx, ix),
        "heavy_modules_imported": heavy,
    }
    command = runs["hybrid"][0].command.replace(" --mode hybrid", "")
    targets = [
        target(
            f"Cold CLI hybrid query, {size_label(ctx.size)} articles (median of 5)",
            figures["hybrid_median_s"],
            1.0,
            "s",
            command,
        ),
        target(
            f"Cold CLI hybrid query, {size_label(ctx.size)} articles (median of 5), issue 12",
            figures["hybrid_median_s"],
            0.4,
            "s",
            command,
        ),
        target("Modules of torch / sentence-transformers imported by a query", len(heavy), 0, "", command),
    ]
    return write_result(ctx, "cold", figures, targets, started)


# -- warm, in-process ------------------------------------------------------------------------------
def _series(svc: SearchService, queries: list[str], mode: str) -> dict:
    took = []
    for q in queries:
        t0 = time.perf_counter()
        svc.search(q, mode=mode)
        took.append((time.perf_counter() - t0) * 1000)
    return percentiles(took)


def _profile(svc: SearchService, queries: list[str]) -> dict:
    def work() -> None:
        for q in queries:
            svc.search(q)

    return {"queries": len(queries), **profile(work, per=len(queries), unit="query")}


def warm_figures(ctx: Context, ix: Path, n: int, profile: bool = True) -> dict:
    """Latency series (hybrid misses and hits, keyword, semantic), a per-component breakdown and a profile."""
    queries = make_queries(load_pool(ctx.source), 6 * n + 300, ctx.seed)
    svc = SearchService(settings_for(ctx, ix))
    try:
        for q in queries[-50:]:  # load the model, open the index, fill the caches of the engines
            svc.search(q)
        figures: dict = {"index": str(ix), "loadavg_before": loadavg(), "queries_per_series": n}
        figures["hybrid_miss"] = _series(svc, queries[:n], "hybrid")
        figures["hybrid_hit"] = _series(svc, queries[:n], "hybrid")  # n <= 512: every vector cached
        figures["keyword"] = _series(svc, queries[n : 2 * n], "keyword")
        figures["semantic_miss"] = _series(svc, queries[2 * n : 3 * n], "semantic")
        figures["breakdown_ms"] = _breakdown(svc, queries[3 * n : 4 * n])
        t0 = time.perf_counter()
        for q in queries[4 * n : 5 * n]:
            json.dumps(svc.search(q).to_dict())
        figures["hybrid_miss_with_to_dict_json_mean_ms"] = round((time.perf_counter() - t0) * 1000 / n, 2)
        if profile:
            figures["profile"] = _profile(svc, queries[5 * n : 5 * n + min(n, 200)])
        figures["rss_mb"] = rss_mb()
        figures["loadavg_after"] = loadavg()
    finally:
        svc.close()
    return figures


def _breakdown(svc: SearchService, queries: list[str]) -> dict:
    """Exclusive milliseconds per query spent in each engine call (hybrid, cache misses)."""
    watch = Stopwatch()
    with svc._acquire() as view:  # the view stays open while the index does not change
        undo = instrument(watch, svc, view)
    try:
        t0 = time.perf_counter()
        for q in queries:
            with watch.span("search() total, other"):
                svc.search(q)
        total = (time.perf_counter() - t0) * 1000 / len(queries)
    finally:
        undo()
    out = {k: round(v * 1000 / len(queries), 3) for k, v in sorted(watch.totals.items(), key=lambda kv: -kv[1])}
    out["total_mean"] = round(total, 3)
    return out


def bench_warm(ctx: Context, size: int | None = None, name: str = "warm") -> Path:
    """Target 2: warm hybrid latency in one thread, query embedding included."""
    started = time.perf_counter()
    size = size or ctx.size
    ix = ensure_index(ctx, size)
    figures = warm_figures(ctx, ix, ctx.queries)
    figures["query_embedders"] = embedder_speeds(ctx, ix)
    label = size_label(size)
    cmd = f"python -m bench.run_all {name}"
    p50, p99 = (15, 50) if size <= 10_000 else (40, None)
    targets = [
        target(f"Warm hybrid p50, {label} articles, distinct queries", figures["hybrid_miss"]["p50"], p50, "ms", cmd)
    ]
    if p99:
        targets.append(
            target(
                f"Warm hybrid p99, {label} articles, distinct queries", figures["hybrid_miss"]["p99"], p99, "ms", cmd
            )
        )
    return write_result(ctx, name, figures, targets, started)


def embedder_speeds(ctx: Context, ix: Path, n: int = 200) -> dict:
    """ms per single-query embedding for each ONNX variant and thread count (skipped for fakes)."""
    if settings_for(ctx, ix).query_embedder == "hash":
        return {}
    from search.embedding import load_embedder

    queries = make_queries(load_pool(ctx.source), n, ctx.seed + 1)
    out = {}
    for kind in ("onnx", "onnx-int8"):
        for threads in (1, 2):
            emb = load_embedder(kind, threads=threads)
            emb.embed(queries[:10])
            took = []
            for q in queries:
                t0 = time.perf_counter()
                emb.embed([q])
                took.append((time.perf_counter() - t0) * 1000)
            out[f"{kind} threads={threads}"] = percentiles(took)
    return out
