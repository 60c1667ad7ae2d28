"""Calibration recovers the parameters that made a history: from the scenario generator (its default
`Simulation`), and from a long synthetic history drawn here with parameters unlike the defaults."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

import tercap
from tercap.pipeline.calibrate import (
    CALIBRATED_FIELDS,
    FRAME_COLUMNS,
    Calibration,
    Estimate,
    calibrate,
    implied_correlation,
)
from tercap.scenario import Scenario
from tercap.scenario.generate import generate_scenario
from tercap.scenario.schema import DealSize, Simulation, Stage

SEGMENTS = ("enterprise", "mid_market", "smb")
PROCESSES = ("transactional", "consultative", "complex")
PERIOD_START = dt.date(2027, 1, 1)

# A deal process unlike the defaults: three stages, other sizes, cycles, seasonality and a strong market.
KNOWN = Simulation(
    stages=(Stage(name="lead", conversion=0.45, median_days=10),
            Stage(name="demo", conversion=0.60, median_days=30),
            Stage(name="contract", conversion=0.75, median_days=20)),
    deal_sizes={"enterprise": DealSize(median=200_000, sigma=0.6), "mid_market": DealSize(median=40_000, sigma=0.9),
                "smb": DealSize(median=4_000, sigma=0.7)},
    cycle_multiplier={"enterprise": 1.8, "mid_market": 1.0, "smb": 0.6},
    process_cycle_multiplier={"transactional": 0.8, "consultative": 1.0, "complex": 1.3},
    duration_sigma=0.4,
    seasonality=(0.7, 0.8, 1.2, 1.0, 1.0, 1.1, 0.6, 0.7, 1.2, 1.1, 1.2, 1.4),
    market_correlation=0.12,
    pipeline_yield=0.3,
)


def _month(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of day numbers."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def synthetic_scenario(seed: int, sim: Simulation, *, accounts: int = 600, history_quarters: int = 60,
                       lead_quarters: int = 4, pipeline: bool = True) -> Scenario:
    """A scenario whose history comes from the generator's deal process with `sim`'s parameters.

    As in tercap.scenario.generate: Poisson arrivals ∝ potential × yield ÷ (mean deal × win rate),
    seasonal by calendar month; lognormal amounts; each stage lasts median_days × multipliers ×
    lognormal(duration_sigma) whole days; a deal passes a stage through a one-factor Gaussian copula
    whose factor belongs to the calendar quarter in which the stage ends. Unlike the generator the
    quarterly factors are not centred (a real market is not), and the history is long.
    """
    rng = np.random.default_rng(seed)
    segment = rng.choice(3, accounts, p=[0.2, 0.3, 0.5])
    process_given_segment = np.cumsum([[0.1, 0.4, 0.5], [0.3, 0.5, 0.2], [0.6, 0.3, 0.1]], axis=1)
    process = (rng.random(accounts)[:, None] > process_given_segment[segment]).sum(axis=1)
    potential = np.round(np.array([400_000.0, 80_000.0, 12_000.0])[segment] * rng.lognormal(0, 0.5, accounts))
    start = int(np.datetime64(PERIOD_START, "D").astype(np.int64))
    first = int(np.datetime64(PERIOD_START, "M").astype(np.int64)) - 3 * (history_quarters + lead_quarters)
    first = int(np.datetime64(first, "M").astype("datetime64[D]").astype(np.int64))
    history_start = int((np.datetime64(PERIOD_START, "M") - 3 * history_quarters).astype("datetime64[D]")
                        .astype(np.int64))
    days = np.arange(first, start)
    weight = (np.asarray(sim.seasonality) / np.mean(sim.seasonality))[_month(days) % 12]

    median = np.array([sim.deal_sizes[s].median for s in SEGMENTS])
    sigma = np.array([sim.deal_sizes[s].sigma for s in SEGMENTS])
    rate = potential * sim.pipeline_yield / (median * np.exp(sigma**2 / 2) * sim.win_rate)[segment]
    account = np.repeat(np.arange(accounts), rng.poisson(rate * weight.sum() / 365.25))
    count = len(account)
    created = days[rng.choice(len(days), count, p=weight / weight.sum())]
    deal_segment = segment[account]
    amount = np.maximum(np.round(rng.lognormal(np.log(median[deal_segment]), sigma[deal_segment])), 1.0)

    stage_days = np.array([s.median_days for s in sim.stages])
    threshold = ndtri(np.array([s.conversion for s in sim.stages]))
    cycle = (np.array([sim.cycle_multiplier[s] for s in SEGMENTS])[deal_segment]
             * np.array([sim.process_cycle_multiplier[p] for p in PROCESSES])[process[account]])
    durations = stage_days * cycle[:, None] * np.exp(sim.duration_sigma * rng.standard_normal((count, len(stage_days))))
    exits = created[:, None] + np.floor(np.cumsum(durations, axis=1)).astype(np.int64)
    quarter = _month(exits) // 3
    quarter -= quarter.min()
    market = rng.standard_normal(int(quarter.max()) + 1)
    rho = sim.market_correlation
    latent = np.sqrt(rho) * market[quarter] + np.sqrt(1 - rho) * rng.standard_normal(exits.shape)
    failed = latent >= threshold
    stages = len(stage_days)
    lost_at = np.where(failed.any(axis=1), failed.argmax(axis=1), stages)
    last_stage = np.minimum(lost_at, stages - 1)
    closed = exits[np.arange(count), last_stage]
    is_open = closed >= start
    in_history = ~is_open & (closed >= history_start)
    names = np.array(sim.stage_names)
    account_ids = np.array([f"A{i:05d}" for i in range(accounts)])

    def dates(values: np.ndarray) -> pd.Series:
        return pd.Series(values.astype("datetime64[D]").astype("datetime64[ns]"))

    tables = {
        "reps": pd.DataFrame({"rep_id": ["R1", "R2", "R3"], "lat": [40.7, 41.9, 34.1], "lon": [-74.0, -87.6, -118.2],
                              "segment": list(SEGMENTS)}),
        "accounts": pd.DataFrame({"account_id": account_ids, "lat": 40.0 + rng.random(accounts),
                                  "lon": -90.0 + rng.random(accounts), "segment": np.array(SEGMENTS)[segment],
                                  "potential": potential, "buying_process": np.array(PROCESSES)[process]}),
        "history": pd.DataFrame({
            "opp_id": [f"H{i:07d}" for i in range(in_history.sum())],
            "account_id": account_ids[account[in_history]], "amount": amount[in_history],
            "created": dates(created[in_history]), "closed": dates(closed[in_history]),
            "won": lost_at[in_history] == stages, "last_stage": names[last_stage[in_history]]}),
    }
    if pipeline:
        stage_now = np.minimum((exits[is_open] < start).sum(axis=1), stages - 1)
        tables["pipeline"] = pd.DataFrame({
            "opp_id": [f"P{i:07d}" for i in range(is_open.sum())], "account_id": account_ids[account[is_open]],
            "stage": names[stage_now], "amount": amount[is_open], "created": dates(created[is_open])})
    settings = {"period": {"start": PERIOD_START}, "simulation": {"stages": [s.model_dump() for s in sim.stages]}}
    return Scenario.from_tables(settings, tables)


def _within(estimate: Estimate, truth: float, *, errors: float = 3.0, relative: float = 0.0) -> bool:
    """|estimate − truth| within `errors` standard errors, or within `relative` × truth."""
    gap = abs(estimate.estimate - truth)
    return gap <= errors * estimate.std_error or gap <= relative * abs(truth)


# ----------------------------------------------------------------------------------------------
# The scenario generator (default Simulation, 24 months of history)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Calibration]:
    path = generate_scenario(tmp_path_factory.mktemp("generated"), accounts=5000, reps=50, seed=1)
    scenario = tercap.load(path)
    return scenario, calibrate(scenario)



def _assert_durations_recovered(fit: Calibration, truth: Simulation) -> None:
    """Stage durations within 6%, cycle multipliers within 3%, duration σ within 0.02."""
    for stage, estimate in zip(truth.stages, fit.stage_days, strict=True):
        assert abs(estimate.estimate / stage.median_days - 1) < 0.06, (stage.name, estimate)
    for segment, value in truth.cycle_multiplier.items():
        assert abs(fit.cycle_multiplier[segment].estimate / value - 1) < 0.03, segment
    for process, value in truth.process_cycle_multiplier.items():
        assert abs(fit.process_cycle_multiplier[process].estimate / value - 1) < 0.03, process
    assert abs(fit.duration_sigma.estimate - truth.duration_sigma) < 0.02

def test_generated_conversions_and_win_rate_within_three_standard_errors(generated):
    _, fit = generated
    truth = Simulation()
    for stage, estimate in zip(truth.stages, fit.conversion, strict=True):
        assert _within(estimate, stage.conversion), (stage.name, estimate)
    assert _within(fit.win_rate, truth.win_rate)
    for segment, estimate in fit.win_rate_by_segment.items():
        assert _within(estimate, truth.win_rate), (segment, estimate)


def test_generated_deal_sizes_within_five_percent(generated):
    _, fit = generated
    for segment, size in Simulation().deal_sizes.items():
        assert abs(fit.deal_median[segment].estimate / size.median - 1) < 0.05, segment
        assert _within(fit.deal_median[segment], size.median)
        assert _within(fit.deal_sigma[segment], size.sigma, relative=0.05)


def test_generated_stage_durations_and_multipliers(generated):
    _, fit = generated
    truth = Simulation()
    _assert_durations_recovered(fit, truth)
    # cycle of won deals: the sum of four stages, longer for enterprise
    assert fit.cycle_median["enterprise"].estimate > fit.cycle_median["mid_market"].estimate > fit.cycle_median[
        "smb"].estimate


def test_generated_arrivals_and_seasonality(generated):
    _, fit = generated
    truth = Simulation()
    assert fit.arrival_window == (dt.date(2025, 1, 1), PERIOD_START)
    for segment, size in truth.deal_sizes.items():
        expected = truth.pipeline_yield / (size.median * math.exp(size.sigma**2 / 2) * truth.win_rate)
        assert _within(fit.arrival_rate_by_segment[segment], expected, relative=0.03), segment
    seasonality = np.asarray(truth.seasonality) / np.mean(truth.seasonality)
    for month, (estimate, value) in enumerate(zip(fit.seasonality, seasonality, strict=True), start=1):
        assert _within(estimate, value), (month, estimate)
    assert np.mean([e.estimate for e in fit.seasonality]) == pytest.approx(1.0)
    # The yield follows the deals' own win rate, not the product of the configured conversions: the
    # per-stage copula lifts it (see test_per_stage_copula_lifts_the_later_conversions), and 8 quarters
    # are 8 draws of the market.
    realised = truth.pipeline_yield * fit.win_rate.estimate / truth.win_rate
    assert _within(fit.pipeline_yield, realised)


def test_generated_market_correlation_interval_holds_the_truth(generated):
    _, fit = generated
    rho = fit.market_correlation
    assert fit.quarters == 8
    assert rho.low <= Simulation().market_correlation <= rho.high
    assert 0 <= rho.estimate < 0.2


# ----------------------------------------------------------------------------------------------
# Synthetic histories with parameters unlike the defaults
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def known() -> tuple[Scenario, Calibration]:
    """15 years of history (60 quarters), ρ = 0.12."""
    scenario = synthetic_scenario(7, KNOWN)
    return scenario, calibrate(scenario)


def test_known_sizes_durations_seasonality_and_arrivals_recovered(known):
    _, fit = known
    for segment, size in KNOWN.deal_sizes.items():
        assert abs(fit.deal_median[segment].estimate / size.median - 1) < 0.05, segment
        assert _within(fit.deal_sigma[segment], size.sigma, relative=0.05), segment
        expected = KNOWN.pipeline_yield / (size.median * math.exp(size.sigma**2 / 2) * KNOWN.win_rate)
        assert _within(fit.arrival_rate_by_segment[segment], expected, relative=0.03), segment
    _assert_durations_recovered(fit, KNOWN)
    seasonality = np.asarray(KNOWN.seasonality) / np.mean(KNOWN.seasonality)
    for estimate, value in zip(fit.seasonality, seasonality, strict=True):
        assert _within(estimate, value)
    # The first stage's conversion is a plain per-transition rate; the later ones are lifted (below).
    assert _within(fit.conversion[0], KNOWN.stages[0].conversion)


def test_known_market_correlation_within_tolerance(known):
    _, fit = known
    rho = fit.market_correlation
    assert fit.quarters == 60
    assert abs(rho.estimate - KNOWN.market_correlation) < 0.05
    assert _within(rho, KNOWN.market_correlation)
    assert rho.low <= KNOWN.market_correlation <= rho.high


def test_independent_deals_give_back_every_conversion():
    """With ρ = 0 the per-stage conversions, their product and the yield are what was configured."""
    sim = KNOWN.model_copy(update={"market_correlation": 0.0})
    fit = calibrate(synthetic_scenario(8, sim))
    for stage, estimate in zip(sim.stages, fit.conversion, strict=True):
        assert _within(estimate, stage.conversion), (stage.name, estimate)
    assert _within(fit.win_rate, sim.win_rate)
    assert _within(fit.pipeline_yield, sim.pipeline_yield)
    assert fit.market_correlation.estimate < 0.02 and fit.market_correlation.low == 0.0


def test_per_stage_copula_lifts_the_later_conversions():
    """100 years of quarters at ρ = 0.12: ρ comes back within 0.03, and the conversions of later stages
    exceed the configured ones. A deal that passed a stage in a good quarter meets its next stage
    mostly in the same quarter, so the pass rate given survival (what a history shows, and what the
    product of conversions from a stage on must be) is above the unconditional per-transition rate
    the generator is configured with; the deals' win rate exceeds the product of the configuration."""
    fit = calibrate(synthetic_scenario(2, KNOWN, accounts=150, history_quarters=400))
    assert abs(fit.market_correlation.estimate - KNOWN.market_correlation) < 0.03
    assert _within(fit.conversion[0], KNOWN.stages[0].conversion)
    for stage, estimate in zip(KNOWN.stages[1:], fit.conversion[1:], strict=True):
        assert estimate.estimate - stage.conversion > 2 * estimate.std_error, (stage.name, estimate)
    assert fit.win_rate.estimate > KNOWN.win_rate
    assert math.prod(e.estimate for e in fit.conversion) == pytest.approx(fit.win_rate.estimate)
    # a copula on whole deals needs a higher ρ to swing quarterly win rates as much
    assert fit.win_correlation.estimate > fit.market_correlation.estimate


