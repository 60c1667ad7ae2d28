"""Which model a scenario's open deals follow (`simulation.open_deals`), and their win probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from tercap.pipeline.calibrate import calibrated_settings
from tercap.pipeline.copula import correlation_for
from tercap.pipeline.deals import deal_table
from tercap.pipeline.model import DealModel, TooLittleHistory, fit_deal_model
from tercap.scenario import Scenario
from tercap.scenario.schema import Simulation
from tercap.scenario.tables import known_last_stage

MONTHS_PER_QUARTER = 3


def has_stage_evidence(history: pd.DataFrame | None) -> bool:
    """Whether any closed deal of `history` has a known last stage."""
    return history is not None and bool(known_last_stage(history).any())


def open_deal_model(scenario: Scenario) -> tuple[DealModel | None, str]:
    """The deal model open deals are simulated by (`simulation.open_deals`), or None for the stage model,
    with a note of which and why."""
    sim = scenario.settings.simulation
    history = scenario.history
    if sim.open_deals == "stage" or not sim.use_history or history is None or history.empty:
        if sim.open_deals == "age":
            return None, "open deals by stage: 'age' needs a history and use_history"
        return None, ""
    if sim.open_deals == "auto" and has_stage_evidence(history):
        return None, ""
    try:
        model = fit_deal_model(deal_table(scenario))
    except TooLittleHistory as exc:
        return None, f"open deals by stage: {exc}"
    return model, "deals won by age (the deal model)"


def open_deal_win(scenario: Scenario, model: DealModel | None = None) -> pd.Series:
    """opp_id → the chance each open deal of the pipeline is ever won: by the deal model where the
    scenario's open deals follow it (`open_deal_model`, or `model` when given), else by its stage's
    calibrated conversions."""
    pipeline = scenario.pipeline
    if pipeline is None or pipeline.empty:
        return pd.Series(dtype=float)
    if model is None:
        model, _ = open_deal_model(scenario)
    if model is not None:
        table = deal_table(scenario)
        ages = table.open.set_index("opp_id")
        rows = ages.reindex(pipeline["opp_id"])
        age = rows["age"].fillna(0).to_numpy(dtype=np.int64)
        segment = rows["segment"].fillna("all").to_numpy(dtype=object)
        return pd.Series(model.win_probability(age, segment), index=pipeline["opp_id"].to_numpy())
    stages = calibrated_settings(scenario).stages
    conversions = np.array([stage.conversion for stage in stages])
    win_from_stage = dict(zip((s.name for s in stages), np.cumprod(conversions[::-1])[::-1], strict=True))
    return pd.Series(pipeline["stage"].map(win_from_stage).fillna(0.0).to_numpy(dtype=float),
                     index=pipeline["opp_id"].to_numpy())


def quarterly_correlation(model: DealModel, win_probability: float) -> tuple[float, int]:
    """ρ of a one-factor Gaussian copula, one factor a quarter (as the plan simulation draws them), that
    swings the wins of deals of `win_probability` as the deal model's monthly market does, and the
    quarters behind it.

    Three independent months of variance V give a quarter's wins a relative variance of V / 3; under the
    copula it is (Φ₂(t, t; ρ) − p²) / p², t = Φ⁻¹(p)."""
    p = float(np.clip(win_probability, 1e-6, 1 - 1e-6))
    variance = model.market.variance / MONTHS_PER_QUARTER * p**2
    return correlation_for(variance, float(norm.ppf(p))), max(model.market.months // MONTHS_PER_QUARTER, 0)


def with_market_of(settings: Simulation, model: DealModel) -> tuple[Simulation, str]:
    """The simulation settings with the copula's ρ taken from the deal model's market (where the scenario
    leaves market_correlation at its default), matched at a new opportunity's win rate (new deals make
    most of a period's revenue), and a note of it."""
    if settings.market_correlation != Simulation().market_correlation or not model.market.measured:
        return settings, ""
    rho, quarters = quarterly_correlation(model, model.new_deal_win_rate)
    updated = settings.model_copy(update={"market_correlation": min(rho, 0.95),
                                          "market_correlation_quarters": quarters})
    return updated, f"market ρ {rho:.3f} from the deal model's monthly swing (σ {model.market.sigma:.0%})"
