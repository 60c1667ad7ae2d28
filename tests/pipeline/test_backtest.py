"""Backtest: nothing after an origin leaks into its forecast, both targets are what they say, origins
with too little history are skipped with a note, any date is an origin, and over many origins and
seeds of a known process the nominal 80% and 90% bands hold the actual as often as they claim."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tercap
from tercap.cli import main
from tercap.errors import TercapError
from tercap.pipeline.backtest import backtest, backtest_deals
from tercap.pipeline.synthetic import DealProcess, simulate_deals

DEFAULT = "scenarios/acme_fy27.yaml"
END = dt.date(2025, 12, 31)
ORIGINS = [dt.date(2025, 4, 1), dt.date(2025, 7, 1), dt.date(2025, 9, 30)]


@pytest.fixture(scope="module")
def deals() -> pd.DataFrame:
    return simulate_deals(DealProcess(), seed=21)


def test_targets_are_what_they_say(deals):
    result = backtest_deals(deals, ORIGINS[:1], 3, data_end=END, trials=300, seed=1)
    day, end = pd.Timestamp(ORIGINS[0]), pd.Timestamp(2025, 7, 1)
    won = deals[deals["won"] & (deals["closed"] >= day) & (deals["closed"] < end)]
    open_then = (deals["created"] < day) & ~(deals["closed"] < day)
    rows = result.forecasts.set_index(["target", "method"])
    assert rows.loc[("total", "tercap"), "actual"] == pytest.approx(won["amount"].sum())
    assert rows.loc[("open", "tercap"), "actual"] == pytest.approx(
        won.loc[won["opp_id"].isin(deals.loc[open_then, "opp_id"]), "amount"].sum())
    assert rows.loc[("open", "tercap"), "open_deals"] == open_then.sum()
    assert set(result.forecasts["method"]) == {"tercap", "win_rate_x_open", "run_rate"}


def test_nothing_after_the_origin_leaks(deals):
    """Rewriting every outcome from the origin on changes the actuals, never the forecast."""
    origin = pd.Timestamp(ORIGINS[1])
    later = deals["closed"] >= origin
    rewritten = deals.assign(won=deals["won"].where(~later, ~deals["won"]),
                             closed=deals["closed"].where(~later, deals["closed"] + pd.Timedelta(days=3)))
    first = backtest_deals(deals, ORIGINS[1:2], 3, data_end=END, trials=300, seed=2)
    second = backtest_deals(rewritten, ORIGINS[1:2], 3, data_end=END, trials=300, seed=2)
    ours = [b.forecasts[b.forecasts["method"] == "tercap"] for b in (first, second)]
    forecast_columns = ["p05", "p10", "p50", "p90", "p95", "mean"]
    # amounts of deals later won are read (a CRM export keeps final amounts only): the deals open at the
    # origin whose outcome flipped keep their amount, so the open-pipeline forecast is the same
    pd.testing.assert_frame_equal(ours[0][forecast_columns].reset_index(drop=True),
                                  ours[1][forecast_columns].reset_index(drop=True))
    assert not np.allclose(ours[0]["actual"], ours[1]["actual"])


def test_quarter_end_origins_are_taken_as_given_and_thin_ones_skipped(deals):
    result = backtest_deals(deals, [dt.date(2024, 10, 15), dt.date(2025, 3, 31), dt.date(2025, 11, 1)], 3,
                            data_end=END, trials=300, seed=3)
    assert result.origins == [dt.date(2025, 3, 31)]
    assert any("2024-10-15: skipped" in note for note in result.notes)
    assert any("2025-11-01" in note and "after the data" in note for note in result.notes)
    assert result.forecasts["end"].iloc[0] == dt.date(2025, 6, 30)


def test_no_origin_at_all_is_an_error(deals):
    with pytest.raises(TercapError, match="no origin could be backtested"):
        backtest_deals(deals, [dt.date(2024, 10, 5)], 3, data_end=END, trials=300)


def test_same_seed_same_backtest(deals):
    first = backtest_deals(deals, ORIGINS, 3, data_end=END, trials=300, seed=4)
    again = backtest_deals(deals, ORIGINS, 3, data_end=END, trials=300, seed=4)
    pd.testing.assert_frame_equal(first.forecasts, again.forecasts)


def test_bands_hold_the_actual_as_often_as_they_claim():
    """Over seeds of a known process (with its monthly market factor) and three origins each, the P10–P90
    and P05–P95 bands of both targets cover the actual at rates consistent with 80% and 90% (two-sided
    binomial tests at the 1% level)."""
    covered: dict[tuple[str, str], list[bool]] = {}
    process = DealProcess(arrivals_per_day=5.0)
    for seed in range(36):
        result = backtest_deals(simulate_deals(process, seed=100 + seed), ORIGINS, 3, data_end=END, trials=400,
                                seed=seed)
        ours = result.forecasts[result.forecasts["method"] == "tercap"]
        for row in ours.itertuples(index=False):
            covered.setdefault((row.target, "80"), []).append(bool(row.covered80))
            covered.setdefault((row.target, "90"), []).append(bool(row.covered90))
    for (target, level), hits in covered.items():
        share = int(level) / 100
        test = stats.binomtest(sum(hits), len(hits), share)
        assert test.pvalue > 0.01, f"{target} P{level} band covered {np.mean(hits):.0%} of {len(hits)} windows"


def test_backtest_of_a_scenario_and_its_cli(tmp_path, capsys):
    scenario = tercap.load(DEFAULT)
    result = backtest(scenario, [dt.date(2026, 4, 1)], 3, trials=300, keep_samples=True)
    assert result.samples is not None and len(result.samples) == 2 * 300
    out = tmp_path / "run"
    code = main(["backtest", DEFAULT, "--as-of", "2026-03-31", "--as-of", "2026-07-01", "--trials", "300",
                 "--samples", "--out", str(out)])
    assert code == 0
    frame = pd.read_csv(out / "backtest" / "forecasts.csv")
    assert list(frame["origin"].unique()) == ["2026-03-31", "2026-07-01"]
    summary = json.loads((out / "backtest" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"open", "total"}
    assert set(summary["metrics"]["open"]) == {"tercap", "win_rate_x_open", "run_rate"}
    assert (out / "backtest" / "pit.png").stat().st_size > 0
    assert len(pd.read_parquet(out / "backtest" / "samples.parquet")) == 2 * 2 * 300
    printed = capsys.readouterr().out
    assert "Won from the pipeline open at the origin" in printed and "P10–90" in printed
    assert max(len(line) for line in printed.splitlines() if not line.startswith("note")) <= 100


def test_cli_backtest_bad_date_exits_2(tmp_path, capsys):
    assert main(["backtest", DEFAULT, "--as-of", "2026-13-01", "--out", str(tmp_path / "run")]) == 2
    assert "--as-of" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_stage_weighted_baseline_from_a_stage_history(deals):
    """Every deal entered 'early' when created and 'late' 14 days on if still open then: the baseline is
    Σ open value × the share won of the deals closed before the origin that reached the deal's stage."""
    late = deals["created"] + pd.Timedelta(days=14)
    reached_late = deals["closed"].isna() | (deals["closed"] >= late)
    history = pd.concat([
        pd.DataFrame({"opp_id": deals["opp_id"], "stage": "early", "entered": deals["created"]}),
        pd.DataFrame({"opp_id": deals.loc[reached_late, "opp_id"], "stage": "late", "entered": late[reached_late]}),
    ], ignore_index=True)
    origin = ORIGINS[1]
    day = pd.Timestamp(origin)
    result = backtest_deals(deals, [origin], 3, data_end=END, trials=300, seed=1, stage_history=history,
                            stages=("early", "late"))
    rows = result.forecasts[result.forecasts["method"] == "stage_weighted"]
    assert set(rows["target"]) == {"open", "total"}

    closed = deals[(deals["created"] < day) & (deals["closed"] < day)]
    was_late = closed["opp_id"].isin(history.loc[(history["stage"] == "late") & (history["entered"] < day), "opp_id"])
    win_late = closed.loc[was_late | closed["won"], "won"].mean()
    win_early = closed["won"].mean()
    open_then = deals[(deals["created"] < day) & ~(deals["closed"] < day)]
    late_then = open_then["created"] + pd.Timedelta(days=14) < day
    expected = float((open_then["amount"] * np.where(late_then, win_late, win_early)).sum())
    assert rows["mean"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert "stage_weighted" not in set(backtest_deals(deals, [origin], 3, data_end=END, trials=300).forecasts["method"])
