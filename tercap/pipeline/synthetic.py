"""Deals drawn from a known process: the truth that the deal model and the backtest are tested against.

Opportunities arrive as a Poisson process. Each is won or lost at daily hazards that depend on its age
(piecewise constant), the won hazard multiplied in each calendar month by a market factor
exp(σ·Z − σ²/2) shared by every deal; a share of the deals are never closed by anyone (zombies: they
stay open, stale, as in a real CRM). A deal's product sets its list price; a won deal closes at the list
price × a lognormal change. The result is a clean table of every deal as it stands on the last day
(`KNOWN_COLUMNS` of `tercap.pipeline.deals`, plus owner, product, price and a stage label for open
deals), from which `deals_at` cuts the view of any morning, and a CRM export can be made messy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DealProcess", "simulate_deals", "true_curves"]


def _default_products() -> dict[str, float]:
    return {"GTX Basic": 550.0, "GTX Pro": 4821.0, "MG Special": 55.0, "MG Advanced": 3393.0, "GTX Plus Pro": 5482.0,
            "GTX Plus Basic": 1096.0, "GTK 500": 26768.0}


@dataclass(frozen=True)
class DealProcess:
    """The process's parameters (days; hazards are daily probabilities by age band)."""

    start: dt.date = dt.date(2024, 10, 1)
    end: dt.date = dt.date(2025, 12, 31)  # the export's day: outcomes are seen up to here
    arrivals_per_day: float = 8.0
    age_edges: tuple[int, ...] = (0, 10, 30, 60, 100, 140)  # bands [edge_k, edge_k+1), the last open-ended
    won_hazard: tuple[float, ...] = (0.002, 0.010, 0.014, 0.008, 0.003, 0.0)
    lost_hazard: tuple[float, ...] = (0.004, 0.008, 0.010, 0.010, 0.008, 0.004)
    zombie_share: float = 0.12
    market_sigma: float = 0.25  # σ of the log of the monthly factor on the won hazard
    amount_sigma: float = 0.1  # σ of the log change from the list price to the won amount
    products: dict[str, float] = field(default_factory=_default_products)
    product_weights: tuple[float, ...] = (0.2, 0.15, 0.2, 0.15, 0.1, 0.15, 0.05)
    reps: int = 12
    accounts: int = 60
    early_stage_days: int = 14  # an open deal younger than this is in the first (early) stage

    def daily_hazards(self, days: int) -> tuple[np.ndarray, np.ndarray]:
        """(won, lost) daily hazards at ages 0 … days − 1, for a deal that is not a zombie."""
        band = np.searchsorted(np.asarray(self.age_edges), np.arange(days), side="right") - 1
        return np.asarray(self.won_hazard)[band], np.asarray(self.lost_hazard)[band]


def true_curves(process: DealProcess, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Survival (still open) and cumulative incidence of a win at ages 0 … days, market at its mean
    (the factor's mean is 1, so a deal's hazards average to these), zombies included."""
    won, lost = process.daily_hazards(days)
    stay = np.concatenate([[1.0], np.cumprod(1.0 - won - lost)])
    incidence = np.concatenate([[0.0], np.cumsum(stay[:-1] * won)])
    z = process.zombie_share
    return z + (1 - z) * stay, (1 - z) * incidence


def simulate_deals(process: DealProcess, seed: int = 0) -> pd.DataFrame:
    """Every deal created from `process.start` to the day before `process.end`, as it stands on `end`.

    Columns: opp_id, account_id, segment ('all'), owner, product, price, amount (won: the won amount;
    else the list price), created, closed (NaT while open), won, stage ('Won', 'Lost', or the open
    stage: 'Prospecting' before early_stage_days, else 'Engaging')."""
    rng = np.random.default_rng(seed)
    first, last = pd.Timestamp(process.start), pd.Timestamp(process.end)
    days = (last - first).days
    count = rng.poisson(process.arrivals_per_day * days)
    created_day = np.sort(rng.integers(0, days, size=count))
    zombie = rng.random(count) < process.zombie_share
    won_hazard, lost_hazard = process.daily_hazards(days + 1)
    month = ((first + pd.to_timedelta(np.arange(days + 1), unit="D")).to_period("M").astype("int64")).to_numpy()
    month = month - month.min()
    factor = np.exp(process.market_sigma * rng.standard_normal(month.max() + 1) - process.market_sigma**2 / 2)
    closed_day = np.full(count, -1)
    won = np.zeros(count, dtype=bool)
    uniform = rng.random((days, count))  # one draw per deal and day
    for day in range(days):
        active = (created_day <= day) & (closed_day < 0) & ~zombie
        if not active.any():
            continue
        rows = np.flatnonzero(active)
        age = day - created_day[rows]
        p_won = np.minimum(won_hazard[age] * factor[month[day]], 0.999)
        p_lost = np.minimum(lost_hazard[age], 1.0 - p_won)
        u = uniform[day, rows]
        wins, losses = u < p_won, (u >= p_won) & (u < p_won + p_lost)
        closed_day[rows[wins | losses]] = day
        won[rows[wins]] = True
    names = list(process.products)
    weights = np.asarray(process.product_weights, dtype=float)
    product = rng.choice(len(names), size=count, p=weights / weights.sum())
    price = np.asarray([process.products[n] for n in names])[product]
    change = np.exp(process.amount_sigma * rng.standard_normal(count) - process.amount_sigma**2 / 2)
    amount = np.where(won, np.round(price * change), price)
    is_closed = closed_day >= 0
    created = first + pd.to_timedelta(created_day, unit="D")
    closed = pd.Series(first + pd.to_timedelta(np.where(is_closed, closed_day, 0), unit="D")).where(is_closed)
    age_now = days - created_day
    stage = np.where(won, "Won", np.where(is_closed, "Lost",
                                          np.where(age_now < process.early_stage_days, "Prospecting", "Engaging")))
    return pd.DataFrame({
        "opp_id": [f"OPP{i:06d}" for i in range(count)],
        "account_id": [f"Account {k:03d}" for k in rng.integers(0, process.accounts, size=count)],
        "segment": "all",
        "owner": [f"Rep {k:02d}" for k in rng.integers(0, process.reps, size=count)],
        "product": np.asarray(names, dtype=object)[product], "price": price, "amount": amount,
        "created": created, "closed": pd.to_datetime(closed.to_numpy()), "won": won, "stage": stage,
    })
