"""Quota allocation: sums, ramp, floors and caps, books that change hands, equal probability."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.errors import TercapError
from tercap.quota import QUOTA_COLUMNS, QUOTA_METHODS, allocate_quotas
from tests.conftest import REPO


@pytest.fixture(scope="module")
def hire5() -> tercap.Scenario:
    return tercap.load(REPO / "scenarios" / "acme_fy27_hire5.yaml")


def books_with_hires(scenario: tercap.Scenario) -> SimpleNamespace:
    """Today's books, except that R0001's and R0002's accounts go to the first two hires."""
    accounts = scenario.accounts
    rep = accounts["current_owner"].astype(object).replace({"R0001": "HIRE-01", "R0002": "HIRE-02"})
    return SimpleNamespace(assignments=pd.DataFrame({"account_id": accounts["account_id"], "rep_id": rep}))


@pytest.fixture(scope="module")
def hire_plan(hire5):
    return books_with_hires(hire5)


@pytest.fixture(scope="module")
def simulated(hire5, hire_plan):
    return tercap.simulate(hire5, hire_plan, trials=4000, seed=3)


def test_potential_quotas_by_hand(tiny):
    """Books today: R1 50,000 (A3 is unowned), R2 80,000, R3 900,000 of potential; target 1 M × 1.20.
    Shares: 58,252.4 / 93,203.9 / 1,048,543.7; rounded down to 1,000 they sum to 1,199,000, and the
    largest remainder (R3, .544) takes the last 1,000."""
    quotas = allocate_quotas(tercap.load(tiny.path), method="potential")
    table = quotas.table.set_index("rep_id")
    assert table["quota"].to_dict() == {"R1": 58_000, "R2": 93_000, "R3": 1_049_000}
    assert list(quotas.table.columns[:len(QUOTA_COLUMNS)]) == list(QUOTA_COLUMNS)
    assert table.loc["R1", "last_year_actual"] == 0  # H1 (won 2025-05) is outside the 12 months before 2027
    assert table.loc["R3", "pipeline"] == 250_000
    assert quotas.summary()["quota_total"] == 1_200_000


@pytest.mark.parametrize("method", QUOTA_METHODS)
def test_every_method_sums_to_target_plus_cushion(hire5, hire_plan, simulated, method):
    quotas = allocate_quotas(hire5, hire_plan, simulated, method)
    total = hire5.settings.quota.company_target * hire5.settings.quota.over_assignment
    assert quotas.table["quota"].sum() == pytest.approx(round(total / 1000) * 1000, abs=0.5)
    assert (quotas.table["quota"] % 1000 == 0).all()
    assert quotas.table["method"].eq(method).all() and quotas.table["basis"].str.len().gt(0).all()


def test_ramp_scales_a_hires_quota(hire5, hire_plan):
    """Potential method: quota ∝ potential × ramp factor; hires starting in April carry less per unit of
    potential than ramped reps, by their ramp factor over the year."""
    table = allocate_quotas(hire5, hire_plan, method="potential").table.set_index("rep_id")
    hire = table.loc["HIRE-01"]
    assert 0 < hire["ramp_factor"] < 0.75  # nine months of twelve, ramping
    per_potential = table["quota"] / (table["potential"] * table["ramp_factor"])
    ratios = per_potential[table["quota"] > 0]
    assert ratios.max() / ratios.min() == pytest.approx(1.0, abs=0.01)  # the same up to rounding to 1,000


def test_floor_and_cap_hold_and_the_sum_stays(hire5, hire_plan, simulated):
    floor, cap = 1_500_000, 3_500_000
    scenario = hire5.replace(quota={"floor": floor, "cap": cap})
    for method in QUOTA_METHODS:
        table = allocate_quotas(scenario, hire_plan, simulated, method).table
        quota, ramp = table["quota"], table["ramp_factor"]
        assert (quota >= np.ceil(floor * ramp / 1000) * 1000 - 1e-6).all(), method
        assert (quota <= cap).all(), method
        assert quota.sum() == pytest.approx(69_900_000 * 1.2, abs=0.5), method
        assert table["basis"].str.contains("at the floor|at the cap").any(), method


