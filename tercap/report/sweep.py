"""Scenario sweeps: a grid of what-ifs over one scenario, each point a planning run, all in one
comparison.

A grid file names settings by their dotted path and the values to try; the sweep runs every
combination:

    grid:
      assignment.balance.workload_tolerance: [0.05, 0.10]
      assignment.continuity.max_moved_share: [0.15, 0.25]
      capacity.hires:
        - []
        - [{count: 3, segment: enterprise, start_month: 4}]

Points run in parallel, with joblib on this machine or on a Dask cluster; each point is exactly the
planning run of `scenario.replace(...)` with its values (same seed for all: the same simulated market),
so a point's figures do not depend on where or beside what it ran. A point whose run folder holds a run
of the same inputs is reused.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tercap.errors import ProblemLog, ScenarioError, TercapError
from tercap.profiles import SolverProfile
from tercap.report import write_run
from tercap.report.compare import Comparison, RunRecord, reusable, write_comparison
from tercap.run import PlanningRun, run_inputs, run_plan
from tercap.runfolder import run_folder
from tercap.scenario import Scenario
from tercap.scenario.reading import load_yaml
from tercap.scenario.schema import Settings

MAX_POINTS = 500


@dataclass(frozen=True)
class SweepPoint:
    """One combination of the grid: its name and the values it sets (dotted path → value)."""

    name: str
    values: tuple[tuple[str, Any], ...]

    def scenario(self, base: Scenario) -> Scenario:
        """`base` with this point's values (and its name)."""
        changes: dict[str, Any] = {}
        for path, value in self.values:
            section, *keys = path.split(".")
            if not keys:
                changes[section] = value
                continue
            nested = changes.setdefault(section, {})
            for key in keys[:-1]:
                nested = nested.setdefault(key, {})
            nested[keys[-1]] = value
        try:
            return base.replace(name=self.name, **changes)
        except ScenarioError as exc:
            reasons = "; ".join(problem.message for problem in exc.errors)
            raise TercapError(f"sweep point {self.name} ({self.describe()}): {reasons}") from exc

    def describe(self) -> str:
        return ", ".join(f"{path}={json.dumps(value, default=str)}" for path, value in self.values)


def read_grid(path: str | Path) -> dict[str, list[Any]]:
    """The grid of a grid file: dotted setting path → values, checked against the scenario's sections."""
    path = Path(path)
    log = ProblemLog()
    loaded = load_yaml(path, log)  # the scenario files' safe loader: data only, no duplicate keys
    if loaded is None:
        raise ScenarioError(log.problems)
    data, _ = loaded
    if not isinstance(data, Mapping) or not isinstance(data.get("grid"), Mapping) or not data["grid"]:
        raise TercapError(f"{path}: a grid file holds `grid:`, a mapping of setting paths (e.g. "
                          "assignment.balance.workload_tolerance) to lists of values")
    unknown = set(data) - {"grid"}
    if unknown:
        raise TercapError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (only `grid:`)")
    grid: dict[str, list[Any]] = {}
    for key, values in data["grid"].items():
        section = str(key).split(".")[0]
        if section not in Settings.model_fields or section in ("name", "tables", "extends"):
            raise TercapError(f"{path}: grid key '{key}' does not start with a scenario section "
                              f"({', '.join(f for f in Settings.model_fields if f != 'name')})")
        if not isinstance(values, list) or not values:
            raise TercapError(f"{path}: grid key '{key}' needs a non-empty list of values")
        grid[str(key)] = values
    return grid


def sweep_points(base: Scenario, grid: Mapping[str, list[Any]]) -> list[SweepPoint]:
    """Every combination of the grid, named base-001, base-002, … in the grid's order."""
    combinations = list(itertools.product(*grid.values()))
    if len(combinations) > MAX_POINTS:
        raise TercapError(f"the grid has {len(combinations):,} points; at most {MAX_POINTS} in one sweep")
    return [SweepPoint(f"{base.name}-{number:03d}", tuple(zip(grid, values, strict=True)))
            for number, values in enumerate(combinations, start=1)]


