"""Parallel ingestion (issue 13): embedding workers plus one writer against one indexing process.

One process: ``search-cli index CORPUS`` into a fresh index. Parallel: ``search-cli embed CORPUS
--shard I/N`` for I = 1..N started together (each embeds on one thread) into a second fresh index's
embedding cache, then ``search-cli index CORPUS`` there, which should embed nothing. The parallel
wall time is the workers' (first start to last exit) plus the writer's. Last, one worker alone
(``--shard 1/1``) embeds the whole corpus into a third index: ``embed_scaling`` is how much faster
N workers embed it, the part that spreads over machines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Context, cli_path, loadavg, rel, size_label, target, write_result
from bench.corpus import build_corpus
from bench.indexing import build, index_dir, summary

WORKERS = 2


def run_workers(ctx: Context, corpus: Path, ix: Path, workers: int) -> dict:
    """``workers`` embed processes side by side; their reports, wall time and peak RSS."""
    args = [
        [cli_path(), "embed", rel(corpus), "--shard", f"{i}/{workers}", "--index-dir", rel(ix), "--json"]
        for i in range(1, workers + 1)
    ]
    started = time.perf_counter()
    procs = []
    for argv in args:
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        procs.append((subprocess.Popen(argv, stdout=out, stderr=err, env=ctx.environ(), cwd=ROOT), out, err))
    reports = []
    for proc, out, err in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problem = out.read().decode(), err.read().decode()
        out.close()
        err.close()
        if proc.returncode != 0:
            raise RuntimeError(f"embed worker failed: {problem.strip()[-500:]}")
        report = json.loads(text)
        report["max_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
        report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
        reports.append(report)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 3), "reports": reports, "commands": [" ".join(a[1:]) for a in args]}


def bench_parallel(ctx: Context, workers: int = WORKERS) -> Path:
    """Two embedding workers + one writer vs one process on the headline corpus, both from an empty cache."""
    started = time.perf_counter()
    corpus = build_corpus(ctx.size, "md", ctx.seed, ctx.corpora, ctx.source)
    single_ix, parallel_ix = index_dir(ctx, ctx.size, "md", "-one"), index_dir(ctx, ctx.size, "md", "-parallel")
    for ix in (single_ix, parallel_ix):
        shutil.rmtree(ix, ignore_errors=True)
    load_before = loadavg()
    single = summary(build(ctx, corpus, single_ix))
    embedding = run_workers(ctx, corpus, parallel_ix, workers)
    writer = summary(build(ctx, corpus, parallel_ix))
    parallel_wall = embedding["wall_s"] + writer["wall_s"]
    speedup = single["wall_s"] / parallel_wall
    alone_ix = index_dir(ctx, ctx.size, "md", "-one-worker")
    shutil.rmtree(alone_ix, ignore_errors=True)
    alone = run_workers(ctx, corpus, alone_ix, 1)  # the embedding step on one process: how it scales
    shutil.rmtree(alone_ix, ignore_errors=True)
    figures = {
        "corpus": str(corpus),
        "workers": workers,
        "loadavg_before": load_before,
        "one_process": single,
        "embed_workers": embedding,
        "writer": writer,
        "parallel_wall_s": round(parallel_wall, 3),
        "speedup_wall": round(speedup, 2),
        "one_embed_worker": alone,
        "embed_scaling": round(alone["wall_s"] / embedding["wall_s"], 2),  # 1 worker's wall over N workers'
        "writer_embedded": writer["embedded"],
        "loadavg_after": loadavg(),
    }
    n = size_label(ctx.size)
    command = "python -m bench.run_all parallel"
    targets = [
        target(
            f"Parallel ingestion {n}: {workers} embed workers + writer, speed-up over one process (wall)",
            speedup,
            1.0,
            "x",
            command,
            ">=",
        ),
        target(f"Parallel ingestion {n}: texts the writer embeds after them", writer["embedded"], 0, "", command),
    ]
    return write_result(ctx, "parallel", figures, targets, started)
