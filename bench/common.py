"""What every benchmark shares: machine facts, the result file, percentiles and memory readings."""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.config import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CORPORA = ROOT / "bench" / "corpora"
WORK = ROOT / "bench" / "work"
SOURCE = ROOT.parent / "shared" / "corpus" / "smartable-ai"  # the real corpus the synthetic ones recombine
PACKAGES = ("numpy", "faiss-cpu", "Whoosh-Reloaded", "onnxruntime", "tokenizers", "flask", "waitress")
# the vector instruction sets ONNX Runtime's and FAISS's kernels choose between: int8 matrix products use an
# 8-bit dot-product instruction only with a VNNI or AMX set, so embedding figures depend on them
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


@dataclass
class Context:
    """Where a benchmark run reads and writes, and how big it is."""

    results: Path = RESULTS
    corpora: Path = CORPORA
    work: Path = WORK
    size: int = 10_000  # the headline corpus
    scale: int = 100_000  # the scale corpus
    seed: int = 0
    source: Path = SOURCE
    queries: int = 400  # distinct queries per latency series
    serve_seconds: float = 20.0
    serve_requests: int = 4000
    serve_threads: tuple[int, ...] = (4, 8)
    quiet_wait: float = 0.0  # seconds to wait for idle CPUs before each benchmark
    reuse_cache: bool = False  # scale: rebuild with the embedding cache of the last run (no embedding)
    conditions: dict = field(default_factory=dict)  # load average (and quiet wait) before the current benchmark
    env: dict[str, str] = field(default_factory=dict)  # extra SEARCH_* variables, e.g. hash embedders
    command: str = ""

    def environ(self) -> dict[str, str]:
        """The environment of the processes a benchmark starts: this one's, with bytecode written, as an
        installed package has it (PYTHONDONTWRITEBYTECODE would make every cold start compile the
        project's modules again)."""
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**inherited, **self.env}


def machine_info(packages: tuple[str, ...] = PACKAGES) -> dict:
    """CPU, cores, RAM, Python and the versions of ``packages`` (default: the query and index paths)."""
    cpu = _cpuinfo()
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu_model": cpu.get("model name") or platform.processor(),
        "cpu_family": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "simd": [f for f in SIMD_FLAGS if f in cpu.get("flags", "").split()],
        "cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": round(_meminfo_kb("MemTotal") / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _meminfo_kb(key: str) -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int | str = "self", key: str = "VmRSS") -> float:
    """Resident memory of a process in MiB (``VmHWM`` for its peak)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of latencies in milliseconds."""
    if not samples_ms:
        return {}
    xs = sorted(samples_ms)

    def pct(p: float) -> float:  # nearest rank
        return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]

    return {
        "n": len(xs),
        "p50": round(pct(50), 2),
        "p90": round(pct(90), 2),
        "p99": round(pct(99), 2),
        "max": round(xs[-1], 2),
        "mean": round(statistics.fmean(xs), 2),
    }


def target(name: str, measured: float | None, limit: float, unit: str, command: str, op: str = "<=") -> dict:
    """One row of the README's performance table."""
    if measured is None:
        passed = None
    else:
        passed = measured <= limit if op == "<=" else measured >= limit
    return {
        "target": f"{name} {op.replace('<=', '≤').replace('>=', '≥')} {limit:g} {unit}".strip(),
        "measured": None if measured is None else round(measured, 3),
        "unit": unit,
        "limit": limit,
        "op": op,
        "passed": passed,
        "command": command,
    }


def write_result(ctx: Context, name: str, figures: dict, targets: list[dict], started: float) -> Path:
    """``<results>/<name>.json``: machine, command, figures and targets of one benchmark."""
    ctx.results.mkdir(parents=True, exist_ok=True)
    data = {
        "name": name,
        "command": ctx.command or " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_info(),
        "revision": git_revision(),
        "conditions": ctx.conditions,
        "targets": targets,
        "figures": figures,
    }
    path = ctx.results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def size_label(n: int) -> str:
    """10000 -> '10k', 100000 -> '100k', 50 -> '50'."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def parse_size(text: str) -> int:
    """'10k' -> 10000, '1m' -> 1000000, '50' -> 50."""
    text = text.strip().lower()
    mult = {"k": 1000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


# -- running the CLI -----------------------------------------------------------------------------
@dataclass
class Run:
    """One finished ``search-cli`` process."""

    args: list[str]
    wall: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float
    cpu_s: float = 0.0  # user + system CPU seconds of the process

    @property
    def command(self) -> str:
        return " ".join(shlex.quote(rel(a)) for a in ["search-cli", *self.args])

    def json(self) -> dict:
        if self.returncode != 0:
            raise RuntimeError(f"{self.command} failed ({self.returncode}): {self.stderr.strip()[-800:]}")
        return json.loads(self.stdout)


def cli_path() -> str:
    script = Path(sys.executable).parent / "search-cli"
    return str(script) if script.exists() else "search-cli"


def run_cli(ctx: Context, *args: str, timeout: float = 3600) -> Run:
    """Run ``search-cli ARGS`` in a fresh process: wall time, output and its own peak RSS (wait4)."""
    import subprocess
    import tempfile
    import threading

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([cli_path(), *args], stdout=out, stderr=err, env=ctx.environ(), cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # blocking: no polling error in the wall time
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            list(args),
            wall,
            proc.returncode,
            out.read().decode(),
            err.read().decode(),
            round(usage.ru_maxrss / 1024, 1),
            round(usage.ru_utime + usage.ru_stime, 2),
        )


def rel(arg: str | Path) -> str:
    """Paths inside the repository, shown relative to it."""
    arg = str(arg)
    try:
        return str(Path(arg).relative_to(ROOT)) if arg.startswith(str(ROOT) + "/") else arg
    except ValueError:
        return arg


def profile(work: Callable[[], object], per: int = 1, unit: str = "run", top: int = 25) -> dict:
    """cProfile of ``work()``: the top functions by own time and by cumulative time, in ms per ``unit``."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        work()
    finally:
        prof.disable()
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in pstats.Stats(prof).stats.items():
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "ncalls": ncalls,
                f"tottime_ms_per_{unit}": round(tottime * 1000 / per, 3),
                f"cumtime_ms_per_{unit}": round(cumtime * 1000 / per, 3),
            }
        )
    return {
        "by_tottime": sorted(rows, key=lambda r: -r[f"tottime_ms_per_{unit}"])[:top],
        "by_cumtime": sorted(rows, key=lambda r: -r[f"cumtime_ms_per_{unit}"])[:top],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def cpu_busy(interval: float = 1.0) -> float:
    """Share of all CPUs busy (any process) over ``interval`` seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="utf-8") as fh:
            values = [int(x) for x in fh.readline().split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> dict:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` of the CPUs for 3 s running."""
    started = time.perf_counter()
    quiet = 0
    busy = cpu_busy()
    while time.perf_counter() - started < max_wait:
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= 3:
            break
        busy = cpu_busy()
    return {"waited_s": round(time.perf_counter() - started, 1), "cpu_busy_before": round(busy, 2)}


def git_revision() -> str:
    """The commit measured, with "+dirty" when search/ or web/ differ from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "search", "web"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def settings_for(ctx: Context, index_dir: Path) -> Settings:
    """Settings as the CLI would read them, plus the context's SEARCH_* overrides."""
    from search.config import load_settings

    env = {k[len("SEARCH_") :].lower(): v for k, v in ctx.env.items() if k.startswith("SEARCH_")}
    return load_settings(None, **{**env, "index_dir": str(index_dir)})
