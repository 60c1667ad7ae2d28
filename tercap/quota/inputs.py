"""What quota allocation reads about each rep's book under a plan: potential, ramp, last year, pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tercap.scenario import Scenario
from tercap.scenario.capacity import monthly_capacity

MONTHS_PER_YEAR = 12


@dataclass(frozen=True, eq=False)
class BookFigures:
    """Per rep (reps of the scenario, then its planned hires), the figures of the book a plan gives it."""

    rep_ids: np.ndarray
    potential: np.ndarray  # the book's potential over the period (annual potential × months ÷ 12)
    ramp_factor: np.ndarray  # mean productivity over the period: start and end dates, ramp (0–1)
    last_year_actual: np.ndarray  # won in the 12 months before the period (see `last_year_source`)
    pipeline: np.ndarray  # open deals' amounts on the book
    weighted_pipeline: np.ndarray  # Σ amount × the deal's chance to be won (by age or by stage)
    last_year_source: str  # where last_year_actual comes from, in words


def book_figures(scenario: Scenario, account_rep: pd.Series, deal_win: pd.Series) -> BookFigures:
    """The figures of each rep's book; `deal_win` (opp_id → probability) gives each open deal's chance to
    be won (`tercap.pipeline.open_deal_win`)."""
    settings = scenario.settings
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    rep_ids = reps["rep_id"].to_numpy(dtype=object)
    rep_index = pd.Index(rep_ids)
    months = settings.period.months

    accounts = scenario.accounts
    owner = rep_index.get_indexer(account_rep.reindex(accounts["account_id"]).astype(object).fillna(""))
    placed = owner >= 0
    potential = np.bincount(owner[placed], accounts["potential"].to_numpy(dtype=float)[placed],
                            minlength=len(rep_ids)) * months / MONTHS_PER_YEAR

    hours = reps["capacity_hours"].to_numpy(dtype=float)
    monthly = monthly_capacity(settings, reps)
    ramp = np.divide(monthly.mean(axis=1), hours, out=np.zeros(len(rep_ids)), where=hours > 0)

    account_position = pd.Index(accounts["account_id"])
    last_year, source = _last_year(scenario, reps, owner, account_position)

    pipeline = np.zeros(len(rep_ids))
    weighted = np.zeros(len(rep_ids))
    deals = scenario.pipeline
    if deals is not None and not deals.empty:
        rep_of_deal = owner[account_position.get_indexer(deals["account_id"])]
        kept = rep_of_deal >= 0
        amount = deals["amount"].to_numpy(dtype=float)
        win = deals["opp_id"].map(deal_win).fillna(0.0).to_numpy(dtype=float)
        pipeline = np.bincount(rep_of_deal[kept], amount[kept], minlength=len(rep_ids))
        weighted = np.bincount(rep_of_deal[kept], (amount * win)[kept], minlength=len(rep_ids))
    return BookFigures(rep_ids, potential, np.clip(ramp, 0.0, 1.0), last_year, pipeline, weighted, source)


def _last_year(scenario: Scenario, reps: pd.DataFrame, owner: np.ndarray, accounts: pd.Index
               ) -> tuple[np.ndarray, str]:
    """Won amounts of the 12 months before the period on each rep's new book (from the history table,
    so that a book that changed hands keeps its own past), else the reps table's last_year_actual."""
    history = scenario.history
    start = pd.Timestamp(scenario.settings.period.start)
    if history is not None and not history.empty:
        closed = pd.to_datetime(history["closed"])
        window = history["won"].astype(bool).to_numpy() & (closed >= start - pd.DateOffset(years=1)).to_numpy() \
            & (closed < start).to_numpy()
        rep_of_deal = owner[accounts.get_indexer(history["account_id"])]
        kept = window & (rep_of_deal >= 0)
        won = np.bincount(rep_of_deal[kept], history["amount"].to_numpy(dtype=float)[kept], minlength=len(reps))
        return won, "won deals of the 12 months before the period on the rep's new book (history table)"
    column = reps["last_year_actual"] if "last_year_actual" in reps else pd.Series(np.nan, index=reps.index)
    return column.fillna(0.0).to_numpy(dtype=float), "the reps table's last_year_actual (0 where empty)"
