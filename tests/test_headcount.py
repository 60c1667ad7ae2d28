"""Capacity planning: the answer reaches the probability and one fewer rep does not, each judged by the
engine; a later start is taken only where it still reaches it."""

from __future__ import annotations

import json

import pytest

import tercap
from tercap.cli import main
from tercap.errors import TercapError
from tercap.headcount import Candidate, plan_headcount
from tercap.run import run_plan
from tercap.scenario.generate import generate_scenario

ASKED = 0.6


@pytest.fixture(scope="module")
def short_team(tmp_path_factory):
    """400 accounts and 4 reps: the workload does not fit, and P(hit target) is about 50% today."""
    return generate_scenario(tmp_path_factory.mktemp("short"), accounts=400, reps=4, seed=5)


@pytest.fixture(scope="module")
def headcount(short_team):
    return plan_headcount(tercap.load(short_team), ASKED)


def test_the_answer_reaches_the_probability_and_one_fewer_does_not(headcount):
    answer = headcount.answer
    assert answer is not None and answer.hires >= 1
    table = headcount.table.set_index(["hires", "start_month"])
    reached = table.loc[(answer.hires, answer.start_month)]
    assert reached["p_hit_target"] >= ASKED and reached["fits"]
    fewer = table.loc[(answer.hires - 1, 1)]
    assert not (fewer["p_hit_target"] >= ASKED and fewer["fits"])
    today = table.loc[(0, 1)]
    assert not today["fits"] and today["unassigned_accounts"] > 0  # the reason to hire
    assert "Hire" in headcount.sentence()


def test_the_table_is_the_engine_s_answer(short_team, headcount):
    """A candidate's row is exactly the planning run of the scenario with those hires (same seed)."""
    base = tercap.load(short_team)
    answer = headcount.answer
    assert answer is not None
    run = run_plan(answer.scenario(base), seed=headcount.seed)
    row = headcount.table.set_index(["hires", "start_month"]).loc[(answer.hires, answer.start_month)]
    assert run.headline()["p_hit_target"] == row["p_hit_target"]
    assert len(run.scenario.planned_hires) == answer.hires


def test_later_starts_are_tried_and_kept_only_if_they_still_reach_it(headcount):
    answer = headcount.answer
    assert answer is not None
    later = headcount.table[(headcount.table["hires"] == answer.hires) & (headcount.table["start_month"] > 1)]
    assert len(later) >= 1
    kept = later[later["start_month"] <= answer.start_month]
    assert (kept["p_hit_target"] >= ASKED).all()
    after = later[later["start_month"] > answer.start_month]
    assert len(after) <= 1 and not (after["p_hit_target"] >= ASKED).any()


def test_hires_go_to_the_tightest_segment_first(short_team):
    from tercap.headcount import _allocate

    base = tercap.load(short_team)
    one = _allocate(base, ("enterprise", "mid_market", "smb"), 1, 1)
    assert isinstance(one, Candidate) and one.hires == 1
    summary = base.segment_summary()
    assert dict(one.by_segment)[str(summary["utilisation"].idxmax())] == 1


def test_bad_requests_are_refused(short_team):
    base = tercap.load(short_team)
    with pytest.raises(TercapError, match="between 0 and 1"):
        plan_headcount(base, 1.2)
    with pytest.raises(TercapError, match="have no accounts"):
        plan_headcount(base, 0.5, segments=("retail",))
    with pytest.raises(TercapError, match="month of the period"):
        plan_headcount(base, 0.5, start_month=13)


def test_capacity_command(short_team, tmp_path, capsys):
    code = main(["capacity", str(short_team), "--target-probability", "0.3", "--max-hires", "1",
                 "--out", str(tmp_path)])
    shown = capsys.readouterr()
    assert code == 0, shown.err
    summary = json.loads((tmp_path / "capacity" / "summary.json").read_text())
    assert summary["target_probability"] == 0.3 and summary["answer"] is None  # 0 and 1 hire leave accounts out
    assert "No headcount up to 1 hires" in shown.out
    assert (tmp_path / "capacity" / "headcount.png").stat().st_size > 10_000
    assert (tmp_path / "capacity" / "headcount.csv").is_file()