def test_apply_writes_fitted_values_and_validates(known):
    scenario, fit = known
    applied = fit.apply(scenario.settings.simulation, keep=())
    assert isinstance(applied, Simulation)
    assert [s.conversion for s in applied.stages] == [e.estimate for e in fit.conversion]
    assert applied.market_correlation == fit.market_correlation.estimate
    assert applied.market_correlation_quarters == fit.market_correlation.n >= 3  # ρ's spread is drawn per trial
    assert applied.deal_sizes["smb"].median == fit.deal_median["smb"].estimate
    assert applied.seasonality == tuple(e.estimate for e in fit.seasonality)
    assert applied.pipeline_yield == pytest.approx(fit.pipeline_yield.estimate)
    assert applied.pipeline_yield_std_error == pytest.approx(fit.pipeline_yield.std_error)
    assert applied.win_rate_std_error == pytest.approx(fit.win_rate.std_error) and 0 < fit.win_rate.std_error < 0.5
    untouched = set(Simulation.model_fields) - set(CALIBRATED_FIELDS)
    assert all(getattr(applied, name) == getattr(scenario.settings.simulation, name) for name in untouched)
    scenario.replace(simulation=applied)  # a valid section


# ----------------------------------------------------------------------------------------------
# apply: what the scenario set itself stays
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scenario(tmp_path_factory.mktemp("small"), accounts=1500, reps=15, seed=3)


