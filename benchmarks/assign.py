"""Assignment benchmark: time to first plan, time to 1% gap, final gap to the LP bound, peak memory.

Each (size, backend) runs in its own process so that peak memory is its own. Where a generated
segment has more work than hours, its reps' hours are raised to carry it at 92%. The baseline is the
dense model (every same-segment rep eligible, no nearness) handed whole to the same solver as one
MIP, with the same time limit, in the same run.

Run from the repository root:
    .venv/bin/python benchmarks/assign.py                       # all sizes, HiGHS, and the baseline
    .venv/bin/python benchmarks/assign.py --sizes 1000x20 --backends highs cpsat cbc
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import update_section

SECTION = "## Account assignment"
DEFAULT_SIZES = ("1000x20", "10000x100", "50000x500", "100000x1000")


def with_enough_capacity(scenario: object) -> object:
    """The scenario with each segment's rep hours raised, where needed, to carry its workload at 92%:
    the benchmark measures the balancing, not the penalty of accounts left unassigned."""
    summary = scenario.segment_summary().drop(index="total")
    factor = (summary["utilisation"] / 0.92).clip(lower=1.0)
    reps = scenario.reps
    reps["capacity_hours"] = reps["capacity_hours"] * reps["segment"].map(factor).fillna(1.0).to_numpy()
    return scenario.replace(reps=reps)


def run_one(scenario_path: str, backend: str, baseline: bool, time_limit: float) -> dict:
    """In this process: compile, solve, and report the figures as a dict."""
    import tercap
    from tercap.assign import compile_assignment
    from tercap.backends import relative_gap
    from tercap.profiles import SolverProfile

    scenario = with_enough_capacity(tercap.load(scenario_path))
    if baseline:
        scenario = scenario.replace(assignment={"eligibility": {"nearest_reps": 0}})  # 0: every eligible rep
        began = time.perf_counter()
        compiled = compile_assignment(scenario)
        # the whole dense model to the solver, no decomposition, no warm start
        from tercap.backends import SolveLimits, get_backend

        result = get_backend(backend).solve(compiled.model, SolveLimits(time_limit=time_limit, mip_gap=0.005))
        seconds = time.perf_counter() - began
        lp = get_backend("highs").solve(compiled.model.relaxed(), SolveLimits(time_limit=time_limit))
        objective = None
        if result.x is not None:
            objective = compiled.model.objective(compiled.solution_from(compiled.choice_from(result.x)))
        # the solver's own proven bound where it beats the LP's, as for tercap's rows
        bounds = [b for b in (lp.objective, result.bound) if b is not None]
        bound = max(bounds) if bounds else None
        gap = relative_gap(objective, bound)
        return {"variables": compiled.model.num_cols, "status": result.status.value,
                "solver_status": result.solver_status,
                "first_plan_s": seconds if objective is not None else None,
                "to_1pct_s": seconds if gap is not None and gap <= 0.01 else None, "total_s": seconds,
                "gap": gap, "lp_gap": relative_gap(objective, lp.objective), "objective": objective,
                "bound": bound}
    profile = SolverProfile.named("default")
    profile = SolverProfile(**{**profile.__dict__, "backend": backend, "time_limit": time_limit})
    began = time.perf_counter()
    plan = tercap.plan(scenario, profile)
    total = time.perf_counter() - began
    stats = plan.stats
    # first plan and 1%: when the first plan, and the first plan within 1% of the final bound, were found
    first = stats.incumbents[0][0] if stats.incumbents else None
    to_1pct = next((seconds for seconds, value in stats.incumbents
                    if (relative_gap(value, stats.bound) or 1.0) <= 0.01), None)
    return {"variables": stats.variables, "status": stats.status.value, "solver_status": stats.solver_status,
            "first_plan_s": first, "to_1pct_s": to_1pct, "total_s": total, "gap": stats.gap,
            "objective": stats.objective, "bound": stats.bound, "widening": stats.widening,
            "lp_gap": relative_gap(stats.objective, stats.lp_bound), "lp_bound": stats.lp_bound,
            "phases": [f"{name} {seconds:.1f}s {note}" for name, seconds, note in stats.phases],
            "violations": len(plan.violations)}


def measure(scenario_path: str, backend: str, baseline: bool, time_limit: float) -> dict:
    """Run one case in a child process, which reports its own peak memory."""
    command = [sys.executable, __file__, "--child", scenario_path, backend, str(int(baseline)), str(time_limit)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"status": "error", "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--backends", nargs="+", default=["highs"])
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default: 60, 600 past 50k)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-limit", type=int, default=20_000, help="largest accounts count for the baseline")
    parser.add_argument("--title", default="", help="suffix of the RESULTS.md section (one section per title)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        from tercap.scenario.generate import generate_scenario

        for size in args.sizes:
            accounts, reps = (int(v) for v in size.split("x"))
            path = generate_scenario(Path(folder) / size, accounts=accounts, reps=reps, seed=1)
            limit = args.time_limit or (60.0 if accounts <= 20_000 else 600.0)
            for backend in args.backends:
                figures = measure(str(path), backend, False, limit)
                rows.append((size, backend, "tercap default", limit, figures))
                print(size, backend, figures, flush=True)
                if not args.no_baseline and accounts <= args.baseline_limit:
                    base = measure(str(path), backend, True, limit)
                    rows.append((size, backend, "dense MIP baseline", limit, base))
                    print(size, backend, "baseline", base, flush=True)

    section = f"{SECTION}: {args.title}" if args.title else SECTION
    lines = [section, "",
             "Generated scenarios (`generate_scenario(..., seed=1)`), default profile with the backend shown,",
             "against the baseline: the dense model (every same-segment rep eligible) handed whole to the",
             "same solver as one MIP, same time limit, same run. Gap: (objective − bound) / objective, the bound",
             "being the LP relaxation's, raised where a block (a segment) was solved exactly (the baseline's:",
             "the better of its LP's and its solver's own); LP gap: against the LP relaxation alone.",
             f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
             "with:", "", "```", shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| accounts × reps | backend | method | limit s | variables | first plan s | to 1% s | total s |"
             " final gap | LP gap | peak GiB | status |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    by_case: dict[tuple[str, str], dict[str, dict]] = {}
    for size, backend, method, limit, f in rows:
        by_case.setdefault((size, backend), {})[method] = f
        lines.append(f"| {size} | {backend} | {method} | {limit:.0f} | {f.get('variables', 0):,} | "
                     f"{_fmt(f.get('first_plan_s'), '{:.1f}')} | {_fmt(f.get('to_1pct_s'), '{:.1f}')} | "
                     f"{_fmt(f.get('total_s'), '{:.1f}')} | {_fmt(f.get('gap'), '{:.2%}')} | "
                     f"{_fmt(f.get('lp_gap'), '{:.2%}')} | "
                     f"{_fmt(f.get('peak_gib'), '{:.2f}')} | {f.get('status')} |")
    ratios = []
    for (size, backend), methods in by_case.items():
        ours, base = methods.get("tercap default"), methods.get("dense MIP baseline")
        if ours and base and ours.get("total_s") and base.get("total_s"):
            ratios.append(f"- {size}, {backend}: baseline time ÷ tercap time = "
                          f"{base['total_s'] / ours['total_s']:.1f}; final gap {_fmt(ours.get('gap'), '{:.2%}')} vs "
                          f"{_fmt(base.get('gap'), '{:.2%}')} ({base.get('status')})")
    if ratios:
        lines += ["", "Ratios against the baseline (same run):", *ratios]
    update_section(section, "\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, path, backend, baseline, limit = sys.argv
        figures = run_one(path, backend, baseline == "1", float(limit))
        figures["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(json.dumps(figures))
    else:
        main()
