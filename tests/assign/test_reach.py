"""Reach: when no plan exists among the nearest reps, only the accounts the bands need go farther."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.assign import compile_assignment, plan
from tercap.assign.check import check_assignment
from tercap.assign.reach import reach_pairs
from tercap.status import SolveStatus


def two_metros(west_accounts: int = 12, east_accounts: int = 4, east_reps: int = 3) -> tercap.Scenario:
    """One rep in the west with most of the accounts, three reps in the east with few: every rep must
    carry the same workload (±10%), and each account may go to its nearest rep only."""
    reps = pd.DataFrame({
        "rep_id": ["W1", *[f"E{i}" for i in range(1, east_reps + 1)]],
        "lat": [40.0, *np.linspace(39.0, 41.0, east_reps)], "lon": [-120.0, *np.full(east_reps, -75.0)],
        "segment": "smb", "experience_years": 5.0, "capacity_hours": 100.0, "industries": "retail",
    })
    lon = np.concatenate([np.linspace(-122.0, -110.0, west_accounts), np.linspace(-76.0, -74.0, east_accounts)])
    count = west_accounts + east_accounts
    accounts = pd.DataFrame({
        "account_id": [f"A{i:02d}" for i in range(count)], "lat": 40.0, "lon": lon, "segment": "smb",
        "potential": 1000.0, "workload_hours": 10.0, "buying_process": "consultative", "industry": "retail",
        "current_owner": "",
    })
    settings = {"period": {"start": "2027-01-01"},
                "assignment": {"balance": {"workload_tolerance": 0.1, "potential_tolerance": 0.1},
                               "eligibility": {"nearest_reps": 1}}}
    return tercap.Scenario.from_tables(settings, {"reps": reps, "accounts": accounts})


def test_nearest_reps_alone_cannot_balance_two_metros():
    scenario = two_metros()
    compiled = compile_assignment(scenario)
    from tercap.backends import SolveLimits, get_backend

    lp = get_backend("highs").solve(compiled.model.relaxed(), SolveLimits(time_limit=10))
    assert lp.status is SolveStatus.INFEASIBLE


def test_reach_adds_only_west_accounts_to_east_reps():
    scenario = two_metros()
    compiled = compile_assignment(scenario)
    account, rep = reach_pairs(compiled, scenario.settings.assignment.eligibility)
    assert account.size > 0
    assert set(compiled.inputs.rep_ids[rep]) <= {"E1", "E2", "E3"}
    assert all(compiled.inputs.account_lon[account] < -100)  # only the crowded metro's accounts reach out
    widened = compile_assignment(scenario, 0, (account, rep))
    assert 0 < widened.pairs.reached.sum() <= account.size


def test_plan_reaches_farther_reps_and_says_so():
    scenario = two_metros()
    result = plan(scenario, "exact")
    assert result.status.has_plan
    assert result.stats.widening == 0  # no uniform widening was needed
    loads = result.reps.set_index("rep_id")["accounts"]
    assert loads.tolist() == [4, 4, 4, 4]  # 16 accounts of 10 h, four reps within ±10% of 40 h
    # the west rep keeps 4 of 12 and 8 go east: 4 that the east reps see among their nearest accounts
    # (reverse fill), and 4 more that only reach allows
    assert result.stats.reached_accounts == 4
    assert result.summary()["accounts_beyond_nearest"] == 4
    assert result.violations == ()
    table = result.assignments[["account_id", "rep_id"]]
    # the checker, told nothing, sees the nearness rule broken; told what reach allowed, it is satisfied
    assert any("nearest" in problem for problem in check_assignment(scenario, table))


@pytest.mark.parametrize("profile", ["quick", "default"])
def test_reach_is_not_used_when_the_nearest_reps_suffice(profile):
    scenario = two_metros(west_accounts=8, east_accounts=8)  # two reps each side: each metro balances itself
    scenario = scenario.replace(reps=scenario.reps.assign(lon=[-120.0, -121.0, -75.0, -75.5]))
    result = plan(scenario, profile)
    assert result.status.has_plan
    assert result.stats.reached_accounts == 0


def test_a_rep_there_only_days_has_no_band_floor():
    scenario = two_metros(west_accounts=8, east_accounts=8)
    reps = scenario.reps.assign(lon=[-120.0, -121.0, -75.0, -75.5])
    leaver = reps.iloc[[3]].assign(rep_id="L1", end_date=pd.Timestamp("2027-01-02"))  # 2 days: less than 1 account
    scenario = scenario.replace(reps=pd.concat([reps, leaver], ignore_index=True))
    compiled = compile_assignment(scenario)
    leaver_index = list(compiled.inputs.rep_ids).index("L1")
    assert compiled.workload_band[0][leaver_index] == 0.0 < compiled.workload_band[1][leaver_index] < 10.0
    result = plan(scenario, "exact")
    assert result.status.has_plan and result.violations == ()
    assert result.reps.set_index("rep_id").at["L1", "accounts"] == 0


def test_a_rep_among_large_accounts_only_has_no_band_floor():
    """S's band top (about 10 h) is below every account it may take (the 20-h accounts around it), though
    its segment has 5-h accounts far away: it carries nothing, and engine and checker both allow that."""
    scenario = two_metros(west_accounts=8, east_accounts=8)
    reps = scenario.reps.assign(lon=[-120.0, -121.0, -75.0, -75.5], capacity_hours=[40.0, 40.0, 160.0, 160.0])
    small = reps.iloc[[3]].assign(rep_id="S1", lat=45.0, capacity_hours=20.0)
    hours = np.where(scenario.accounts["lon"] < -100, 5.0, 20.0)
    accounts = scenario.accounts.assign(workload_hours=hours, potential=50.0 * hours)
    scenario = scenario.replace(reps=pd.concat([reps, small], ignore_index=True), accounts=accounts)
    compiled = compile_assignment(scenario)
    s1 = list(compiled.inputs.rep_ids).index("S1")
    assert compiled.pairs.workload[compiled.pairs.rep == s1].min() == 20.0
    assert compiled.workload_band[0][s1] == 0.0 < compiled.workload_band[1][s1] < 20.0
    result = plan(scenario, "exact")
    assert result.status.has_plan and result.violations == ()
    assert result.reps.set_index("rep_id").at["S1", "accounts"] == 0
    # a 5-h account next to S1 is one it could carry: then the floor holds, and the checker says so
    near = accounts.iloc[[0]].assign(account_id="N1", lat=45.0, lon=-75.5)
    widened = scenario.replace(accounts=pd.concat([accounts, near], ignore_index=True))
    table = result.assignments[["account_id", "rep_id"]]
    table = pd.concat([table, pd.DataFrame({"account_id": ["N1"], "rep_id": ["E1"]})], ignore_index=True)
    assert any("workload_balance: S1" in problem for problem in check_assignment(widened, table))
