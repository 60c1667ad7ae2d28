"""Plans end to end: locks, caps, determinism, diagnosis, the run folder and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.assign.check import check_assignment
from tercap.cli import main
from tercap.profiles import SolverProfile
from tercap.runfolder import neutralise_text, run_folder
from tercap.status import SolveStatus

from ..conftest import REPO
from .instances import tiny_scenario

QUICK = SolverProfile(name="test-quick", strategy="decompose", time_limit=20)


@pytest.fixture(scope="module")
def example() -> tercap.Scenario:
    return tercap.load(REPO / "scenarios" / "acme_fy27.yaml")


@pytest.fixture(scope="module")
def example_plan(example) -> tercap.Plan:
    return tercap.plan(example, "quick")


def test_example_plan_is_feasible_checked_and_bounded(example, example_plan):
    assert example_plan.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT)
    assert example_plan.violations == ()
    stats = example_plan.stats
    assert stats.bound <= stats.objective and stats.gap < 0.02
    assert set(example_plan.assignments["account_id"]) == set(example.accounts["account_id"])
    reps = example_plan.reps
    assert (reps["workload_hours"] <= reps["capacity_hours"] + 1e-6).all()
    summary = example_plan.summary()
    for key in ("scenario", "backend", "profile", "status", "objective", "objective_terms", "bound", "gap",
                "seconds", "variables", "constraints", "kpis"):
        assert key in summary
    for key in ("utilisation_max", "utilisation_min", "utilisation_cv", "potential_share_cv", "accounts_moved",
                "accounts_moved_share", "potential_moved_share", "mean_travel_km"):
        assert key in summary["kpis"]
    # the plan is better balanced than the books today
    today = example.accounts.groupby("current_owner")["workload_hours"].sum()
    assert example_plan.reps["workload_hours"].std() < today.std()


def test_locks_hold(example, example_plan):
    locked = example.accounts[example.accounts["locked"]]
    assert len(locked) > 0
    placed = example_plan.assignments.set_index("account_id").loc[locked["account_id"], "rep_id"]
    assert (placed.to_numpy() == locked["current_owner"].to_numpy()).all()


def test_moved_share_cap_holds(example, example_plan):
    cap = example.settings.assignment.continuity.max_moved_share
    owned = example.accounts["current_owner"].notna().sum()
    assert example_plan.kpis["accounts_moved"] <= np.floor(cap * owned)
    tighter = example.replace(assignment={"continuity": {"max_moved_share": 0.2},
                                          "balance": {"workload_tolerance": 0.3, "potential_tolerance": 0.5}})
    plan = tercap.plan(tighter, QUICK)
    assert plan.status.has_plan and plan.violations == ()
    assert plan.kpis["accounts_moved"] <= np.floor(0.2 * owned)
    impossible = example.replace(assignment={"continuity": {"max_moved_share": 0.1}})
    plan = tercap.plan(impossible, QUICK)
    assert plan.status is SolveStatus.INFEASIBLE
    assert any("cap on the share of accounts moved" in line for line in plan.diagnosis), plan.diagnosis


def test_same_input_same_plan(example):
    # a fixed number of neighbourhood rounds, none cut by the time limit: the plan cannot depend on speed
    fixed = SolverProfile(name="test-fixed", strategy="decompose", time_limit=300, lns_rounds=3)
    first = tercap.plan(example, fixed).assignments
    second = tercap.plan(example, fixed).assignments
    pd.testing.assert_frame_equal(first, second)


def test_hires_take_accounts(example_runs):
    """The hire what-if's plan (the session's planning run: written only when the checker passed it)."""
    reps = pd.read_csv(example_runs / "acme_fy27_hire5" / "plan" / "reps.csv")
    summary = pd.read_json(example_runs / "acme_fy27_hire5" / "plan" / "summary.json", typ="series")
    assert summary["status"] in ("optimal", "feasible", "time_limit")
    hires = reps[reps["rep_id"].str.startswith("HIRE-")]
    assert len(hires) == 5 and (hires["accounts"] > 0).all()
    assert (hires["workload_hours"] <= hires["capacity_hours"] + 1e-6).all()


def test_unassigned_accounts_are_reported_when_capacity_is_short():
    scenario = tiny_scenario(3, accounts=10, reps=2, assignment={"balance": {"hard": False}})
    starved = scenario.replace(reps=scenario.reps.assign(capacity_hours=2.0))
    plan = tercap.plan(starved, QUICK)
    assert plan.status.has_plan
    assert len(plan.unassigned) > 0
    assert plan.kpis["unassigned_accounts"] == len(plan.unassigned)


def test_lock_above_capacity_is_diagnosed():
    scenario = tiny_scenario(1, accounts=6, reps=3)
    accounts = scenario.accounts.assign(current_owner="R0", locked=True)
    plan = tercap.plan(scenario.replace(accounts=accounts), QUICK)
    assert plan.status is SolveStatus.INFEASIBLE
    assert any("accounts locked to R0 need" in line for line in plan.diagnosis), plan.diagnosis


def test_band_too_narrow_names_the_balance_family():
    scenario = tiny_scenario(2, accounts=6, reps=3, assignment={"balance": {"workload_tolerance": 0.0,
                                                                          "potential_tolerance": 5.0}})
    plan = tercap.plan(scenario, QUICK)
    assert plan.status is SolveStatus.INFEASIBLE
    text = " ".join(plan.diagnosis)
    assert "workload balance band" in text and "blocks" in text, plan.diagnosis


@pytest.mark.parametrize("hours, blocked", [((30.0, 30.0, 30.0), True), ((30.0, 15.0, 45.0), False)])
def test_a_band_no_set_of_accounts_can_meet_is_named(hours, blocked):
    """Two reps of 100 h, accounts of 30 h: each rep's band (about 40–50 h) lies between one and two
    accounts. With 30, 15 and 45 h the same band is narrow too, but 45 h (or 30 + 15) meets it."""
    scenario = tiny_scenario(3, accounts=3, reps=2, assignment={"balance": {"workload_tolerance": 0.1,
                                                                          "potential_tolerance": 5.0}})
    scenario = scenario.replace(reps=scenario.reps.assign(capacity_hours=100 / 12),  # per month
                                accounts=scenario.accounts.assign(workload_hours=list(hours), locked=False))
    plan = tercap.plan(scenario, QUICK)
    named = [line for line in plan.diagnosis if "lands in its bands" in line]
    if blocked:
        assert plan.status is SolveStatus.INFEASIBLE
        assert len(named) == 2 and "R0" in named[0] and "30 h" in named[0], plan.diagnosis
    else:
        assert plan.status.has_plan and not named


def test_departed_owner_beyond_move_cap_is_diagnosed():
    scenario = tiny_scenario(4, accounts=8, reps=3, assignment={"continuity": {"max_moved_share": 0.0}})
    reps = scenario.reps.assign(end_date=pd.to_datetime(["2026-06-30", None, None]))
    accounts = scenario.accounts.assign(current_owner="R0")
    plan = tercap.plan(scenario.replace(reps=reps, accounts=accounts), QUICK)
    assert plan.status is SolveStatus.INFEASIBLE
    assert any("must change owner" in line for line in plan.diagnosis), plan.diagnosis


def test_cli_assign_writes_the_plan_files(tmp_path, capsys):
    code = main(["assign", str(REPO / "scenarios" / "acme_fy27.yaml"), "--solver", "quick", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "plan" in text and "gap" in text
    assignments = pd.read_csv(tmp_path / "plan" / "assignments.csv")
    assert list(assignments.columns) == ["account_id", "rep_id", "previous_rep_id", "moved", "workload_hours",
                                         "potential", "distance_km"]
    reps = pd.read_csv(tmp_path / "plan" / "reps.csv")
    assert list(reps.columns) == ["rep_id", "accounts", "workload_hours", "capacity_hours", "utilisation",
                                  "potential", "potential_share", "travel_km", "moved_in", "moved_out",
                                  "industry_match_share"]
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["status"] in ("optimal", "feasible", "time_limit") and summary["profile"] == "quick"
    assert not any(p.name.startswith(".staging") for p in tmp_path.iterdir())


def test_cli_plan_of_an_infeasible_scenario_exits_2_with_a_diagnosis(tmp_path, capsys, tiny):
    tiny.edit("accounts.csv", "complex,R2,false", "complex,R1,true")
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"].replace(
        "quota:", "assignment:\n  balance: {workload_tolerance: 0.0}\nquota:"))
    code = main(["plan", str(tiny.path), "--solver", "quick", "--out", str(tmp_path / "run")])
    text = capsys.readouterr()
    assert code == 2
    assert "no plan" in text.err and "Traceback" not in text.err + text.out
    assert not (tmp_path / "run" / "plan").exists()


def test_cli_unknown_solver_profile_exits_2(capsys):
    code = main(["plan", str(REPO / "scenarios" / "acme_fy27.yaml"), "--solver", "fastest"])
    assert code == 2 and "unknown solver profile 'fastest'" in capsys.readouterr().err


def test_run_folder_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(RuntimeError), run_folder(tmp_path) as folder:
        folder.csv("plan/assignments.csv", pd.DataFrame({"a": [1]}))
        raise RuntimeError("the run failed half way")
    assert list(tmp_path.iterdir()) == []


def test_formula_text_is_neutralised():
    frame = pd.DataFrame({"name": ["=HYPERLINK(\"x\")", "+1", "Acme", "@sum", "-2"], "value": [-1.0, 2, 3, 4, 5]})
    out = neutralise_text(frame)
    assert out["name"].tolist() == ["'=HYPERLINK(\"x\")", "'+1", "Acme", "'@sum", "'-2"]
    assert out["value"].tolist() == [-1.0, 2, 3, 4, 5]


def test_profiles_from_files(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('time_limit = 5\nstrategy = "decompose"\n')
    profile = SolverProfile.from_file(path)
    assert profile.time_limit == 5 and profile.backend == "highs" and profile.name == "mine"
    for name in ("default", "exact", "quick", "cpsat", "cbc"):
        assert SolverProfile.named(name).name == name
    path.write_text("time_limt = 5\n")
    with pytest.raises(tercap.TercapError, match="unknown key"):
        SolverProfile.from_file(path)


def test_plan_checks_itself(example, example_plan):
    assert check_assignment(example, example_plan.assignments[["account_id", "rep_id"]]) == []
    html = example_plan._repr_html_()
    assert "Plan for acme_fy27" in html
