"""Backtest: scores match their definitions, nothing after the origin leaks into a forecast, and on
synthetic history made by the model it covers the actual in about 80% of P10–P90 windows."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tercap
from tercap.cli import main
from tercap.errors import TercapError
from tercap.simulate import simulate
from tercap.simulate.backtest import as_of_scenario, backtest, crps, pinball_loss

DEFAULT = "scenarios/acme_fy27.yaml"
MONTHLY_ORIGINS = [dt.date(2025, m, 1) for m in range(7, 13)] + [dt.date(2026, m, 1) for m in range(1, 11)]


@pytest.fixture(scope="module")
def acme() -> tercap.Scenario:
    return tercap.load(DEFAULT)


def test_crps_of_normal_samples_matches_the_closed_form():
    rng = np.random.default_rng(1)
    samples = rng.normal(10.0, 2.0, 200_000)
    for actual in (10.0, 13.0, 4.0):
        z = (actual - 10.0) / 2.0
        exact = 2.0 * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
        assert crps(samples, actual) == pytest.approx(exact, rel=0.01)


def test_pinball_loss_by_hand():
    samples = np.arange(101.0)  # quantiles 10, 50, 90
    # actual 70: 0.1 × 60, 0.5 × 20, (1 − 0.9) × 20
    assert pinball_loss(samples, 70.0) == pytest.approx((6.0 + 10.0 + 2.0) / 3)


def test_the_pipeline_at_the_origin_is_what_was_open_then(acme):
    origin = dt.date(2026, 4, 1)
    cut = as_of_scenario(acme, origin, 3)
    day = pd.Timestamp(origin)
    history = acme.history
    expected = set(history.loc[(history["created"] < day) & (history["closed"] >= day), "opp_id"])
    expected |= set(acme.pipeline.loc[acme.pipeline["created"] < day, "opp_id"])
    assert set(cut.pipeline["opp_id"]) == expected
    assert (cut.history["closed"] < day).all() and len(cut.history) == (history["closed"] < day).sum()
    assert str(cut.settings.period.start) == "2026-04-01" and cut.settings.period.months == 3
    # older deals are estimated further along (never by their outcome)
    stage_index = pd.Index(cut.settings.simulation.stage_names).get_indexer(cut.pipeline["stage"])
    age = (day - pd.to_datetime(cut.pipeline["created"])).dt.days.to_numpy()
    assert np.corrcoef(age, stage_index)[0, 1] > 0.3


def test_outcomes_after_the_origin_do_not_leak_into_the_forecast(acme):
    origin = dt.date(2026, 4, 1)
    day = pd.Timestamp(origin)
    history = acme.history.copy()
    later = history["closed"] >= day
    history.loc[later, "won"] = ~history.loc[later, "won"].astype(bool)
    history.loc[later, "last_stage"] = acme.settings.simulation.stage_names[0]
    created_later = history["created"] >= day  # deals open at the origin keep their (recorded) amounts
    history.loc[created_later, "amount"] = history.loc[created_later, "amount"] * 3
    altered = acme.replace(history=history)
    first = backtest(acme, [origin], 3, trials=300).forecasts
    second = backtest(altered, [origin], 3, trials=300).forecasts
    for column in ("mean", "p10", "p50", "p90"):
        np.testing.assert_array_equal(first[column].to_numpy(), second[column].to_numpy())
    assert not np.allclose(first["actual"], second["actual"])


def test_synthetic_history_is_covered_in_about_80_percent_of_windows(acme):
    """The default scenario comes from the generator, whose deal process is the model's: 16 monthly
    origins over 16 months, a quarter ahead, company and each segment (64 windows)."""
    result = backtest(acme, MONTHLY_ORIGINS, 3, trials=1_000)
    forecasts = result.forecasts
    assert len(forecasts) == 64
    coverage = forecasts["covered"].mean()
    assert 0.65 <= coverage <= 0.95, result.metrics()
    metrics = result.metrics().set_index("level")
    assert abs(metrics.at["company", "bias"]) < 0.10
    assert metrics.at["company", "mape"] < 0.15
    assert (forecasts["p10"] <= forecasts["p50"]).all() and (forecasts["p50"] <= forecasts["p90"]).all()


def test_same_seed_same_backtest(acme):
    first = backtest(acme, [dt.date(2026, 7, 1)], 3, trials=300, seed=5).forecasts
    second = backtest(acme, [dt.date(2026, 7, 1)], 3, trials=300, seed=5).forecasts
    pd.testing.assert_frame_equal(first, second)


def test_a_window_past_the_history_is_refused(acme):
    with pytest.raises(TercapError, match="ends after 2027-01-01"):
        backtest(acme, [dt.date(2026, 11, 1)], 3)
    with pytest.raises(TercapError, match="no history"):
        backtest(acme.replace(history=None), [dt.date(2026, 1, 1)], 3)


def test_simulation_uses_the_fitted_values_unless_told_not_to(acme):
    fitted = simulate(acme, trials=256)
    assert "fitted from" in fitted.parameters
    plain = simulate(acme.replace(simulation={"use_history": False}), trials=256)
    assert plain.parameters == "the scenario's settings"
    assert not np.array_equal(fitted.rep_revenue, plain.rep_revenue)


def test_cli_backtest_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["backtest", DEFAULT, "--as-of", "2026-07-01", "--as-of", "2026-08-01", "--trials", "300",
                 "--out", str(out)])
    assert code == 0
    frame = pd.read_csv(out / "backtest" / "forecasts.csv")
    assert list(frame["origin"].unique()) == ["2026-07-01", "2026-08-01"]
    summary = json.loads((out / "backtest" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"company", "segment"}
    assert "P10–P90 coverage" in capsys.readouterr().out


def test_cli_backtest_bad_date_exits_2(tmp_path, capsys):
    assert main(["backtest", DEFAULT, "--as-of", "2026-13-01", "--out", str(tmp_path / "run")]) == 2
    assert "--as-of" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
