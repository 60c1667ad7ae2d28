"""The deal model: life-table counts by hand, curves against closed forms, parameters recovered from a
known process, open deals that make stale deals unlikely wins, and forecasts whose mean is the model's
own expectation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tercap.pipeline import deals_at, fit_deal_model, forecast_window
from tercap.pipeline.deals import LOST, OPEN, WON
from tercap.pipeline.hazard import daily_curves, life_table
from tercap.pipeline.model import TooLittleHistory
from tercap.pipeline.synthetic import DealProcess, simulate_deals, true_curves

ORIGIN = dt.date(2025, 10, 1)


@pytest.fixture(scope="module")
def plentiful() -> pd.DataFrame:
    """Many deals, no market factor: the fitted curves must sit on the true ones."""
    return simulate_deals(DealProcess(arrivals_per_day=30, market_sigma=0.0), seed=11)


def test_life_table_counts_by_hand():
    # bins of 10 days: won at 3 and 15, lost at 12, open (censored) at 25 and 7
    table = life_table(np.array([3, 15, 12, 25, 7]), np.array([WON, WON, LOST, OPEN, OPEN]), 10, 3)
    assert table.won.tolist() == [1, 1, 0] and table.lost.tolist() == [0, 1, 0]
    assert table.censored.tolist() == [1, 0, 1]
    assert table.at_risk.tolist() == [5, 3, 1]
    assert table.exposure.tolist() == [4.5, 3, 0.5]
    # a deal seen from age 12 (left-truncated) is not at risk in the first bin; entering mid-bin it counts half
    late = life_table(np.array([3, 15]), np.array([WON, WON]), 10, 2, entry=np.array([0, 12]))
    assert late.at_risk.tolist() == [1, 0.5]


def test_daily_curves_of_constant_hazards_match_the_closed_form():
    width, h_won, h_lost = 7, 0.05, 0.1
    hazards = np.tile([h_won, h_lost], (4, 1))
    survival, incidence = daily_curves(hazards, width, 28)
    days = np.arange(29)
    assert survival == pytest.approx((1 - h_won - h_lost) ** (days / width))
    # the wins are the share h_won / (h_won + h_lost) of all the closes
    assert incidence == pytest.approx((1 - survival) * h_won / (h_won + h_lost))


def test_fitted_curves_hold_the_truth(plentiful):
    model = fit_deal_model(deals_at(plentiful, ORIGIN))
    post = model.posteriors["all"]
    draws = post.draw(np.random.default_rng(0), 400)
    survival, incidence = daily_curves(draws, model.width, 200)
    true_survival, true_incidence = true_curves(DealProcess(), 200)
    # ages away from the process's steps (at 10 days its won hazard jumps fivefold inside one of the model's
    # 6-day bins, which the model, constant within a bin, smooths)
    for age in (30, 60, 100, 150):
        for fitted, truth in ((survival[:, age], true_survival[age]), (incidence[:, age], true_incidence[age])):
            low, high = np.quantile(fitted, [0.001, 0.999])
            assert low <= truth <= high  # within the posterior's 99.8% range
            assert abs(np.mean(fitted) - truth) < 0.02
    assert model.new_deal_win_rate == pytest.approx(true_incidence[-1], abs=0.02)


def test_open_deals_make_old_deals_unlikely_wins(plentiful):
    table = deals_at(plentiful, ORIGIN)
    model = fit_deal_model(table)
    # no win comes after 140 days in the process: a deal open at 200 days is nearly never won
    assert model.win_probability(np.array([200]), horizon=90)[0] < 0.01
    assert model.is_stale(np.array([model.max_won_age + 1]))[0]
    # without the open deals (closed ones only) the same age looks far likelier to win: what the model avoids
    closed_only = table.frame[table.frame["outcome"] != OPEN].reset_index(drop=True)
    from tercap.pipeline.deals import DealTable

    naive = fit_deal_model(DealTable(table.as_of, closed_only))
    assert naive.win_probability(np.array([120]), horizon=90)[0] > 3 * model.win_probability(
        np.array([120]), horizon=90)[0]
    assert any("stale" in note for note in model.notes)


def test_forecast_mean_is_the_models_expectation(plentiful):
    table = deals_at(plentiful, ORIGIN)
    model = fit_deal_model(table)
    open_deals = table.open
    forecast = forecast_window(model, open_deals, 91, trials=4_000, seed=5, new_deals=False)
    expected = float((model.win_probability(open_deals["age"].to_numpy(), horizon=91)
                      * open_deals["amount"].to_numpy()).sum())
    error = forecast.open_value.std() / np.sqrt(forecast.trials)
    assert abs(forecast.open_value.mean() - expected) < 4 * error + 0.01 * expected
    assert (forecast.new_value == 0).all()
    assert forecast.deals["win_in_window"].to_numpy() == pytest.approx(
        model.win_probability(open_deals["age"].to_numpy(), horizon=91), abs=0.02)


def test_same_seed_same_forecast_and_another_seed_another():
    deals = simulate_deals(DealProcess(), seed=3)
    table = deals_at(deals, ORIGIN)
    model = fit_deal_model(table)
    first = forecast_window(model, table.open, 91, trials=600, seed=9)
    again = forecast_window(fit_deal_model(deals_at(deals, ORIGIN)), table.open, 91, trials=600, seed=9)
    other = forecast_window(model, table.open, 91, trials=600, seed=10)
    assert np.array_equal(first.total_value, again.total_value)
    assert not np.array_equal(first.total_value, other.total_value)


def test_unknown_amounts_do_not_tell_the_outcome():
    """Lost deals exported with amount 0 or blank: the deals open at the origin that later lost get the
    same forecast either way (their value is drawn from the won amounts, not read as 0)."""
    deals = simulate_deals(DealProcess(), seed=4)
    lost = (~deals["won"]) & deals["closed"].notna()
    zero = deals.assign(amount=deals["amount"].where(~lost, 0.0))
    blank = deals.assign(amount=deals["amount"].where(~lost, np.nan))
    origin = dt.date(2025, 7, 1)
    values = []
    for frame in (zero, blank):
        table = deals_at(frame, origin)
        values.append(forecast_window(fit_deal_model(table), table.open, 91, trials=400, seed=1).open_value)
    assert np.array_equal(values[0], values[1])
    table = deals_at(zero, origin)
    assert not table.open["amount_known"].all()
    assert any("carry no amount" in note for note in fit_deal_model(table).notes)


def test_too_little_history_is_refused():
    deals = simulate_deals(DealProcess(), seed=1)
    with pytest.raises(TooLittleHistory, match="at least 30"):
        fit_deal_model(deals_at(deals, dt.date(2024, 10, 8)))


def test_market_swing_is_found_where_there_is_one_and_not_where_there_is_none():
    """With a monthly factor exp(σZ − σ²/2) on the won hazard the fitted variance of a month's wins is
    clearly above 0 (below the factor's own exp(σ²) − 1: a good month's extra wins leave fewer deals to
    win, so a month's wins swing less than its hazard); without one, its interval reaches down to 0.
    Whether the bands it makes hold is tested in test_backtest (coverage over many origins and seeds)."""
    start = dt.date(2022, 10, 1)
    swinging = fit_deal_model(deals_at(simulate_deals(DealProcess(start=start, arrivals_per_day=20.0,
                                                                  market_sigma=0.5), seed=8), ORIGIN)).market
    quiet = fit_deal_model(deals_at(simulate_deals(DealProcess(start=start, arrivals_per_day=20.0,
                                                               market_sigma=0.0), seed=8), ORIGIN)).market
    assert swinging.measured and swinging.months >= 30
    assert swinging.low > 0.05 and swinging.variance < np.exp(0.5**2) - 1
    assert quiet.low <= 0.01 < swinging.low
