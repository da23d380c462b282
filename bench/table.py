"""Regenerate the README's performance table from bench/results/*.json.

python -m bench.table            # rewrite the table between the perf-table markers in README.md
python -m bench.table --check    # exit 1 if the README's table is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import RESULTS, ROOT

START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
ORDER = ("cold", "warm", "warm-scale", "index", "serve", "scale", "parallel", "ann", "format")
SECTION = """
## Performance

Targets of issue 5, measured by the scripts in `bench/` on synthetic corpora recombined from
the real news corpus (see [`bench/README.md`](bench/README.md)). `make bench` runs them all
(`python -m bench.run_all NAME` runs one) and writes `bench/results/NAME.json` with the
machine, the load average and every figure; `make bench-table` rewrites this table.

{start}
{end}
"""


def load_results(results: Path) -> list[dict]:
    """Result files that carry targets, in the order of the issue."""
    found = []
    for path in sorted(Path(results).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("targets"):
            found.append(data)
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda d: (rank.get(d.get("name"), len(ORDER)), d.get("name", "")))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _measured(row: dict) -> str:
    value = row["measured"]
    if value is None:
        return "-"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{shown} {row['unit']}".strip()


def render(results: Path) -> str:
    """The Markdown table (plus a line naming the machine) for every target in ``results``."""
    data = load_results(results)
    if not data:
        return "_No benchmark results yet: run `make bench`._"
    m = data[0]["machine"]
    lines = [
        f"Machine: {m.get('cpu_model') or 'unknown CPU'}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, "
        f"Python {m.get('python')}, no GPU. Load: the 1-minute load average when the benchmark started "
        "(above 2, other processes shared the cores and the figure is pessimistic).",
        "",
        "| Target | Measured | Pass | Benchmark | Command | Load |",
        "|---|---|---|---|---|---|",
    ]
    for result in data:
        rev = f" @ {result['revision']}" if result.get("revision") else ""
        load = (result.get("conditions") or {}).get("loadavg_before") or result.get("machine", {}).get("loadavg") or []
        for row in result["targets"]:
            verdict = {True: "pass", False: "**FAIL**", None: "n/a"}[row["passed"]]
            lines.append(
                f"| {_cell(row['target'])} | {_cell(_measured(row))} | {verdict} | `{result['name']}`{rev} "
                f"| `{_cell(row['command'])}` | {load[0] if load else ''} |"
            )
    return "\n".join(lines)


def update(readme: Path, table: str) -> str:
    """README text with ``table`` between the markers (the section is appended if it is missing)."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        text = text.rstrip("\n") + "\n" + SECTION.format(start=START, end=END)
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="only report whether the table is up to date")
    args = parser.parse_args(argv)
    new = update(args.readme, render(args.results))
    if args.check:
        stale = new != args.readme.read_text(encoding="utf-8")
        print(f"{args.readme}: performance table is {'out of date' if stale else 'up to date'}")
        return int(stale)
    args.readme.write_text(new, encoding="utf-8")
    print(f"updated the performance table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
