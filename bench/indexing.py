"""Indexing: the first build, an unchanged re-index, a one-article change; Markdown vs JSON Lines.

Every figure comes from a fresh ``search-cli index --json`` process (its ``stages`` and
``docs_per_second``, plus wall time and peak RSS measured from outside).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

from bench.common import Context, Run, loadavg, profile, run_cli, settings_for, size_label, target, write_result
from bench.corpus import build_corpus


def index_dir(ctx: Context, size: int, fmt: str = "md", tag: str = "") -> Path:
    return ctx.work / f"ix-{fmt}-{size_label(size)}{tag}"


def build(ctx: Context, corpus: Path, ix: Path, *extra: str) -> Run:
    run = run_cli(ctx, "index", str(corpus), "--index-dir", str(ix), "--json", *extra)
    run.json()  # raises with stderr if the build failed
    return run


def ensure_index(ctx: Context, size: int, fmt: str = "md") -> Path:
    """The index of the synthetic corpus of ``size``, built if it is not there yet."""
    corpus = build_corpus(size, fmt, ctx.seed, ctx.corpora, ctx.source)
    ix = index_dir(ctx, size, fmt)
    if not (ix / "CURRENT").is_file():
        build(ctx, corpus, ix)
    return ix


def summary(run: Run) -> dict:
    report = run.json()
    keys = (
        "added",
        "updated",
        "removed",
        "embedded",
        "cache_hits",
        "articles",
        "files",
        "files_changed",
        "seconds",
        "docs_per_second",
        "stages",
    )
    return {
        **{k: report[k] for k in keys},
        "wall_s": round(run.wall, 3),
        "max_rss_mb": run.max_rss_mb,
        "cpu_s": run.cpu_s,
        "skipped": len(report["skipped"]),
        "command": run.command,
        "loadavg_after": loadavg(),
    }


def bench_index(ctx: Context) -> Path:
    """Targets 3 and 4: docs/s of a first build; re-index unchanged and with one article changed."""
    started = time.perf_counter()
    corpus = build_corpus(ctx.size, "md", ctx.seed, ctx.corpora, ctx.source)
    ix = index_dir(ctx, ctx.size)
    shutil.rmtree(ix, ignore_errors=True)
    load_before = loadavg()
    first = summary(build(ctx, corpus, ix))
    again = summary(build(ctx, corpus, ix))
    victim = sorted(corpus.glob("*/*.md"))[0]
    original = victim.read_text(encoding="utf-8")
    try:
        victim.write_text(original.replace('title: "', 'title: "Updated: ', 1), encoding="utf-8")
        changed = summary(build(ctx, corpus, ix))
    finally:
        victim.write_text(original, encoding="utf-8")
    restored = summary(build(ctx, corpus, ix))
    figures = {
        "corpus": str(corpus),
        "articles": first["articles"],
        "loadavg_before": load_before,
        "first_build": first,
        "unchanged": again,
        "one_changed": changed,
        "restored": restored,
        "speedup_wall": round(first["wall_s"] / again["wall_s"], 1),
        "speedup_in_process": round(first["seconds"] / max(again["seconds"], 1e-6), 1),
    }
    n = size_label(ctx.size)
    targets = [
        target(
            f"Indexing {n} articles end to end", first["docs_per_second"], 300, "articles/s", first["command"], ">="
        ),
        target(
            f"Re-index unchanged {n}: speed-up over first build (wall)",
            figures["speedup_wall"],
            20,
            "x",
            again["command"],
            ">=",
        ),
        target("Change one article: texts re-embedded", changed["embedded"], 1, "", changed["command"]),
    ]
    return write_result(ctx, "index", figures, targets, started)


def bench_format(ctx: Context) -> Path:
    """Markdown vs JSON Lines: how fast the indexer loads each (hash embedder, so loading dominates)."""
    started = time.perf_counter()
    hashed = Context(**{**ctx.__dict__, "env": {**ctx.env, "SEARCH_INDEX_EMBEDDER": "hash"}})
    figures: dict = {"note": "index_embedder=hash so that the load stage is not hidden by embedding"}
    for fmt in ("md", "jsonl"):
        corpus = build_corpus(ctx.size, fmt, ctx.seed, ctx.corpora, ctx.source)
        ix = index_dir(ctx, ctx.size, fmt, "-hash")
        shutil.rmtree(ix, ignore_errors=True)
        figures[fmt] = summary(build(hashed, corpus, ix))
        figures[fmt]["input_bytes"] = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
        shutil.rmtree(ix, ignore_errors=True)
    figures["profile_md_build_hash"] = _profile_build(
        ctx, build_corpus(ctx.size, "md", ctx.seed, ctx.corpora, ctx.source)
    )
    md, jl = figures["md"]["stages"]["load"], figures["jsonl"]["stages"]["load"]
    figures["load_ratio_md_over_jsonl"] = round(md / max(jl, 1e-6), 2)
    return write_result(ctx, "format", figures, [], started)


def _profile_build(ctx: Context, corpus: Path) -> dict:
    """cProfile of an in-process build with the hash embedder: the hot spots of load, merge, keyword, commit."""
    from search.config import Settings
    from search.embedding import HashEmbedder
    from search.indexer import Indexer

    ix = index_dir(ctx, ctx.size, "md", "-profile")
    shutil.rmtree(ix, ignore_errors=True)
    indexer = Indexer(Settings(index_dir=str(ix), index_embedder="hash"), HashEmbedder())
    try:
        return profile(lambda: indexer.index([corpus]), top=30)
    finally:
        shutil.rmtree(ix, ignore_errors=True)


def bench_embed(ctx: Context, n: int = 1500) -> Path:
    """Index-time embedding throughput on synthetic article texts: threads x batch shape (onnx-int8)."""
    from bench.corpus import load_pool, synthesize
    from search.embedding import load_embedder

    started = time.perf_counter()
    kind = settings_for(ctx, ctx.work).index_embedder
    texts = [f"{a['title']}. {a['excerpt']}" for a in synthesize(load_pool(ctx.source), n, ctx.seed + 5)]
    figures: dict = {"embedder": kind, "texts": n, "loadavg_before": loadavg(), "runs": []}
    for threads in (1, 2):
        for tokens, batch in ((2048, 64), (4096, 64), (8192, 128), (16384, 256)):
            emb = load_embedder(kind, threads=threads) if kind != "hash" else load_embedder("hash")
            if hasattr(emb, "max_batch_tokens"):
                emb.max_batch_tokens = tokens
            wall, cpu = _timed_embed(emb, texts, batch)
            figures["runs"].append(
                {
                    "threads": threads,
                    "max_batch_tokens": tokens,
                    "batch_size": batch,
                    "docs_per_s": round(n / wall, 1),
                    "cpu_s": round(cpu, 2),
                    "wall_s": round(wall, 2),
                    "loadavg": loadavg(),
                }
            )
            if kind == "hash":
                break
    if kind.startswith("onnx"):
        figures["fp32_one_thread"] = round(n / _timed_embed(load_embedder("onnx", threads=1), texts, 64)[0], 1)
        figures["operators"] = operator_shares(kind, texts, ctx.work)
    figures["loadavg_after"] = loadavg()
    return write_result(ctx, "embed", figures, [], started)


def _timed_embed(embedder, texts: list[str], batch: int) -> tuple[float, float]:
    """Wall and CPU seconds of embedding ``texts`` in batches of ``batch``, after one warm-up batch."""
    embedder.embed(texts[:batch], batch_size=batch)
    cpu0, t0 = time.process_time(), time.perf_counter()
    embedder.embed(texts, batch_size=batch)
    return time.perf_counter() - t0, time.process_time() - cpu0


def operator_shares(kind: str, texts: list[str], work: Path, top: int = 8) -> dict:
    """Where embedding ``texts`` on one thread spends its time: each ONNX operator type's share of the time of
    all operators (ONNX Runtime's profiler), the ``top`` largest."""
    from search.embedding import load_embedder

    work.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(kind, threads=1, profile_prefix=str(work / "embed-profile"))
    embedder.embed(texts)
    trace = embedder.end_profiling()
    try:
        events = json.loads(trace.read_text(encoding="utf-8"))
    finally:
        trace.unlink(missing_ok=True)
    spent: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node":
            spent[event.get("args", {}).get("op_name", "?")] += event.get("dur", 0)
    total = sum(spent.values()) or 1
    return {op: round(us / total, 3) for op, us in spent.most_common(top)}
