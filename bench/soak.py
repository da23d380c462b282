"""Soak: ``search-cli serve`` under steady load for minutes while the index is rebuilt under it.

Starts ``search-cli serve`` on a free 127.0.0.1 port for an index of a synthetic ~5k-article
corpus (recombined from ../shared/corpus/smartable-ai by ``bench.corpus``; or a copy of
``--corpus DIR``), with the default settings, i.e. the real model. Then, for ``--seconds``:

- ``--concurrency`` keep-alive clients send mixed requests: /api/search in keyword, semantic
  and hybrid modes (distinct queries, some with filters, sorting and paging) and
  /api/articles/<id>/related for articles that are never removed;
- every ``--reindex-every`` seconds a writer changes some files (edits ~1%, adds a few new
  articles and removes the ones it added last time) and runs ``search-cli index --prune``;
- the server's RSS (anonymous and file-backed), its open files and the live generation's
  Whoosh segments are sampled every second.

It writes ``bench/results/soak.json``: machine, command, requests, errors (target 0),
latency percentiles, the re-index runs, and the server's RSS after the warm-up and at the end
(target: growth <= 10%). Everything is bounded by time and by count. The embedding cache is
emptied first (``--keep-cache`` keeps it), so the first build and every re-index embed for real.

    python -m bench.soak                          # 5 minutes, the real model (~7 min in all)
    python -m bench.soak --seconds 60 --hash      # a quick dry run with the hash embedders
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psutil
import yaml

from bench.common import RESULTS, WORK, Context, cli_path, loadavg, percentiles, rss_mb, target, write_result
from bench.corpus import load_pool, synthesize, to_markdown
from bench.queries import make_queries
from bench.serving import Server
from search import generations as gen
from search.indexer import verify
from search.loader import iter_article_files, load_file
from search.urls import article_id

MODES = ("keyword", "semantic", "hybrid")
_TITLE = re.compile(r"^title:[ \t]*(.+)$", re.MULTILINE)
EXTRA_PER_ROUND = 10  # new articles a re-index adds (and the next one removes)
EDIT_SHARE = 0.01  # share of the corpus a re-index edits
REQUEST_TIMEOUT = 60.0
REINDEX_TIMEOUT = 600.0


# -- the corpus --------------------------------------------------------------------------------
@dataclass
class Corpus:
    """A writable corpus directory, the ids of its articles, and what the writer changed."""

    root: Path
    stable: list[Path]  # files the writer edits but never removes
    ids: list[str]  # articles that are never removed: the targets of /related requests
    extra: list[dict]  # fresh synthetic articles, added EXTRA_PER_ROUND at a time
    edited: dict[Path, str] = field(default_factory=dict)  # path -> its original text
    added: list[Path] = field(default_factory=list)

    def change(self, round_: int, rng: random.Random) -> dict:
        """Restore last round's edits, edit ~1% afresh, add new articles and drop last round's."""
        for path, text in self.edited.items():
            path.write_text(text, encoding="utf-8")
        self.edited = {}
        for path in rng.sample(self.stable, max(1, int(len(self.stable) * EDIT_SHARE))):
            text = path.read_text(encoding="utf-8")
            self.edited[path] = text
            path.write_text(_retitled(text, f"Update {round_}: "), encoding="utf-8")
        removed = len(self.added)
        for path in self.added:
            path.unlink(missing_ok=True)
        fresh = self.extra[round_ * EXTRA_PER_ROUND : (round_ + 1) * EXTRA_PER_ROUND]
        self.added = []
        for n, article in enumerate(fresh):
            path = self.root / "soak-extra" / f"r{round_:03d}-{n:02d}.md"
            path.parent.mkdir(exist_ok=True)
            path.write_text(to_markdown(article), encoding="utf-8")
            self.added.append(path)
        return {"edited": len(self.edited), "added": len(self.added), "removed": removed}


def _retitled(text: str, prefix: str) -> str:
    """The Markdown file with ``prefix`` put before its title (whatever YAML style the title is in)."""
    match = _TITLE.search(text)
    if not match:
        return text
    try:
        title = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return text
    return text[: match.start()] + f"title: {json.dumps(prefix + str(title))}" + text[match.end() :]


def prepare_corpus(args: argparse.Namespace, work: Path, rounds: int) -> Corpus:
    root = work / "corpus"
    shutil.rmtree(root, ignore_errors=True)
    pool = load_pool()
    articles = list(synthesize(pool, args.size + rounds * EXTRA_PER_ROUND, args.seed))
    if args.corpus:
        shutil.copytree(args.corpus, root)
    else:
        for n, article in enumerate(articles[: args.size]):
            sub = root / f"{n // 1000:04d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{n:06d}.md").write_text(to_markdown(article), encoding="utf-8")
    stable = sorted(p for p in iter_article_files([root]) if p.suffix == ".md")
    ids = sorted({article_id(r.url) for p in stable for r in load_file(p).records if r.main})
    return Corpus(root, stable, ids, articles[args.size :])


# -- the load ----------------------------------------------------------------------------------
class Load:
    """Closed-loop clients: each sends its next request when the last one is answered."""

    def __init__(self, port: int, queries: list[str], ids: list[str], filters: dict, seed: int):
        self.port, self.queries, self.ids, self.filters = port, queries, ids, filters
        self.seed = seed
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []

    def request(self, i: int, rng: random.Random) -> tuple[str, str]:
        """(kind, path) of request number ``i``."""
        if rng.random() < 0.3:
            return "related", f"/api/articles/{rng.choice(self.ids)}/related?limit=10"
        mode = rng.choice(MODES)
        params = {"q": self.queries[i % len(self.queries)], "mode": mode}
        roll = rng.random()
        if roll < 0.1:
            params.update(limit=20, offset=rng.choice([0, 10, 20]))
        elif roll < 0.2:
            params["sort"] = "newest"
        elif roll < 0.3:
            params["provider"] = rng.choice(self.filters["providers"])
        elif roll < 0.4:
            params.update(topic=rng.choice(self.filters["topics"]), since="2016-01-01", until="2023-12-31")
        return f"search-{mode}", "/api/search?" + urlencode(params)

    def run(self, concurrency: int, seconds: float, max_requests: int) -> float:
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self._worker, args=(n, deadline, max_requests), daemon=True)
            for n in range(concurrency)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 2 * REQUEST_TIMEOUT)
        return time.perf_counter() - started

    def _worker(self, n: int, deadline: float, max_requests: int) -> None:
        rng = random.Random(f"soak:{self.seed}:{n}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        while time.monotonic() < deadline:
            i = next(self.counter)
            if i >= max_requests:
                break
            kind, path = self.request(i, rng)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                error = None if response.status == 200 else f"HTTP {response.status} {path}: {body[:200]!r}"
                if error is None and kind != "related":
                    json.loads(body)["hits"]  # noqa: B018 - a whole JSON page came back
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                error = f"{type(exc).__name__}: {exc} ({path})"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            took = (time.perf_counter() - t0) * 1000
            with self.lock:
                if error:
                    self.errors.append(error)
                else:
                    self.latencies.setdefault(kind, []).append(took)
        conn.close()

    def summary(self, wall: float) -> dict:
        every = [x for xs in self.latencies.values() for x in xs]
        requests = len(every) + len(self.errors)
        return {
            "requests": requests,
            "errors": len(self.errors),
            "error_samples": self.errors[:10],
            "seconds": round(wall, 1),
            "throughput_rps": round(requests / wall, 1) if wall else 0.0,
            "latency_ms": percentiles(every),
            "latency_ms_by_kind": {k: percentiles(v) for k, v in sorted(self.latencies.items())},
        }


# -- the writer and the sampler ----------------------------------------------------------------
@dataclass
class Writer:
    """Every ``interval`` seconds, change files and run ``search-cli index --prune``; at most ``rounds`` times."""

    corpus: Corpus
    index: Path
    env: dict
    interval: float
    rounds: int
    seed: int
    log: list[dict] = field(default_factory=list)

    def run(self, stop: threading.Event, started: float) -> None:
        rng = random.Random(f"soak-writer:{self.seed}")
        for round_ in range(self.rounds):
            if stop.wait(max(0.0, started + (round_ + 1) * self.interval - time.monotonic())):
                return
            at = round(time.monotonic() - started, 1)
            entry = self.reindex(self.corpus.change(round_, rng))
            self.log.append({"round": round_, "at_s": at, **entry})

    def reindex(self, changes: dict) -> dict:
        args = ["index", str(self.corpus.root), "--index-dir", str(self.index), "--prune", "--wait", "120", "--json"]
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                [cli_path(), *args], env=self.env, capture_output=True, text=True, timeout=REINDEX_TIMEOUT
            )
            report = json.loads(done.stdout) if done.returncode == 0 else {}
            entry = {"returncode": done.returncode, "stderr": done.stderr.strip()[-300:] if done.returncode else ""}
        except subprocess.TimeoutExpired:
            report, entry = {}, {"returncode": None, "stderr": f"timed out after {REINDEX_TIMEOUT}s"}
        keys = ("generation", "added", "updated", "removed", "embedded", "cache_hits", "articles")
        return {
            **entry,
            "wall_s": round(time.perf_counter() - t0, 2),
            "changes": changes,
            **{k: report.get(k) for k in keys},
        }


def segments(index: Path) -> int | None:
    """Whoosh segments in the live generation (each costs every server thread a reader)."""
    name = gen.current_name(index)
    return len(list((index / name / gen.KEYWORD_DIR).glob("*.seg"))) if name else None


def sampler(pid: int, index: Path, stop: threading.Event, samples: list[dict], started: float) -> None:
    """The server's RSS (anonymous and file-backed), open files, and the live generation's
    Whoosh segments, once a second until ``stop``."""
    proc = psutil.Process(pid)
    while not stop.wait(1.0):
        try:
            rss = round(proc.memory_info().rss / 2**20, 1)
            samples.append({"t": round(time.monotonic() - started, 1), "rss_mb": rss, "fds": proc.num_fds(),
                            "anon_mb": rss_mb(pid, "RssAnon"), "file_mb": rss_mb(pid, "RssFile"),
                            "segments": segments(index)})  # fmt: skip
        except psutil.Error:
            return


# -- the run -----------------------------------------------------------------------------------
def first_build(corpus: Corpus, index: Path, env: dict, keep_cache: bool) -> dict:
    """A fresh build; with ``keep_cache`` the embeddings of earlier runs are reused."""
    for old in [*index.glob("gen-*"), index / gen.CURRENT, *([] if keep_cache else [index / "cache"])]:
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    print(f"indexing {len(corpus.stable)} files into {index} ...", flush=True)
    t0 = time.perf_counter()
    args = [cli_path(), "index", str(corpus.root), "--index-dir", str(index), "--json"]
    build = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)
    if build.returncode != 0:
        raise SystemExit(f"the first build failed: {build.stderr[-2000:]}")
    report = json.loads(build.stdout)
    keys = ("generation", "articles", "embedded", "cache_hits", "seconds", "stages")
    return {**{k: report[k] for k in keys}, "wall_s": round(time.perf_counter() - t0, 1)}


def under_load(args: argparse.Namespace, server: Server, corpus: Corpus, writer: Writer) -> dict:
    """Warm the server up, then load it for ``args.seconds`` while ``writer`` re-indexes."""
    pid = server.proc.pid
    rss = {"boot": rss_mb(pid)}
    pool = load_pool()
    queries = make_queries(pool, 20_000, args.seed)
    filters = {"providers": [f"{p} (synthetic)" for p, _ in pool.providers], "topics": pool.topics}
    print(f"serving on 127.0.0.1:{server.port}; warming up for {args.warmup:.0f}s ...", flush=True)
    warm = Load(server.port, queries[::-1], corpus.ids, filters, args.seed + 1)
    warmup = warm.summary(warm.run(args.concurrency, args.warmup, args.max_requests))
    rss["start"] = rss_mb(pid)
    stop, samples, started = threading.Event(), [], time.monotonic()
    helpers = [threading.Thread(target=sampler, args=(pid, writer.index, stop, samples, started), daemon=True),
               threading.Thread(target=writer.run, args=(stop, started), daemon=True)]  # fmt: skip
    for t in helpers:
        t.start()
    print(f"soaking for {args.seconds:.0f}s at concurrency {args.concurrency} ...", flush=True)
    load = Load(server.port, queries, corpus.ids, filters, args.seed)
    result = load.summary(load.run(args.concurrency, args.seconds, args.max_requests))
    rss["end"] = rss_mb(pid)
    stop.set()
    for t in helpers:
        t.join(REINDEX_TIMEOUT)
    rss.update(max=max((s["rss_mb"] for s in samples), default=None),
               growth_pct=round(100 * (rss["end"] - rss["start"]) / rss["start"], 2))  # fmt: skip
    return {
        **result,
        "warmup": {"seconds": args.warmup, "requests": warmup["requests"], "errors": warmup["errors"]},
        "server_rss_mb": rss,
        "server_fds": {"start": samples[0]["fds"], "end": samples[-1]["fds"]} if samples else {},
        "samples": samples[:: max(1, len(samples) // 120)],
        "final": final_state(server.port, writer.index),
    }


def soak(args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "bench.soak", *sys.argv[1:]])
    ctx = Context(results=Path(args.results), work=work, command=command)
    for name in [k for k in os.environ if k.startswith("SEARCH_")]:  # default settings: the real model
        del os.environ[name]
    if args.hash:
        ctx.env = {"SEARCH_INDEX_EMBEDDER": "hash", "SEARCH_QUERY_EMBEDDER": "hash"}
    rounds = int(args.seconds // args.reindex_every) + 1
    corpus = prepare_corpus(args, work, rounds)
    index = work / "index"
    figures = {
        "corpus": str(args.corpus or f"synthetic, {args.size} articles (bench.corpus, seed {args.seed})"),
        "index": str(index),
        "settings": "hash embedders" if args.hash else "defaults (all-MiniLM-L6-v2: onnx-int8 index, onnx query)",
        "concurrency": args.concurrency,
        "server_threads": args.threads,
        "first_build": first_build(corpus, index, ctx.environ(), args.keep_cache),
        "loadavg_before": loadavg(),
    }
    writer = Writer(corpus, index, ctx.environ(), args.reindex_every, rounds, args.seed)
    server = Server(ctx, index, args.threads)
    try:
        server.wait_ready(120)
        figures.update(under_load(args, server, corpus, writer))
    finally:
        server.stop()
    figures.update(reindexes=writer.log, reindex_failures=sum(1 for r in writer.log if r["returncode"] != 0),
                   loadavg_after=loadavg())  # fmt: skip
    targets = [
        target("Errors during the soak", figures["errors"] + figures["reindex_failures"], 0, "", ctx.command),
        target("Server RSS growth, warm start to end", figures["server_rss_mb"]["growth_pct"], 10, "%", ctx.command),
    ]
    path = write_result(ctx, args.name, figures, targets, started)
    print(json.dumps({k: figures[k] for k in ("requests", "errors", "latency_ms", "server_rss_mb")}, indent=1))
    print(f"wrote {path}")
    return path


def final_state(port: int, index: Path) -> dict:
    """The server serves the live generation, which is consistent, and no stale one is left."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    conn.request("GET", "/api/health")
    health = json.loads(conn.getresponse().read())
    conn.close()
    manifest = verify(index)
    return {
        "served_generation": health.get("generation"),
        "live_generation": gen.current_name(index),
        "articles": manifest.articles,
        "generations_on_disk": sorted(p.name for p in index.glob("gen-*")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the soak (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="simultaneous clients (default 16)")
    parser.add_argument("--threads", type=int, default=8, help="the server's --threads (default 8)")
    parser.add_argument("--reindex-every", type=float, default=30.0, help="seconds between re-indexes (default 30)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of load before RSS 'start' (default 20)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests")
    parser.add_argument("--corpus", default=None, help="a corpus directory to copy instead of the synthetic one")
    parser.add_argument("--size", type=int, default=5000, help="articles in the synthetic corpus (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hash", action="store_true", help="hash embedders instead of the model (dry runs)")
    parser.add_argument("--keep-cache", action="store_true", help="reuse the embeddings of an earlier run")
    parser.add_argument("--work", default=str(WORK / "soak"), help="working directory (default bench/work/soak)")
    parser.add_argument("--results", default=str(RESULTS), help="where soak.json goes (default bench/results)")
    parser.add_argument("--name", default="soak", help="result name: <results>/<name>.json (default soak)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.reindex_every <= 0:
        parser.error("--seconds, --concurrency and --reindex-every must be positive")
    soak(args)


if __name__ == "__main__":
    main()
