"""Scenarios side by side: the example what-ifs differ as they should, on the same simulated market, and
run folders are reused only when their inputs are unchanged."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.cli import main
from tercap.report.compare import comparison_table_html, run_or_reuse, write_comparison
from tercap.scenario.generate import generate_scenario
from tests.conftest import REPO

TRIALS = 10_000  # the scenarios' own: simulation is the cheap part of a run


@pytest.fixture(scope="module")
def runs(example_runs) -> Path:
    return example_runs


@pytest.fixture(scope="module")
def comparison(runs):
    return tercap.compare([REPO / "scenarios" / "acme_fy27.yaml", REPO / "scenarios" / "acme_fy27_hire5.yaml"],
                          runs_dir=runs, trials=TRIALS)


def test_the_hire_scenario_has_more_capacity_and_better_odds(comparison):
    """Five hires add capacity and cost; the spare hours cover vacancies, so P(hit target) rises by more
    than three standard errors of the paired difference."""
    table = comparison.table()
    base, hired = table.loc["acme_fy27"], table.loc["acme_fy27_hire5"]
    assert hired["hires"] == 5 and base["hires"] == 0
    assert hired["capacity_hours"] > base["capacity_hours"]
    assert hired["workload_hours"] == base["workload_hours"]
    assert hired["headcount_cost"] > base["headcount_cost"] > 0
    assert hired["utilisation_max"] <= 1.0 and base["utilisation_max"] <= 1.0
    difference, error = comparison.difference_error(0, 1)
    assert difference == pytest.approx(hired["p_hit_target"] - base["p_hit_target"], abs=1e-12)
    assert difference > 3 * error > 0


def test_common_random_numbers_make_the_difference_sharp(comparison):
    """Both scenarios meet the same market: the paired standard error of the difference in P(hit target)
    is well below what two independent simulations would give."""
    _, paired = comparison.difference_error(0, 1)
    p = [record.headline["p_hit_target"] for record in comparison.records]
    independent = np.sqrt(sum(q * (1 - q) for q in p) / TRIALS)
    assert paired < 0.5 * independent
    a, b = (record.company_revenue for record in comparison.records)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_differences_name_the_accounts_and_reps(comparison):
    a, b = (record.assignments.set_index("account_id")["rep_id"] for record in comparison.records)
    changes = comparison.owner_changes()
    expected = sorted(a.index[a.reindex(a.index).to_numpy() != b.reindex(a.index).to_numpy()])
    assert sorted(changes["account_id"]) == expected and len(expected) > 0
    reps = comparison.rep_changes().set_index("rep_id")
    hires = [rep for rep in reps.index if rep.startswith("HIRE-")]
    assert len(hires) == 5
    assert (reps.loc[hires, "workload_hours_acme_fy27_hire5"] > 0).all()
    assert (reps.loc[hires, "workload_hours_acme_fy27"] == 0).all()
    moves = (reps["workload_change"].abs() / reps["workload_hours_acme_fy27"].replace(0, np.nan).mean())
    assert moves.iloc[0] >= moves.iloc[-1]


def test_runs_are_reused_only_with_the_same_inputs(runs, comparison):
    again = tercap.compare([REPO / "scenarios" / "acme_fy27.yaml", REPO / "scenarios" / "acme_fy27_hire5.yaml"],
                           runs_dir=runs, trials=TRIALS)
    assert all(record.reused for record in again.records)
    pd.testing.assert_frame_equal(again.table(), comparison.table())


def test_a_changed_table_or_setting_is_run_again(tmp_path):
    """The fingerprint covers the settings and the tables' content, not the files' names or times."""
    path = generate_scenario(tmp_path / "s", accounts=200, reps=4, seed=2)
    scenario = tercap.load(path).replace(simulation={"trials": 500})
    folder = tmp_path / "run"
    assert not run_or_reuse(scenario, folder).reused
    assert run_or_reuse(tercap.load(path).replace(simulation={"trials": 500}), folder).reused
    assert not run_or_reuse(scenario.replace(quota={"rounding": 10}), folder).reused
    accounts = path.parent / "accounts.csv"
    table = pd.read_csv(accounts, dtype=str, keep_default_na=False)
    table.loc[0, "potential"] = str(float(table.loc[0, "potential"]) + 1)
    table.to_csv(accounts, index=False)
    changed = tercap.load(path).replace(simulation={"trials": 500}, quota={"rounding": 10})
    assert not run_or_reuse(changed, folder).reused
    assert run_or_reuse(changed, folder).reused


def test_comparison_files_and_escaped_names(comparison, tmp_path):
    report = write_comparison(comparison, tmp_path / "out")
    text = report.read_text(encoding="utf-8")
    assert "acme_fy27_hire5" in text and text.count("<img") == 3
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert list(table["scenario"]) == ["acme_fy27", "acme_fy27_hire5"]
    summary = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert summary["p_hit_target_vs_first"][0]["scenario"] == "acme_fy27_hire5"
    changes = pd.read_csv(tmp_path / "out" / "differences" / "acme_fy27_hire5" / "owner_changes.csv")
    assert len(changes) == len(comparison.owner_changes())
    hostile = dataclasses.replace(comparison, records=(dataclasses.replace(comparison.records[0],
                                                                            name="<script>x</script>"),
                                                       comparison.records[1]))
    rendered = comparison_table_html(hostile)
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered


def test_compare_command(runs, comparison, tmp_path, capsys):
    """The CLI reuses the runs above (same inputs) and writes the comparison."""
    scenarios = [str(REPO / "scenarios" / name) for name in ("acme_fy27.yaml", "acme_fy27_hire5.yaml")]
    code = main(["compare", *scenarios, "--runs", str(runs), "--trials", str(TRIALS), "--out", str(tmp_path / "cmp")])
    shown = capsys.readouterr()
    assert code == 0, shown.err
    assert "P(hit target)" in shown.out and "reused (inputs unchanged): acme_fy27, acme_fy27_hire5" in shown.out
    assert (tmp_path / "cmp" / "compare.html").is_file()


def test_compare_refuses_one_scenario_and_twin_names(tmp_path, capsys):
    one = str(REPO / "scenarios" / "acme_fy27.yaml")
    assert main(["compare", one, "--runs", str(tmp_path)]) == 2
    assert main(["compare", one, one, "--runs", str(tmp_path)]) == 2
    assert "more than once" in capsys.readouterr().err
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_reps_at_risk_follow_the_threshold(comparison):
    table = comparison.table()
    assert (table["reps_at_risk"] == [r.headline["reps_at_risk"] for r in comparison.records]).all()  # 30%
    stricter = dataclasses.replace(comparison, risk_threshold=0.6)
    odds = pd.to_numeric(comparison.records[1].simulated_reps["p_attain"], errors="coerce")
    assert stricter.table()["reps_at_risk"].iloc[1] == int((odds < 0.6).sum()) > table["reps_at_risk"].iloc[1]
    assert "P(attain) < 60%" in dict((c, label) for c, label, _ in stricter.measures())["reps_at_risk"]