def _run_point(scenario: Scenario, solver: str | SolverProfile | None, trials: int | None, seed: int) -> PlanningRun:
    """One point's planning run (in a worker process: no progress, one process)."""
    return run_plan(scenario, solver, trials=trials, seed=seed)


def run_sweep(base: Scenario, grid: Mapping[str, list[Any]], out_dir: str | Path, *,
              solver: str | SolverProfile | None = None, trials: int | None = None, seed: int | None = None,
              workers: int = 1, dask: str | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[Comparison, pd.DataFrame]:
    """Run every point of `grid` over `base` (run folders in `out_dir/points/NAME`), and return the
    comparison of all points and the table of each point's values and figures."""
    say = progress or (lambda _message: None)
    points = sweep_points(base, grid)
    scenarios = [point.scenario(base) for point in points]
    common_seed = int(base.settings.simulation.seed if seed is None else seed)
    folders = [Path(out_dir) / "points" / point.name for point in points]
    pending = [k for k, (scenario, folder) in enumerate(zip(scenarios, folders, strict=True))
               if not reusable(folder, run_inputs(scenario, solver, trials=trials, seed=common_seed))]
    say(f"{len(points)} points, {len(points) - len(pending)} reused, {len(pending)} to run")
    runs = _run_all([scenarios[k] for k in pending], solver, trials, common_seed, workers, dask,
                    lambda done: say(f"{done} of {len(pending)} points done"))
    for k, run in zip(pending, runs, strict=True):
        if not run.complete:
            reasons = "; ".join(run.plan.diagnosis or run.plan.violations) or run.plan.status.value
            raise TercapError(f"sweep point {points[k].name} ({points[k].describe()}): no plan ({reasons})")
        write_run(run, folders[k])
    records = tuple(RunRecord.read(folder, reused=k not in pending) for k, folder in enumerate(folders))
    comparison = Comparison(records, common_seed)
    values = pd.DataFrame([{path: json.dumps(value, default=str) if isinstance(value, list | dict) else value
                            for path, value in point.values} for point in points])
    table = pd.concat([pd.DataFrame({"point": [p.name for p in points]}), values,
                       comparison.table().reset_index(drop=True)], axis=1)
    return comparison, table


def _run_all(scenarios: list[Scenario], solver: str | SolverProfile | None, trials: int | None, seed: int,
             workers: int, dask: str | None, done: Callable[[int], None]) -> list[PlanningRun]:
    """The planning runs of `scenarios`, in their order: here, on joblib processes or on Dask."""
    if not scenarios:
        return []
    if dask:
        from tercap.dask_cluster import dask_client

        with dask_client(dask, workers) as client:
            from dask.distributed import as_completed

            futures = [client.submit(_run_point, scenario, solver, trials, seed, pure=False) for scenario in scenarios]
            for count, _ in enumerate(as_completed(futures), start=1):
                done(count)
            return client.gather(futures)
    if workers > 1 and len(scenarios) > 1:
        from joblib import Parallel, delayed

        runs = []
        for run in Parallel(n_jobs=workers, return_as="generator")(
                delayed(_run_point)(scenario, solver, trials, seed) for scenario in scenarios):
            runs.append(run)
            done(len(runs))
        return runs
    runs = []
    for scenario in scenarios:
        runs.append(_run_point(scenario, solver, trials, seed))
        done(len(runs))
    return runs


def write_sweep(comparison: Comparison, table: pd.DataFrame, out_dir: str | Path) -> Path:
    """sweep.csv (each point's values and figures) beside the comparison's files; returns compare.html."""
    report = write_comparison(comparison, out_dir)
    with run_folder(out_dir) as folder:
        folder.csv("sweep.csv", table)
    return report
