"""Comparing the three example scenarios end to end, as a user runs it: `tercap compare` from empty run
folders, then again with every run reused, against the baseline of three separate `tercap plan` runs.

The figure to beat: under 3 minutes on 2 cores. Also recorded: how sharp the differences are, the
paired standard error of the difference in P(hit target) (same market for every scenario) against what
two independent simulations would give.

Run from the repository root:
    .venv/bin/python benchmarks/compare.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import update_section

SECTION = "## Comparing the example scenarios"
SCENARIOS = ("scenarios/acme_fy27.yaml", "scenarios/acme_fy27_hire5.yaml", "scenarios/acme_fy27_tight_balance.yaml")
TARGET_SECONDS = 180.0
TERCAP = str(Path(sys.executable).with_name("tercap"))


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        base = Path(root)
        plans = [timed([TERCAP, "plan", scenario, "--out", str(base / "plans" / Path(scenario).stem)])
                 for scenario in SCENARIOS]
        print("three plans", plans, flush=True)
        command = [TERCAP, "compare", *SCENARIOS, "--runs", str(base / "runs"), "--out", str(base / "out")]
        cold = timed(command)
        print("compare, empty run folders", cold, flush=True)
        warm = timed(command)
        print("compare, runs reused", warm, flush=True)
        summary = json.loads((base / "out" / "compare.json").read_text())
    table = {row["scenario"]: row for row in summary["table"]}
    lines = [SECTION, "",
             "`tercap compare` on the three example scenarios (base, five hires, ±5% balance; 3,000 accounts, "
             "10,000 trials each, default profile), each command a fresh process. Measured "
             f"{dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, with:",
             "", "```", shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| run | wall s | ratio to 3 × `tercap plan` |", "|---|---:|---:|",
             f"| baseline: `tercap plan` on each, one after another | {sum(plans):.1f} | 1.00 |",
             f"| `tercap compare`, empty run folders | {cold:.1f} | {cold / sum(plans):.2f} |",
             f"| `tercap compare` again, every run reused | {warm:.1f} | {warm / sum(plans):.3f} |", "",
             f"Cold compare {cold:.0f} s against the target of {TARGET_SECONDS:.0f} s "
             f"(ratio {TARGET_SECONDS / cold:.1f}).", "",
             "| scenario | P(hit target) | difference vs base | paired 95% interval | independent 95% interval |",
             "|---|---:|---:|---:|---:|"]
    trials = 10_000  # the example scenarios' simulation.trials
    p_base = table[summary["scenarios"][0]]["p_hit_target"]
    lines.append(f"| {summary['scenarios'][0]} | {p_base:.1%} | | | |")
    for row in summary["p_hit_target_vs_first"]:
        p = table[row["scenario"]]["p_hit_target"]
        independent = (p * (1 - p) / trials + p_base * (1 - p_base) / trials) ** 0.5
        lines.append(f"| {row['scenario']} | {p:.1%} | {row['difference']:+.1%} | ± {1.96 * row['standard_error']:.1%} "
                     f"| ± {1.96 * independent:.1%} |")
    lines += ["", "The paired interval is what the same simulated market gives (common random numbers); the "
              "independent one is what two simulations with their own seeds would leave."]
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
