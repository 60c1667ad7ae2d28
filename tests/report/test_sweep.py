"""Scenario sweeps: every point equals its own planning run, whatever the worker count; runs are reused;
bad grids are refused with the key named."""

from __future__ import annotations

import pandas as pd
import pytest

import tercap
from tercap.cli import main
from tercap.errors import ScenarioError, TercapError
from tercap.report.sweep import read_grid, run_sweep, sweep_points
from tercap.run import run_plan
from tercap.scenario.generate import generate_scenario

GRID = {"assignment.balance.workload_tolerance": [0.05, 0.2],
        "capacity.hires": [[], [{"count": 1, "segment": "enterprise", "start_month": 4}]]}
TRIALS = 1000


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tercap.load(generate_scenario(tmp_path_factory.mktemp("base"), accounts=300, reps=5, seed=4))


@pytest.fixture(scope="module")
def swept(base, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, *run_sweep(base, GRID, out, trials=TRIALS, workers=2)


def test_every_combination_is_a_point(base, swept):
    _, comparison, table = swept
    assert len(table) == 4 == len(comparison.records)
    assert list(table["assignment.balance.workload_tolerance"]) == [0.05, 0.05, 0.2, 0.2]
    assert list(table["point"]) == [f"{base.name}-00{k}" for k in range(1, 5)]
    assert list(table["hires"]) == [0, 1, 0, 1]


def test_points_equal_individual_runs(base, swept):
    """Run on two processes, each point gives exactly what its scenario gives run alone."""
    _, comparison, _ = swept
    for point, record in zip(sweep_points(base, GRID), comparison.records, strict=True):
        alone = run_plan(point.scenario(base), trials=TRIALS, seed=comparison.seed).headline()
        for key in ("p_hit_target", "revenue_p50", "utilisation_cv", "quota_total", "accounts_moved", "hires"):
            assert record.headline[key] == pytest.approx(alone[key], rel=1e-12, abs=1e-12), (point.name, key)
        assignments = pd.read_csv(record.folder / "plan" / "assignments.csv", dtype=str, keep_default_na=False)
        assert len(assignments) == len(base.accounts)


def test_a_second_sweep_reuses_the_points(base, swept):
    out, _, table = swept
    again, again_table = run_sweep(base, GRID, out, trials=TRIALS)
    assert all(record.reused for record in again.records)
    pd.testing.assert_frame_equal(again_table, table)


def test_bad_grids_are_refused(tmp_path, base):
    path = tmp_path / "grid.yaml"
    path.write_text("grid:\n  assignmnt.balance.workload_tolerance: [0.1]\n")
    with pytest.raises(TercapError, match=r"assignmnt\.balance\.workload_tolerance"):
        read_grid(path)
    path.write_text("grid:\n  quota.rounding: 100\n")
    with pytest.raises(TercapError, match="non-empty list"):
        read_grid(path)
    path.write_text("grid:\n  quota.rounding: [10]\n  quota.rounding: [20]\n")
    with pytest.raises(ScenarioError, match="given twice"):
        read_grid(path)
    path.write_text("points: []\n")
    with pytest.raises(TercapError, match="grid:"):
        read_grid(path)
    bad = sweep_points(base, {"assignment.balance.workload_tolerance": [-1.0]})[0]
    with pytest.raises(TercapError, match=r"workload_tolerance=-1\.0"):
        bad.scenario(base)


def test_sweep_command(base, swept, tmp_path, capsys):
    out, _, _ = swept
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  assignment.balance.workload_tolerance: [0.05, 0.2]\n"
                    "  capacity.hires:\n    - []\n    - [{count: 1, segment: enterprise, start_month: 4}]\n")
    code = main(["sweep", str(base.source), "--grid", str(grid), "--trials", str(TRIALS), "--out", str(out)])
    shown = capsys.readouterr()
    assert code == 0, shown.err
    assert "4 points, 4 reused, 0 to run" in shown.err
    assert (out / "sweep.csv").is_file() and (out / "compare.html").is_file()


def test_a_sweep_on_dask_gives_the_same_points(base, swept, tmp_path):
    """The same points on a local Dask cluster: the same figures as on joblib processes."""
    _, comparison, _ = swept
    grid = {"assignment.balance.workload_tolerance": [0.05], "capacity.hires": GRID["capacity.hires"]}
    on_dask, _ = run_sweep(base, grid, tmp_path, trials=TRIALS, workers=2, dask="local")
    for record, same in zip(on_dask.records, comparison.records[:2], strict=True):
        assert record.headline["p_hit_target"] == same.headline["p_hit_target"]
        assert record.headline["plan_objective"] == same.headline["plan_objective"]