def test_apply_keeps_what_the_scenario_file_set(small_generated: Path):
    text = small_generated.read_text(encoding="utf-8")
    path = small_generated.with_name("explicit.yaml")
    path.write_text(text.replace("simulation:\n", "simulation:\n  market_correlation: 0.2\n"
                                 "  deal_sizes: {smb: {median: 5000}}\n  slip_probability: 0.4\n"), encoding="utf-8")
    scenario = tercap.load(path)
    sim = scenario.settings.simulation
    assert {"market_correlation", "deal_sizes"} <= sim.model_fields_set
    fit = calibrate(scenario)
    applied = fit.apply(sim)
    assert applied.market_correlation == 0.2 and applied.market_correlation_quarters == 0  # a ρ set is known
    assert applied.deal_sizes["smb"] == DealSize(median=5000)  # the entry the file set
    assert applied.deal_sizes["enterprise"].median == fit.deal_median["enterprise"].estimate  # a default entry
    assert applied.slip_probability == 0.4 and applied.seed == sim.seed and applied.trials == sim.trials
    assert applied.stages[0].conversion == fit.conversion[0].estimate
    # keep=() fits everything the calibration covers; an explicit keep keeps those fields whole
    assert fit.apply(sim, keep=()).market_correlation == fit.market_correlation.estimate
    assert fit.apply(sim, keep=("deal_sizes",)).deal_sizes == sim.deal_sizes
    # Scenario.replace marks every field as set: values equal to the defaults are still fitted
    replaced = scenario.replace(quota={"company_target": 1e6}).settings.simulation
    assert replaced.model_fields_set == set(Simulation.model_fields)
    assert fit.apply(replaced).stages[0].conversion == fit.conversion[0].estimate
    with pytest.raises(ValueError, match="unknown Simulation fields"):
        fit.apply(sim, keep=("market",))
    with pytest.raises(ValueError, match="stages"):
        fit.apply(KNOWN)


