"""Run the benchmarks of issue 5 and write bench/results/<name>.json; then `python -m bench.table`.

    python -m bench.run_all                      # all of them, in order (~30 min on 2 idle cores)
    python -m bench.run_all index cold warm      # some of them
    python -m bench.run_all scale ann --scale 100k

Benchmarks: format (Markdown vs JSON Lines loading), embed (index-time embedding
throughput by threads and batch shape), index (targets 3, 4), cold (1), warm (2),
serve (5), ready (start-up of serve, issue 12), scale (2, 5 and 6 at --scale),
warm-scale (2 at --scale, on the index scale built), ann (6: FAISS index types),
stories (issue 10: story detection quality on the dev sets and its cost at 10k),
parallel (issue 13: two `embed --shard` workers plus one writer against one process, at --size).
Run one at a time on a quiet machine: each records the load average it saw.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from bench.common import CORPORA, RESULTS, WORK, Context, loadavg, parse_size, wait_for_quiet


def _benchmarks() -> dict[str, Callable[[Context], Path]]:
    from bench.ann import bench_ann
    from bench.indexing import bench_embed, bench_format, bench_index
    from bench.parallel import bench_parallel
    from bench.query import bench_cold, bench_warm
    from bench.ready import bench_ready
    from bench.scale import bench_scale
    from bench.serving import bench_serve
    from bench.stories import bench_stories

    return {
        "format": bench_format,
        "embed": bench_embed,
        "index": bench_index,
        "cold": bench_cold,
        "warm": bench_warm,
        "warm-scale": lambda ctx: bench_warm(ctx, ctx.scale, "warm-scale"),
        "serve": bench_serve,
        "ready": bench_ready,
        "scale": bench_scale,
        "ann": bench_ann,
        "stories": bench_stories,
        "parallel": bench_parallel,
    }


NAMES = (
    "format",
    "embed",
    "index",
    "cold",
    "warm",
    "serve",
    "ready",
    "scale",
    "warm-scale",
    "ann",
    "stories",
    "parallel",
)


def run(names: list[str], ctx: Context) -> list[Path]:
    ctx.work.mkdir(parents=True, exist_ok=True)
    table = _benchmarks()
    written = []
    for name in names:
        ctx.conditions = wait_for_quiet(ctx.quiet_wait) if ctx.quiet_wait else {}
        ctx.conditions["loadavg_before"] = loadavg()
        if ctx.quiet_wait:
            print(f"{name:>10}  waited {ctx.conditions['waited_s']} s for idle CPUs", flush=True)
        path = table[name](ctx)
        written.append(path)
        data = json.loads(path.read_text())
        for row in data["targets"]:
            mark = {True: "PASS", False: "FAIL", None: "n/a"}[row["passed"]]
            print(f"{name:>10}  {mark}  {row['target']}: {row['measured']} {row['unit']}", flush=True)
        print(f"{name:>10}  wrote {path} ({data['seconds']} s)", flush=True)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="any of: " + ", ".join(NAMES))
    parser.add_argument("--size", default="10k", help="headline corpus size (default 10k)")
    parser.add_argument("--scale", default="100k", help="scale corpus size (default 100k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=400, help="distinct queries per latency series (<= 512)")
    parser.add_argument("--serve-seconds", type=float, default=20.0)
    parser.add_argument("--serve-threads", default="4,8", help="waitress --threads values to try")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each benchmark, wait up to this many seconds for idle CPUs",
    )
    parser.add_argument(
        "--reuse-cache",
        action="store_true",
        help="scale: rebuild the scale index from its embedding cache (fast; no indexing-speed figure)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--work", type=Path, default=WORK, help="where the benchmark indexes are built")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}")
    ctx = Context(
        results=args.results,
        corpora=args.corpora,
        work=args.work,
        size=parse_size(args.size),
        scale=parse_size(args.scale),
        seed=args.seed,
        queries=min(args.queries, 512),
        serve_seconds=args.serve_seconds,
        quiet_wait=args.quiet_wait,
        reuse_cache=args.reuse_cache,
        serve_threads=tuple(int(t) for t in args.serve_threads.split(",")),
        command=" ".join(shlex.quote(a) for a in ["python", "-m", "bench.run_all", *(argv or sys.argv[1:])]),
    )
    run(args.names or list(NAMES), ctx)


if __name__ == "__main__":
    main()
