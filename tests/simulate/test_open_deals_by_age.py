"""Open deals by age in the plan simulation: an export without stage history is simulated by the deal
model (never by invented conversions), each open deal counting with exactly the model's chance to be won
inside the period, stale deals with almost none."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import tercap
from tercap.pipeline import deal_table
from tercap.pipeline.synthetic import DealProcess, simulate_deals
from tercap.scenario.crm import import_crm
from tercap.scenario.crm_messy import write_messy_export
from tercap.simulate import open_deal_model, simulate

END = dt.date(2025, 12, 31)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tercap.Scenario:
    folder = tmp_path_factory.mktemp("export")
    deals = simulate_deals(DealProcess(arrivals_per_day=4.0), seed=3).rename(columns={"account_id": "account"})
    mapping = write_messy_export(deals, END, folder / "raw", seed=2)
    result = import_crm(folder / "raw" / "sales_pipeline.csv", mapping, folder / "tables", build_scenario=True)
    return tercap.load(result.scenario_path)


def test_auto_takes_age_without_stage_evidence_and_stage_with_it(imported):
    model, note = open_deal_model(imported)
    assert model is not None and "age" in note
    acme = tercap.load("scenarios/acme_fy27.yaml")
    assert open_deal_model(acme) == (None, "")
    forced, _ = open_deal_model(acme.replace(simulation={**acme.settings.simulation.model_dump(), "open_deals": "age"}))
    assert forced is not None


def test_open_deals_count_with_the_models_chance_inside_the_period(imported):
    model, _ = open_deal_model(imported)
    open_now = deal_table(imported).open
    start = pd.Timestamp(imported.settings.period.start)
    days = (start + pd.DateOffset(months=imported.settings.period.months) - start).days
    inside = model.win_probability(open_now["age"].to_numpy(), open_now["segment"].to_numpy(), horizon=days)
    ever = model.win_probability(open_now["age"].to_numpy(), open_now["segment"].to_numpy())
    amount = open_now["amount"].to_numpy()
    result = simulate(imported, trials=4_000, seed=5)
    metrics = result.metrics
    assert metrics["weighted_pipeline_value"] == pytest.approx(float((amount * ever).sum()), rel=1e-6)
    expected = float((amount * inside).sum())
    assert metrics["expected_open_revenue_in_period"] == pytest.approx(expected, rel=0.05)
    stale = model.is_stale(open_now["age"].to_numpy())
    assert stale.any() and ever[stale].max() < 0.05
    assert "by age" in result.parameters


def test_the_copula_swings_a_quarter_as_the_deal_models_months_do(imported):
    from scipy.stats import norm

    from tercap.pipeline.choice import quarterly_correlation, with_market_of
    from tercap.pipeline.copula import copula_variance

    model, _ = open_deal_model(imported)
    p = model.new_deal_win_rate
    rho, quarters = quarterly_correlation(model, p)
    assert copula_variance(rho, float(norm.ppf(p))) / p**2 == pytest.approx(model.market.variance / 3, rel=1e-4)
    assert quarters == model.market.months // 3
    settings, note = with_market_of(imported.settings.simulation, model)
    assert settings.market_correlation == pytest.approx(rho) and "market ρ" in note
    given = imported.settings.simulation.model_copy(update={"market_correlation": 0.2})
    assert with_market_of(given, model) == (given, "")  # a ρ the scenario sets is kept