def test_without_pipeline_arrivals_use_a_shorter_window():
    scenario = synthetic_scenario(11, KNOWN, accounts=300, history_quarters=12, pipeline=False)
    fit = calibrate(scenario)
    assert any("no pipeline" in note for note in fit.notes)
    assert fit.arrival_window is not None and fit.arrival_window[1] < PERIOD_START
    for segment, size in KNOWN.deal_sizes.items():
        expected = KNOWN.pipeline_yield / (size.median * math.exp(size.sigma**2 / 2) * KNOWN.win_rate)
        assert abs(fit.arrival_rate_by_segment[segment].estimate / expected - 1) < 0.06, segment


# ----------------------------------------------------------------------------------------------
# Small pieces
# ----------------------------------------------------------------------------------------------


def test_implied_correlation_recovers_rho_and_refuses_too_few_periods():
    rng = np.random.default_rng(5)
    periods, deals, p, rho = 400, 500, 0.3, 0.08
    market = rng.standard_normal(periods)
    from scipy.special import ndtr

    rates = ndtr((ndtri(p) - math.sqrt(rho) * market) / math.sqrt(1 - rho))
    trials = np.full(periods, float(deals))
    fit = implied_correlation(rng.binomial(deals, rates).astype(float), trials)
    assert _within(fit, rho) and abs(fit.estimate - rho) < 0.02
    assert fit.low < rho < fit.high
    independent = implied_correlation(rng.binomial(deals, p, periods).astype(float), trials)
    assert independent.estimate < 0.005 and independent.low == 0.0
    assert math.isnan(implied_correlation(np.array([10.0, 12.0]), np.array([50.0, 50.0])).estimate)


