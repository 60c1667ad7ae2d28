"""Hard generalised-assignment instances: the `exact` profile in 60 s against an established optimum.

Instances follow the classic "type D" construction (Martello and Toth; Chu and Beasley): workload
a(i, j) ~ U[1, 100], cost c(i, j) = 111 − a(i, j) + U[−10, 10], capacity 0.8 × Σ_j a(i, j) / m —
tight capacities, cost and workload both depending on the pair. The optimum is established by a long
HiGHS run that must prove it (gap 0); where it cannot, its best plan and bound are shown instead.

Run from the repository root:  .venv/bin/python benchmarks/gap.py [--sizes 10x100 20x200 ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np
import pandas as pd
from results import update_section

import tercap
from tercap.assign import compile_assignment
from tercap.assign.solve import solve_compiled
from tercap.backends import SolveLimits, get_backend
from tercap.profiles import SolverProfile

SECTION = "## Hard generalised assignment (type D)"
DEFAULT_SIZES = ("5x100", "10x100", "10x200", "20x200", "20x400", "80x1600")


def type_d(reps: int, accounts: int, seed: int) -> tercap.Scenario:
    """A type-D GAP instance as a scenario in cost mode, its pairs in the pairs table."""
    rng = np.random.default_rng(seed)
    workload = rng.integers(1, 101, size=(reps, accounts)).astype(float)
    cost = 111 - workload + rng.integers(-10, 11, size=(reps, accounts))
    capacity = np.floor(0.8 * workload.sum(axis=1) / reps)
    rep_ids = [f"R{i:03d}" for i in range(reps)]
    account_ids = [f"A{j:05d}" for j in range(accounts)]
    reps_table = pd.DataFrame({"rep_id": rep_ids, "lat": 40.0, "lon": -90.0, "segment": "all",
                               "capacity_hours": capacity / 12})
    accounts_table = pd.DataFrame({"account_id": account_ids, "lat": 40.0, "lon": -90.0, "segment": "all",
                                   "potential": 1.0, "workload_hours": workload.mean(axis=0)})
    pairs = pd.DataFrame({"account_id": np.tile(account_ids, reps), "rep_id": np.repeat(rep_ids, accounts),
                          "workload_hours": workload.ravel(), "cost": cost.ravel(), "eligible": True})
    settings = {"period": {"start": "2027-01-01"},
                "assignment": {"mode": "cost", "eligibility": {"nearest_reps": None},
                               "workload_model": {"hours_by_segment": {"all": 1.0}}}}
    return tercap.Scenario.from_tables(settings, {"reps": reps_table, "accounts": accounts_table, "pairs": pairs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="REPSxACCOUNTS")
    parser.add_argument("--establish-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    exact = SolverProfile.named("exact")
    exact = SolverProfile(**{**exact.__dict__, "time_limit": 60.0})
    lines = [SECTION, "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
             "with:", "", "```", f".venv/bin/python benchmarks/gap.py --sizes {' '.join(args.sizes)} "
             f"--establish-seconds {args.establish_seconds:g}", "```", "",
             "| reps × accounts | established optimum | proven | exact in 60 s | vs established | vs bound | seconds |"
             " status |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for size in args.sizes:
        reps, accounts = (int(v) for v in size.split("x"))
        scenario = type_d(reps, accounts, args.seed)
        compiled = compile_assignment(scenario)
        long_run = get_backend("highs").solve(compiled.model, SolveLimits(time_limit=args.establish_seconds,
                                                                          mip_gap=0.0))
        optimum = long_run.objective
        proven = long_run.status.value == "optimal"
        began = time.perf_counter()
        outcome = solve_compiled(compiled, exact)
        seconds = time.perf_counter() - began
        gap = None if optimum is None or outcome.objective is None else (outcome.objective - optimum) / optimum
        bound = long_run.bound if long_run.bound is not None else outcome.bound
        found = outcome.objective
        to_bound = None if bound is None or found is None else (found - bound) / found
        established = "—" if optimum is None else f"{optimum:,.0f}"
        if not proven and long_run.bound is not None:
            established += f" (bound {long_run.bound:,.1f})"
        row = (f"| {reps} × {accounts} | {established} | {'yes' if proven else 'no'} | "
               f"{'—' if outcome.objective is None else f'{outcome.objective:,.0f}'} | "
               f"{'—' if gap is None else f'{gap:.3%}'} | {'—' if to_bound is None else f'{to_bound:.3%}'} | "
               f"{seconds:.1f} | {outcome.status.value} |")
        print(row, flush=True)
        lines.append(row)
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
