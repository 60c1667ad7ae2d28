"""Time loading and validating a scenario, against reading its CSV files raw, in the same run.

Run from the repository root:  .venv/bin/python benchmarks/bench_load.py
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from results import update_section

import tercap
from tercap.scenario.generate import generate_scenario

COMMAND = ".venv/bin/python benchmarks/bench_load.py"
SECTION = "## Loading and validating a scenario"
RUNS = 3
EXAMPLE = Path(__file__).resolve().parent.parent / "scenarios" / "acme_fy27.yaml"


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def measure(path: Path) -> tuple[str, int, float, float]:
    """(label, table rows, seconds to load, seconds to read the same CSV files with pandas)."""
    scenario = tercap.load(path)
    tables = [p for p in scenario.files if p.suffix == ".csv"]
    rows = sum(len(scenario.table(name)) for name in ("reps", "accounts", "geo_units", "adjacency",
                                                      "pipeline", "history") if scenario.has_table(name))
    load = best_of(RUNS, lambda: tercap.load(path))
    raw = best_of(RUNS, lambda: [pd.read_csv(p) for p in tables])
    label = f"{len(scenario.accounts):,} accounts × {len(scenario.reps):,} reps"
    return label, rows, load, raw


def main() -> None:
    measured = [measure(EXAMPLE)]
    with tempfile.TemporaryDirectory() as folder:
        measured.append(measure(generate_scenario(folder, accounts=100_000, reps=1_000, seed=0)))
    lines = [
        SECTION, "",
        "`tercap.load` (read, type-check, cross-check and complete every table) against plain",
        f"`pandas.read_csv` of the same files, best of {RUNS}, in the same run. The ratio is what",
        "validation costs on top of reading. Measured "
        f"{dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, with:", "", "```", COMMAND, "```", "",
        "| scenario | table rows | load s | raw read s | load ÷ raw |", "|---|---:|---:|---:|---:|"]
    for label, rows, load, raw in measured:
        print(f"{label}: load {load:.2f} s, raw {raw:.2f} s")
        lines.append(f"| {label} | {rows:,} | {load:.2f} | {raw:.2f} | {load / raw:.1f} |")
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