def test_impossible_floors_and_caps_are_explained(hire5, hire_plan):
    with pytest.raises(TercapError, match="floors alone sum to"):
        allocate_quotas(hire5.replace(quota={"floor": 5_000_000}), hire_plan)
    with pytest.raises(TercapError, match="caps allow at most"):
        allocate_quotas(hire5.replace(quota={"cap": 1_000_000}), hire_plan)


def test_history_follows_the_book_not_the_person(hire5, hire_plan):
    """Last year's won revenue is counted on each rep's new book: the hire given R0001's accounts gets
    R0001's past, and R0001 (now without accounts) none."""
    today = allocate_quotas(hire5, method="history").table.set_index("rep_id")
    planned = allocate_quotas(hire5, hire_plan, method="history").table.set_index("rep_id")
    assert today.loc["R0001", "last_year_actual"] > 0
    assert planned.loc["HIRE-01", "last_year_actual"] == today.loc["R0001", "last_year_actual"]
    assert planned.loc["R0001", "last_year_actual"] == 0 and planned.loc["R0001", "quota"] == 0


def test_equal_probability_quotas_give_every_rep_the_same_odds(hire5, hire_plan, simulated):
    """Quotas set on one simulation give every rep the same P(attain) on a fresh one (another seed), within
    the Monte Carlo error of both (quantiles from 4,000 trials, judged on 4,000 others). A rep whose revenue
    has atoms (a book of a few deals) cannot be given exactly p: the allocation states the rep's own odds,
    and the fresh simulation must agree with that."""
    quotas = allocate_quotas(hire5, hire_plan, simulated, "equal_probability")
    p = quotas.probability
    assert 0 < p < 1
    fresh = tercap.simulate(hire5, hire_plan, quotas=quotas.as_series(), trials=4000, seed=11).reps()
    attain = fresh.set_index("rep_id")["p_attain"].dropna()
    stated = quotas.table.set_index("rep_id")["p_attain"].reindex(attain.index)
    error = np.sqrt(2 * stated * (1 - stated) / 4000)
    assert len(attain) >= 30
    assert (np.abs(attain - stated) < 4.5 * error).all()
    # rounding quotas to whole units moves a rep's odds by a few trials; atoms (a book of a few deals)
    # are the exception
    common = np.abs(stated - p) < 0.01
    assert common.mean() >= 0.85
    assert abs(attain[common].mean() - p) < 2 * np.sqrt(2 * p * (1 - p) / 4000)


def test_without_a_target_the_simulated_p50_is_the_target(hire5, hire_plan, simulated):
    scenario = hire5.replace(quota={"company_target": None})
    quotas = allocate_quotas(scenario, hire_plan, simulated)
    assert quotas.target == pytest.approx(np.percentile(simulated.company_revenue, 50))
    assert "P50" in quotas.target_source
    with pytest.raises(TercapError, match="company_target is not set"):
        allocate_quotas(scenario, hire_plan)


def test_checks_flag_quotas_a_book_cannot_carry(hire5, hire_plan, simulated):
    quotas = allocate_quotas(hire5, hire_plan, simulated, "history")
    checks = quotas.checks()
    assert list(checks.columns) == ["rep_id", "quota", "quota_to_potential", "pipeline_coverage", "flag"]
    p90 = pd.DataFrame(simulated.rep_revenue, columns=simulated.rep_ids).quantile(0.9)
    over = checks[checks["quota"] > checks["rep_id"].map(p90)]
    assert over["flag"].str.contains("P90").all() and len(over) > 0
    assert "<table" in quotas._repr_html_()


def test_the_simulation_is_quota_free_and_the_stress_test_uses_the_scenarios_method(hire5, hire_plan, simulated):
    assert simulated.quota_basis == "none" and not simulated.quota.any() and simulated.allocation is None
    judged = tercap.stress_test(hire5, hire_plan, trials=4000, seed=3)
    assert "potential" in judged.quota_basis
    expected = allocate_quotas(hire5, hire_plan, simulated).as_series()
    np.testing.assert_array_equal(judged.quota, expected.reindex(judged.rep_ids).to_numpy())
    np.testing.assert_array_equal(judged.rep_revenue, simulated.rep_revenue)  # the same trials, judged
