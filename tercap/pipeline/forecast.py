"""Monte Carlo forecast of the won value in a window, from the deal model: open deals and new ones.

Per trial:

1. The age hazards are drawn from their posterior (`DealModel.posteriors`): the model's own uncertainty.
2. ρ is drawn from the market factor's levels, and one market factor Z per month slice of the window
   (30.4 days each).
3. An open deal of age a wins inside the window with p = (F(a + days) − F(a)) / S(a) under the drawn
   hazards, moved by the market of the slice in which its win is likeliest:
   Φ((Φ⁻¹(p) + √ρ·Z) / √(1 − ρ)) (a one-factor Gaussian copula: the mean over Z is p).
4. New opportunities arrive at the recent rate (drawn from its posterior, and overdispersed as the
   monthly counts are), each created at a uniform time u in the window and won by its end with F(days − u).
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
from scipy.special import ndtr, ndtri

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
    slices = max(1, int(np.ceil(days / DAYS_PER_SLICE)))
    slice_of = _likeliest_slice(model, ages, keys, days, slices)
    levels = np.asarray(model.market.levels or (model.market.rho,), dtype=float)
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
        rho = levels[rng.integers(len(levels), size=size)] if len(levels) > 1 else np.full(size, levels[0])
        market = rng.standard_normal((size, slices))
        if len(ages):
            p = np.zeros((size, len(ages)))
            for key in np.unique(keys):
                rows = np.flatnonzero(keys == key)
                survival, incidence = curves[key]
                a = ages[rows]
                p[:, rows] = (incidence[:, a + days] - incidence[:, a]) / np.maximum(survival[:, a], 1e-300)
            p = np.clip(p, 0.0, 1.0)
            mean_p += p.sum(axis=0)
            moved = _with_market(p, market[:, slice_of], rho[:, None])
            won = rng.random(moved.shape) < moved
            value = np.where(known, np.nan_to_num(amount), 0.0)[None, :]
            drawn = won_amounts[rng.integers(len(won_amounts), size=moved.shape)] if (~known).any() else 0.0
            open_value[first:first + size] = (won * np.where(known[None, :], value, drawn)).sum(axis=1)
        if new_deals and model.arrivals.rate > 0:
            new_value[first:first + size] = _new_deals(model, curves[ALL][1], days, slices, market, rho, rng,
                                                       won_amounts)
    deals = pd.DataFrame({
        "opp_id": open_deals["opp_id"].to_numpy(dtype=object), "segment": open_deals["segment"].to_numpy(dtype=object),
        "age": ages, "amount": amount, "amount_known": known, "win_in_window": mean_p / max(trials, 1),
        "win_ever": model.win_probability(ages, open_deals["segment"].to_numpy(dtype=object)) if len(ages) else [],
        "stale": model.is_stale(ages)}, columns=list(DEAL_FRAME_COLUMNS))
    return WindowForecast(model.as_of, days, open_value, new_value, deals, seed)


def _with_market(p: np.ndarray, market: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Φ((Φ⁻¹(p) + √ρ·Z) / √(1 − ρ)): p moved by the market factor Z (its mean over Z is p)."""
    threshold = ndtri(np.clip(p, 1e-12, 1 - 1e-12))
    moved = ndtr((threshold + np.sqrt(rho) * market) / np.sqrt(1.0 - rho))
    return np.where(p <= 0, 0.0, np.where(p >= 1, 1.0, moved))


def _likeliest_slice(model: DealModel, ages: np.ndarray, keys: np.ndarray, days: int, slices: int) -> np.ndarray:
    """Per open deal, the month slice of the window in which a win is likeliest (posterior-mean hazards)."""
    if not len(ages) or slices == 1:
        return np.zeros(len(ages), dtype=np.int64)
    edges = np.minimum(np.round(np.arange(slices + 1) * DAYS_PER_SLICE).astype(np.int64), days)
    edges[-1] = days
    result = np.zeros(len(ages), dtype=np.int64)
    for key in np.unique(keys):
        rows = keys == key
        _, incidence = model.curves(key, int(ages[rows].max()) + days + 1)
        by_slice = incidence[ages[rows][:, None] + edges[None, 1:]] - incidence[ages[rows][:, None] + edges[None, :-1]]
        result[rows] = np.argmax(by_slice, axis=1)
    return result


def _new_deals(model: DealModel, incidence: np.ndarray, days: int, slices: int, market: np.ndarray,
               rho: np.ndarray, rng: np.random.Generator, won_amounts: np.ndarray) -> np.ndarray:
    """Won value of the opportunities created inside the window and won by its end, per trial."""
    size = len(rho)
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
    left = np.clip(np.floor(days - created).astype(np.int64), 0, incidence.shape[1] - 1)
    p = incidence[trial, left]
    which = np.minimum((created // DAYS_PER_SLICE).astype(np.int64), slices - 1)
    moved = _with_market(p, market[trial, which], rho[trial])
    won = rng.random(trial.size) < moved
    value = won_amounts[rng.integers(len(won_amounts), size=trial.size)] * won
    return np.bincount(trial, value, minlength=size)
