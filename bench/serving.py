"""Serving: ``search-cli serve`` (waitress) under a bounded, closed-loop HTTP load on 127.0.0.1.

The load generator is a few Python threads with keep-alive ``http.client`` connections; each
sends its next request when the last one is answered. It stops after ``requests`` requests or
``seconds`` seconds, whichever comes first. Its own CPU use is reported, since it shares the
machine's cores with the server.
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from bench.common import ROOT, Context, cli_path, loadavg, percentiles, rel, rss_mb, size_label, target, write_result
from bench.corpus import load_pool
from bench.indexing import ensure_index
from bench.queries import make_queries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A ``search-cli serve`` child process on a free port."""

    def __init__(self, ctx: Context, index_dir: Path, threads: int):
        self.port = _free_port()
        self.args = ["serve", "--index-dir", str(index_dir), "--port", str(self.port), "--threads", str(threads)]
        self._log = open(ctx.work / f"serve-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [cli_path(), *self.args], stdout=self._log, stderr=subprocess.STDOUT, env=ctx.environ(), cwd=ROOT
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self._log.name}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/api/health/ready")  # 503 until the model is loaded and the index warm
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"server on port {self.port} not ready after {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def load(port: int, queries: list[str], concurrency: int, requests: int, seconds: float, mode: str = "hybrid") -> dict:
    """Closed-loop load: latencies, throughput and errors."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter)
            if i >= requests:
                break
            path = "/api/search?" + urlencode({"q": queries[i % len(queries)], "mode": mode})
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                err = f"HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as exc:
                ok, err = False, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            took = (time.perf_counter() - t0) * 1000
            with lock:
                (latencies.append(took) if ok else errors.append(err))
        conn.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "seconds": round(wall, 2),
        "throughput_rps": round((len(latencies) + len(errors)) / wall, 1),
        "latency_ms": percentiles(latencies),
        "client_cpu_share": round((time.process_time() - cpu0) / wall, 2),
    }


def serve_run(
    ctx: Context, index_dir: Path, threads: int, queries: list[str], concurrency: int = 8, mode: str = "hybrid"
) -> dict:
    """Start a server, warm it, load it, and measure its memory and CPU."""
    server = Server(ctx, index_dir, threads)
    try:
        server.wait_ready()
        load(server.port, queries[-40:], 1, 40, 60, mode)  # model, index and code paths warm
        rss_idle = rss_mb(server.proc.pid)
        cpu0 = _cpu_seconds(server.proc.pid)
        before = loadavg()
        result = load(server.port, queries, concurrency, ctx.serve_requests, ctx.serve_seconds, mode)
        result["server_cpu_ms_per_request"] = round(
            (_cpu_seconds(server.proc.pid) - cpu0) * 1000 / max(result["requests"], 1), 2
        )
        result.update(
            threads=threads,
            loadavg_before=before,
            server_rss_mb_idle=rss_idle,
            server_rss_mb=rss_mb(server.proc.pid),
            server_peak_rss_mb=rss_mb(server.proc.pid, "VmHWM"),
            server_rss_anon_mb=rss_mb(server.proc.pid, "RssAnon"),
            server_rss_file_mb=rss_mb(server.proc.pid, "RssFile"),
            command=f"search-cli serve --index-dir {rel(index_dir)} --threads {threads}",
        )
        return result
    finally:
        server.stop()


def bench_serve(ctx: Context) -> Path:
    """Target 5: hybrid searches/s at concurrency 8, errors, p99 and server RSS, for each --threads."""
    started = time.perf_counter()
    ix = ensure_index(ctx, ctx.size)
    queries = make_queries(load_pool(ctx.source), ctx.serve_requests + 100, ctx.seed + 2)
    runs = [serve_run(ctx, ix, threads, queries) for threads in ctx.serve_threads]
    best = max(runs, key=lambda r: (r["errors"] == 0, r["throughput_rps"]))
    figures = {"index": str(ix), "distinct_queries": True, "runs": runs, "best_threads": best["threads"]}
    n, cmd = size_label(ctx.size), best["command"]
    targets = [
        target(
            f"Hybrid searches/s at concurrency 8, {n} (--threads {best['threads']})",
            best["throughput_rps"],
            150,
            "req/s",
            cmd,
            ">=",
        ),
        target("Errors under load", best["errors"], 0, "", cmd),
        target("p99 latency under load", best["latency_ms"].get("p99"), 100, "ms", cmd),
    ]
    return write_result(ctx, "serve", figures, targets, started)
