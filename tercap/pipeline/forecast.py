"""Monte Carlo forecast of the won value in a window, from the deal model: open deals and new ones.

Per trial:

1. The age hazards are drawn from their posterior (`DealModel.posteriors`): the model's own uncertainty.
2. The market: the variance V of the monthly factor is drawn from its sampling distribution, then one
   factor M_k per month slice k of the window (30.4 days each), lognormal with mean 1 and variance V,
   times one factor on the fitted hazards' level (`MarketFactor.level_share`).
3. An open deal of age a wins in slice k with q_k = (F(a + e_{k+1}) − F(a + e_k)) / S(a) under the drawn
   hazards (e_k the slice's first day), so inside the window with p = Σ_k q_k·M_k (at most 1): a good
   month lifts every deal's chance to be won in it.
4. New opportunities arrive at the recent rate (drawn from its posterior, and overdispersed as the
   monthly counts are), each created at a uniform time u in the window and won by its end with
   Σ_k (F(e_{k+1} − u) − F(e_k − u))·M_k over the slices from its creation on.
5. Amounts: an open deal's own; where unknown (blank, or 0 on a deal the export marks lost), and for new
   deals, a draw from the won amounts known.

Blocks of BLOCK_TRIALS trials draw from `SeedSequence(seed).spawn(...)[block]`: the same seed gives the
same samples, whatever else runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tercap.pipeline.deals import ALL
from tercap.pipeline.hazard import daily_curves
from tercap.pipeline.model import DealModel

__all__ = ["WindowForecast", "forecast_window"]

BLOCK_TRIALS = 256
DAYS_PER_SLICE = 365.25 / 12
DEAL_FRAME_COLUMNS = ("opp_id", "segment", "age", "amount", "amount_known", "win_in_window", "win_ever", "stale")


@dataclass(frozen=True, eq=False)
class WindowForecast:
    """Samples of the won value in [start, start + days): from the deals open at `start` and from new ones."""

    start: dt.date
    days: int
    open_value: np.ndarray  # (trials,)
    new_value: np.ndarray  # (trials,)
    deals: pd.DataFrame  # DEAL_FRAME_COLUMNS, one row per open deal
    seed: int

    @property
    def total_value(self) -> np.ndarray:
        return self.open_value + self.new_value

    @property
    def trials(self) -> int:
        return len(self.open_value)


def forecast_window(model: DealModel, open_deals: pd.DataFrame, days: int, *, trials: int = 2_000, seed: int = 0,
                    new_deals: bool = True) -> WindowForecast:
    """Forecast the window of `days` days from `model.as_of` (see the module docstring).

    `open_deals` has columns opp_id, segment, age (days at the window start), amount and amount_known."""
    days = int(days)
    ages = open_deals["age"].to_numpy(dtype=np.int64)
    keys = model.key_of(open_deals["segment"].to_numpy(dtype=object))
    amount = open_deals["amount"].to_numpy(dtype=float)
    known = open_deals["amount_known"].to_numpy(dtype=bool) & np.isfinite(amount)
    span = int(ages.max(initial=0)) + days + 2
    edges = _slice_edges(days)
    won_amounts = model.won_amounts if len(model.won_amounts) else np.array([0.0])
    blocks = -(-trials // BLOCK_TRIALS)
    seeds = np.random.SeedSequence(seed).spawn(blocks)
    open_value, new_value = np.zeros(trials), np.zeros(trials)
    mean_p = np.zeros(len(ages))
    for block in range(blocks):
        first = block * BLOCK_TRIALS
        size = min(BLOCK_TRIALS, trials - first)
        rng = np.random.Generator(np.random.PCG64DXSM(seeds[block]))
        curves = {key: daily_curves(post.draw(rng, size), model.width, span)
                  for key, post in model.posteriors.items()}
        market = _market(model, rng, size, len(edges) - 1)
        if len(ages):
            p = np.zeros((size, len(ages)))
            plain = np.zeros((size, len(ages)))
            for key in np.unique(keys):
                rows = np.flatnonzero(keys == key)
                survival, incidence = curves[key]
                a = ages[rows]
                alive = np.maximum(survival[:, a], 1e-300)
                for k in range(len(edges) - 1):
                    q = (incidence[:, a + edges[k + 1]] - incidence[:, a + edges[k]]) / alive
                    plain[:, rows] += q
                    p[:, rows] += q * market[:, k:k + 1]
            mean_p += np.clip(plain, 0.0, 1.0).sum(axis=0)
            won = rng.random(p.shape) < np.clip(p, 0.0, 1.0)
            value = np.where(known, np.nan_to_num(amount), 0.0)[None, :]
            drawn = won_amounts[rng.integers(len(won_amounts), size=p.shape)] if (~known).any() else 0.0
            open_value[first:first + size] = (won * np.where(known[None, :], value, drawn)).sum(axis=1)
        if new_deals and model.arrivals.rate > 0:
            new_value[first:first + size] = _new_deals(model, curves[ALL][1], days, edges, market, rng, won_amounts)
    deals = pd.DataFrame({
        "opp_id": open_deals["opp_id"].to_numpy(dtype=object), "segment": open_deals["segment"].to_numpy(dtype=object),
        "age": ages, "amount": amount, "amount_known": known, "win_in_window": mean_p / max(trials, 1),
        "win_ever": model.win_probability(ages, open_deals["segment"].to_numpy(dtype=object)) if len(ages) else [],
        "stale": model.is_stale(ages)}, columns=list(DEAL_FRAME_COLUMNS))
    return WindowForecast(model.as_of, days, open_value, new_value, deals, seed)


def _slice_edges(days: int) -> np.ndarray:
    """First day of each month slice of the window, and `days` at the end."""
    slices = max(1, int(np.ceil(days / DAYS_PER_SLICE - 1e-9)))
    edges = np.minimum(np.round(np.arange(slices + 1) * DAYS_PER_SLICE).astype(np.int64), days)
    edges[-1] = days
    return edges


def _market(model: DealModel, rng: np.random.Generator, size: int, slices: int) -> np.ndarray:
    """(size × slices) monthly factors: lognormal, mean 1, variance V drawn per trial; times the level of
    the fitted hazards, lognormal of mean 1 and variance V × `level_share`, one per trial."""
    variance = model.market.draw_variance(rng, size)
    sigma = np.sqrt(np.log1p(variance))[:, None]
    level = np.sqrt(np.log1p(variance * model.market.level_share))[:, None]
    months = np.exp(sigma * rng.standard_normal((size, slices)) - sigma**2 / 2)
    return months * np.exp(level * rng.standard_normal((size, 1)) - level**2 / 2)


def _new_deals(model: DealModel, incidence: np.ndarray, days: int, edges: np.ndarray, market: np.ndarray,
               rng: np.random.Generator, won_amounts: np.ndarray) -> np.ndarray:
    """Won value of the opportunities created inside the window and won by its end, per trial."""
    size = len(market)
    arrivals = model.arrivals
    shape = max(arrivals.count, 1) / arrivals.dispersion  # the rate's posterior (quasi-Poisson)
    rate = arrivals.rate * rng.gamma(shape, 1.0 / shape, size)
    per_slice = arrivals.rate * DAYS_PER_SLICE
    extra = (arrivals.dispersion - 1.0) / max(per_slice, 1e-9)  # 1/k of the monthly counts' gamma mixing
    if extra > 0:
        rate = rate * rng.gamma(1.0 / extra, extra, size)
    count = rng.poisson(rate * days)
    trial = np.repeat(np.arange(size), count)
    created = rng.random(trial.size) * days
    last = incidence.shape[1] - 1
    p = np.zeros(trial.size)
    for k in range(len(edges) - 1):
        since_start = np.clip(np.floor(edges[k] - created).astype(np.int64), 0, last)
        since_end = np.clip(np.floor(edges[k + 1] - created).astype(np.int64), 0, last)
        p += (incidence[trial, since_end] - incidence[trial, since_start]) * market[trial, k]
    won = rng.random(trial.size) < np.clip(p, 0.0, 1.0)
    value = won_amounts[rng.integers(len(won_amounts), size=trial.size)] * won
    return np.bincount(trial, value, minlength=size)