def test_tidy_frame_summary_and_display(known):
    _, fit = known
    frame = fit.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert set(frame["parameter"]) >= {"conversion", "win_rate", "deal_median", "deal_sigma", "cycle_median",
                                       "cycle_sigma", "stage_days", "arrival_rate", "seasonality",
                                       "market_correlation", "pipeline_yield"}
    assert len(frame.query("parameter == 'seasonality'")) == 12
    rows = frame.dropna(subset=["std_error", "low", "high"])
    assert ((rows["low"] <= rows["estimate"] + 1e-12) & (rows["estimate"] <= rows["high"] + 1e-12)).all()
    json.dumps(fit.summary())
    assert "Calibration" in repr(fit) and "<table" in fit._repr_html_()


def test_tiny_history_gives_estimates_but_changes_no_settings(tiny):
    scenario = tercap.load(tiny.path)
    fit = calibrate(scenario)
    assert fit.deals == 2 and fit.notes
    assert fit.win_rate.estimate == 0.5
    assert math.isnan(fit.market_correlation.estimate)
    sim = scenario.settings.simulation
    assert fit.apply(sim, keep=()) == sim  # nothing backed by enough deals


def test_no_history_is_an_error(tiny):
    tiny.edit("scenario.yaml", "  history: history.csv\n", "")
    with pytest.raises(ValueError, match="no closed deals"):
        calibrate(tercap.load(tiny.path))
