"""Time the synthetic scenario generator at three sizes and record the figures in benchmarks/RESULTS.md.

Run from the repository root:  .venv/bin/python benchmarks/bench_generate.py
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from results import update_section

from tercap.scenario.generate import generate_scenario

COMMAND = ".venv/bin/python benchmarks/bench_generate.py"
SECTION = "## Synthetic generator"
# (accounts, reps, runs): the best of the runs is reported.
SIZES = ((3_000, 30, 5), (20_000, 200, 3), (100_000, 1_000, 3))


def time_generator(accounts: int, reps: int, runs: int) -> tuple[float, int, int]:
    """Best wall time of `runs` generations (files written), the rows written and the geo units."""
    best = float("inf")
    rows = units = 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            generate_scenario(folder, accounts=accounts, reps=reps, seed=0)
            best = min(best, time.perf_counter() - began)
            tables = sorted(Path(folder).glob("*.csv"))
            rows = sum(_data_rows(path) for path in tables)
            units = _data_rows(Path(folder) / "geo_units.csv")
    return best, rows, units


def _data_rows(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file) - 1


def results_section(measured: list[tuple[int, int, int, float, int, int]]) -> str:
    lines = [
        SECTION,
        "",
        "`generate_scenario` (tercap/scenario/generate.py): CSV tables, seed 0, wall time of one call",
        "including writing every file, best of the runs shown. Rows written: all six tables together.",
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}, with:",
        "",
        "```",
        COMMAND,
        "```",
        "",
        "| accounts × reps | geo units | rows written | best of | seconds | rows / s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for accounts, reps, runs, seconds, rows, units in measured:
        lines.append(f"| {accounts:,} × {reps:,} | {units:,} | {rows:,} | {runs} | {seconds:.2f} | "
                     f"{rows / seconds:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    measured = []
    for accounts, reps, runs in SIZES:
        seconds, rows, units = time_generator(accounts, reps, runs)
        print(f"{accounts:>7,} × {reps:>5,}: {seconds:6.2f} s, {rows:,} rows")
        measured.append((accounts, reps, runs, seconds, rows, units))
    update_section(SECTION, results_section(measured))


if __name__ == "__main__":
    main()
