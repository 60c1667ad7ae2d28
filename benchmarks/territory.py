"""Territory carving at three sizes: time, worst workload deviation, compactness, contiguity.

Generated scenarios (`generate_scenario(..., seed=1)`, accounts = 6 × units). Their own adjacency
table keeps only Delaunay edges shorter than 3 × the global median (plus a spanning tree), which leaves
rural areas almost tree-like; this benchmark drops the table so that adjacency is derived from the
centroids with the local rule of tercap.territory.units (an edge longer than 2.5 × the median at both
ends goes). Disconnected parts that cannot balance are reported by the plan's notes.

Run from the repository root:
    .venv/bin/python benchmarks/territory.py [--sizes 500x10 3000x100 10000x300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import update_section

SECTION = "## Territory design"
DEFAULT_SIZES = ("500x10", "3000x100", "10000x300")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    import tercap
    from tercap.scenario.generate import generate_scenario
    from tercap.territory import design_territories

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            units, count = (int(v) for v in size.split("x"))
            path = generate_scenario(Path(folder) / size, accounts=6 * units, reps=count, units=units, seed=1)
            scenario = tercap.load(path).replace(adjacency=None, territory={
                "balance": {"workload": args.tolerance}, "keep_home_units": False})
            began = time.perf_counter()
            plan = design_territories(scenario, time_limit=args.time_limit, method="heuristic")
            seconds = time.perf_counter() - began
            territories = plan.territories
            within = float(np.mean(np.abs(territories["workload"] / territories["workload"].mean() - 1)
                                   <= args.tolerance + 1e-9))
            islands = sum("not connected to the rest" in note for note in plan.notes)
            rows.append((size, seconds, plan.worst_deviation(), within, float(territories["compactness"].mean()),
                         bool(territories["contiguous"].all()), islands))
            print(rows[-1], flush=True)
    lines = [SECTION, "",
             f"`design_territories` (heuristic) into balanced territories at ±{args.tolerance:.0%} workload, "
             "compactness `distance`, on generated", "scenarios with adjacency derived from the centroids "
             "(see the script's docstring). Measured "
             f"{dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, with:",
             "", "```", shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| units × territories | seconds | worst deviation | territories within tolerance | mean radius km |"
             " all contiguous | parts that cannot balance |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for size, seconds, worst, within, radius, contiguous, islands in rows:
        lines.append(f"| {size} | {seconds:.1f} | {worst:.2%} | {within:.0%} | {radius:,.0f} | "
                     f"{'yes' if contiguous else 'no'} | {islands} |")
    lines += ["", "Peers (PySAL spopt, GerryChain) are not in this table yet."]
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
