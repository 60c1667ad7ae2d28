"""Figures draw from a plan without a display."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import tercap.plotting as plotting
from tercap.profiles import SolverProfile

from .assign.instances import tiny_scenario


def test_balance_figure_has_a_bar_per_active_rep():
    import tercap

    plan = tercap.plan(tiny_scenario(0, accounts=12, reps=4), SolverProfile(name="t", strategy="decompose"))
    ax = plotting.balance(plan)
    active = (plan.reps["capacity_hours"] > 0).sum()
    assert len(ax.patches) == active
    assert [t.get_text() for t in ax.get_xticklabels()][:1] != [""]
    ax.figure.savefig(__import__("io").BytesIO(), format="png")


def test_simulation_figures_draw():
    import io

    import tercap
    from tests.conftest import REPO

    result = tercap.stress_test(tercap.load(REPO / "scenarios" / "acme_fy27.yaml"), trials=512, seed=1)
    fan = plotting.revenue_fan(result)
    assert len(fan.collections) == 2 and len(fan.get_xticklabels()) == 12  # two bands, one tick a month
    odds = plotting.attainment_odds(result)
    assert len(odds.patches) == (result.quota > 0).sum()
    spread = plotting.attainment_spread(result, reps=10)
    assert len(spread.get_xticklabels()) == 10
    for ax in (fan, odds, spread):
        ax.figure.savefig(io.BytesIO(), format="png")


def test_plan_and_quota_figures_draw():
    import io
    from types import SimpleNamespace

    import pandas as pd

    import tercap
    from tercap.quota import allocate_quotas
    from tests.conftest import REPO

    scenario = tercap.load(REPO / "scenarios" / "acme_fy27.yaml")
    accounts = scenario.accounts
    today = SimpleNamespace(scenario=scenario.name, assignments=pd.DataFrame({
        "account_id": accounts["account_id"], "rep_id": accounts["current_owner"],
        "moved": accounts["account_id"].isin(accounts["account_id"].head(40)), "potential": accounts["potential"]}))
    result = tercap.stress_test(scenario, trials=256, seed=1)
    quotas = allocate_quotas(scenario, None, result)
    ax = plotting.account_map(today, scenario)
    assert len(ax.collections) == 3  # accounts, moved rings, rep homes
    moved = plotting.account_map(today, scenario, moved_only=True)
    assert len(moved.collections[0].get_offsets()) == 40
    bars = plotting.potential_and_quota(quotas)
    assert len(bars.patches) == int((quotas.table["quota"] > 0).sum())
    rate = plotting.attainment_rate(result)
    assert sum(p.get_height() for p in rate.patches) == 256
    for axes in (ax, moved, bars, rate):
        axes.figure.savefig(io.BytesIO(), format="png")
