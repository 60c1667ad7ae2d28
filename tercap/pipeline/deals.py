"""Every deal a scenario knows, as it stood on the morning of one date: closed (won or lost) or still open.

A deal created before the date is closed if it closed before the date (its outcome and age at the
close are known), else it is open, and its age is the days since its creation: a right-censored
observation of its time to close. Deals created on or after the date do not exist yet. The `history`
table holds the closed deals (some of them closed after the date: those were open then), the `pipeline`
table the deals still open at the scenario's period start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tercap.scenario import Scenario

WON, LOST, OPEN = 1, 2, 0
ALL = "all"
KNOWN_COLUMNS = ("opp_id", "account_id", "segment", "amount", "created", "closed", "won")
DEAL_COLUMNS = ("opp_id", "account_id", "segment", "amount", "amount_known", "created", "closed", "outcome",
                "age", "entry")


@dataclass(frozen=True, eq=False)
class DealTable:
    """The deals known on the morning of `as_of`: one row each (DEAL_COLUMNS).

    `outcome` is WON, LOST or OPEN (as of that morning); `age` is whole days from creation to the close,
    or to `as_of` for an open deal; `entry` the age from which the data sees it (0 unless the deal was
    created before the first close in the data); `closed` is NaT for an open one. `amount_known` is False where the
    amount is missing or 0: CRM exports often write 0 on lost deals, and such an amount tells the
    outcome, not the value (a forecast draws the value of such a deal from the won amounts).
    """

    as_of: dt.date
    frame: pd.DataFrame

    @property
    def closed(self) -> pd.DataFrame:
        return self.frame[self.frame["outcome"] != OPEN]

    @property
    def open(self) -> pd.DataFrame:
        return self.frame[self.frame["outcome"] == OPEN]


def known_deals(scenario: Scenario) -> pd.DataFrame:
    """Every deal of the scenario (KNOWN_COLUMNS): the history's closed ones and the pipeline's open ones
    (`closed` NaT, `won` False), each with its account's segment."""
    segment_of = scenario.accounts.set_index("account_id")["segment"]
    parts = []
    for table, closed in ((scenario.history, True), (scenario.pipeline, False)):
        if table is None or table.empty:
            continue
        parts.append(pd.DataFrame({
            "opp_id": table["opp_id"].to_numpy(dtype=object), "account_id": table["account_id"].to_numpy(dtype=object),
            "amount": table["amount"].to_numpy(dtype=float), "created": pd.to_datetime(table["created"]),
            "closed": pd.to_datetime(table["closed"]) if closed else pd.NaT,
            "won": table["won"].to_numpy(dtype=bool) if closed else False}))
    if not parts:
        return pd.DataFrame({column: [] for column in KNOWN_COLUMNS})
    frame = pd.concat(parts, ignore_index=True)
    frame["closed"] = pd.to_datetime(frame["closed"])
    frame["segment"] = frame["account_id"].map(segment_of).fillna(ALL).astype(object).to_numpy()
    return frame[list(KNOWN_COLUMNS)]


def deals_at(deals: pd.DataFrame, as_of: dt.date) -> DealTable:
    """The deals of a `known_deals` frame as they stood on the morning of `as_of`."""
    day = pd.Timestamp(as_of)
    frame = deals[pd.to_datetime(deals["created"]) < day].copy()
    closed = pd.to_datetime(frame["closed"])
    done = (closed < day).to_numpy(dtype=bool)
    frame["outcome"] = np.where(done, np.where(frame["won"].to_numpy(dtype=bool), WON, LOST), OPEN)
    frame["closed"] = closed.where(done)
    end = frame["closed"].fillna(day)
    frame["age"] = (end - pd.to_datetime(frame["created"])).dt.days.clip(lower=0).astype(np.int64)
    amount = frame["amount"].astype(float)
    frame["amount_known"] = (amount > 0).to_numpy(dtype=bool)
    # An export of the deals closed since its first close holds older deals only if they closed later:
    # such a deal is seen from the age it had on that day (left truncation).
    first_close = pd.to_datetime(deals["closed"]).min()
    seen_from = (first_close - pd.to_datetime(frame["created"])).dt.days if pd.notna(first_close) else 0
    frame["entry"] = np.minimum(np.maximum(np.asarray(seen_from, dtype=float), 0), frame["age"]).astype(np.int64) \
        if pd.notna(first_close) else 0
    return DealTable(day.date(), frame[list(DEAL_COLUMNS)].reset_index(drop=True))


def deal_table(scenario: Scenario, as_of: dt.date | None = None) -> DealTable:
    """The deals of `scenario` on the morning of `as_of` (default: the period start)."""
    return deals_at(known_deals(scenario), scenario.settings.period.start if as_of is None else as_of)
