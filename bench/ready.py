"""Ready means ready: ``search-cli serve`` from an empty model cache, then from a warm one.

For each start it measures when the port answers (``/api/health``), how long liveness takes to
answer while the server warms up, when ``/api/health/ready`` turns 200, and then the latency of
the first hybrid search against the median of the next 100 (distinct queries, one at a time).
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

from bench.common import Context, loadavg, rel, size_label, target, write_result
from bench.corpus import load_pool
from bench.indexing import ensure_index
from bench.queries import make_queries
from bench.serving import Server

AFTER_FIRST = 100  # searches whose median the first one is compared with


def _get(port: int, path: str, timeout: float = 30) -> tuple[int, float]:
    """Status and milliseconds of one GET; status 0 when nothing answers."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.read()
        return reply.status, (time.perf_counter() - t0) * 1000
    except OSError:
        return 0, (time.perf_counter() - t0) * 1000
    finally:
        conn.close()


def start_and_search(ctx: Context, index_dir: Path, queries: list[str], timeout: float = 300) -> dict:
    """One server start: port, readiness and the first searches after it."""
    started = time.perf_counter()
    server = Server(ctx, index_dir, threads=4)
    try:
        port_s = ready_s = None
        health_ms: list[float] = []
        while ready_s is None:
            if time.perf_counter() - started > timeout or server.proc.poll() is not None:
                raise RuntimeError(f"server not ready after {timeout} s (exit code {server.proc.poll()})")
            status, took = _get(server.port, "/api/health")
            if status == 200:
                port_s = port_s or time.perf_counter() - started
                health_ms.append(took)
                if _get(server.port, "/api/health/ready")[0] == 200:
                    ready_s = time.perf_counter() - started
            time.sleep(0.05)
        searches = []
        for q in queries[: AFTER_FIRST + 1]:
            status, took = _get(server.port, "/api/search?" + urlencode({"q": q, "mode": "hybrid"}))
            if status != 200:
                raise RuntimeError(f"search {q!r} answered {status}")
            searches.append(took)
        rest = statistics.median(searches[1:])
        return {
            "port_open_s": round(port_s, 3),
            "ready_s": round(ready_s, 3),
            "health_while_warming_ms": {"n": len(health_ms), "max": round(max(health_ms), 1)},
            "first_search_ms": round(searches[0], 2),
            f"median_of_next_{AFTER_FIRST}_ms": round(rest, 2),
            "first_over_median": round(searches[0] / rest, 2),
        }
    finally:
        server.stop()


def bench_ready(ctx: Context) -> Path:
    """Start-up: the port opens at once, ready only when warm, and the first search is not slower."""
    started = time.perf_counter()
    ix = ensure_index(ctx, ctx.size)
    cache = ctx.work / "ready-model-cache"
    shutil.rmtree(cache, ignore_errors=True)
    ctx = replace(ctx, env={**ctx.env, "SEARCH_MODEL_CACHE": str(cache)})
    queries = make_queries(load_pool(ctx.source), 2 * (AFTER_FIRST + 1), ctx.seed + 7)
    figures: dict = {"index": str(ix), "loadavg_before": loadavg(), "model_cache": rel(cache)}
    figures["empty_model_cache"] = start_and_search(ctx, ix, queries[: AFTER_FIRST + 1])
    figures["warm_model_cache"] = start_and_search(ctx, ix, queries[AFTER_FIRST + 1 :])
    figures["loadavg_after"] = loadavg()
    shutil.rmtree(cache, ignore_errors=True)
    cold, warm = figures["empty_model_cache"], figures["warm_model_cache"]
    cmd = f"search-cli serve --index-dir {rel(ix)} (SEARCH_MODEL_CACHE empty, then warm)"
    n = size_label(ctx.size)
    targets = [
        target(
            f"First search after ready vs median of the next 100, {n}, empty model cache",
            cold["first_over_median"],
            1.5,
            "x",
            cmd,
        ),
        target(
            f"First search after ready vs median of the next 100, {n}, warm model cache",
            warm["first_over_median"],
            1.5,
            "x",
            cmd,
        ),
        target("Port open after start, empty model cache", cold["port_open_s"], 2.0, "s", cmd),
    ]
    return write_result(ctx, "ready", figures, targets, started)
