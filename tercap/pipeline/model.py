"""The deal model: win, loss and timing by deal age, learned from every deal (open ones included).

`fit_deal_model(table)` fits, from the deals known on one morning (`deals.deal_table`):

- **Time to close as competing risks** (won, lost, still open) by deal age, with right-censoring
  (`hazard`): a deal's chance to be won falls as it ages past the cycles seen, because the deals that
  stayed open that long were mostly not won. Per segment where a segment holds enough closed deals
  (its bins pulled towards the pooled fit), else pooled.
- **Parameter uncertainty**: each bin's won/lost/stay probabilities have a Dirichlet posterior; a
  forecast draws them once per trial, so a thin history gives a wide range.
- **Staleness**: a deal older than every won deal's cycle is stale, and said so.
- **The market factor**: a good or bad month multiplies every open deal's chance to be won that month by
  a shared factor M (mean 1, variance V). V is fitted from the month-to-month dispersion of the wins
  beyond what the fitted hazards and independent deals give (method of moments: the wins of a month
  with expectation E have variance E + V·E²), and its sampling spread is carried: each trial draws V
  from the χ² distribution of the months' squared deviations. The fitted hazards themselves met only
  the months of the history, whose factors average out only partly: each trial also moves their level
  by a factor of variance V × Σ E² / (Σ E)² (about V divided by the months).
- **Arrivals**: new opportunities a day (recent rate, its posterior, and the month-to-month
  overdispersion of the counts), and the won amounts known (new deals draw from them; an open deal
  whose amount is unknown draws from them too).

What it does not use: stages. A CRM export holds only each deal's current stage, not the stage a
closed deal was in at each age, so a conversion per stage cannot be fitted from it; age carries what the
export can tell.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tercap.pipeline.deals import ALL, LOST, OPEN, WON, DealTable
from tercap.pipeline.hazard import (
    PRIOR_WEIGHT,
    HazardPosterior,
    daily_curves,
    life_table,
    pooled_prior,
    posterior,
)

__all__ = ["Arrivals", "DealModel", "MarketFactor", "fit_deal_model"]

TARGET_BINS = 60  # age bins over the 99.5th percentile of ages seen
MIN_SEGMENT_CLOSED = 150  # closed deals a segment needs for hazards of its own
MIN_SEGMENT_WON = 30
SEGMENT_PRIOR_WEIGHT = 20.0  # a segment's bins are pulled towards the pooled ones by this many deals
MIN_MONTH_DEALS = 10  # deals at risk for a month to count towards ρ
MIN_MARKET_MONTHS = 4
DEFAULT_MARKET_SIGMA = 0.2  # σ of the monthly factor when the history has too few months to measure it
ARRIVAL_DAYS = 180  # the arrival rate is counted over the last 180 days (fewer if the data is younger)
MIN_CLOSED = 30  # fewer closed deals than this: no model
EVER_DAYS = 3653  # "won ever" is read ten years on
FRAME_COLUMNS = ("segment", "age_from", "age_to", "at_risk", "won", "lost", "censored", "h_won", "h_lost",
                 "still_open", "won_by_age")


class TooLittleHistory(ValueError):
    """The deals known hold too little to fit a model (fewer than MIN_CLOSED closed deals)."""


@dataclass(frozen=True)
class MarketFactor:
    """The monthly market factor M on the win hazard: its variance V (σ = √V is the typical relative swing
    of a month's wins beyond chance), a 95% interval, the months behind it, and what a trial draws V from:
    `total` = Σ (wins − expected)² over the months, `binomial` = Σ expected, `scale` = Σ expected²."""

    variance: float
    low: float
    high: float
    months: int
    measured: bool
    total: float = 0.0
    binomial: float = 0.0
    scale: float = 0.0

    @property
    def sigma(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    @property
    def level_share(self) -> float:
        """Σ expected² / (Σ expected)²: the share of V that the fitted hazards' level keeps. The hazards
        were fitted over months whose factors average out only partly, so their level is off by a factor
        of variance V × this share (1 / the number of months, when the months weigh alike)."""
        return self.scale / self.binomial**2 if self.binomial > 0 else 1.0

    def draw_variance(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """V per trial: (total × (Q − 1) / χ²(Q − 1) − binomial) / scale, at least 0 (a fixed V where none
        was measured)."""
        if not self.measured or self.months < 2 or self.scale <= 0:
            return np.full(size, self.variance)
        freedom = self.months - 1
        total = self.total * freedom / rng.chisquare(freedom, size)
        return np.maximum((total - self.binomial) / self.scale, 0.0)


@dataclass(frozen=True)
class Arrivals:
    """New opportunities a day: the rate over the last `days`, the count behind it, and the dispersion
    of monthly counts beyond Poisson (1: none)."""

    rate: float
    count: int
    days: int
    dispersion: float


@dataclass(frozen=True, eq=False)
class DealModel:
    """Win, loss and timing by deal age; see the module docstring. Immutable."""

    as_of: dt.date
    width: int  # days per age bin
    posteriors: Mapping[str, HazardPosterior]  # ALL, and the segments with hazards of their own
    tables: Mapping[str, Any]  # the life tables behind them
    segments: Mapping[str, str]  # segment → the key of its posterior
    counts: Mapping[str, int]  # won, lost, open
    max_won_age: int
    max_age: int
    won_amounts: np.ndarray  # sorted: won amounts known (> 0)
    market: MarketFactor
    arrivals: Arrivals
    notes: tuple[str, ...] = field(default=())

    # -- reading ---------------------------------------------------------------------------------

    def key_of(self, segment: np.ndarray | pd.Series) -> np.ndarray:
        """The posterior key of each segment (ALL where a segment has none of its own)."""
        return _keys(np.asarray(segment, dtype=object), self.segments)

    def curves(self, key: str = ALL, days: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior-mean survival and cumulative incidence of a win, ages 0 … days."""
        days = self.max_age + 366 if days is None else days
        return daily_curves(self.posteriors[key].mean(), self.width, days)

    def win_probability(self, age: np.ndarray, segment: np.ndarray | None = None,
                        horizon: float | None = None) -> np.ndarray:
        """P(won within `horizon` days | open at `age`) at the posterior mean (None: ever, read EVER_DAYS on)."""
        age = np.asarray(age, dtype=np.int64)
        keys = self.key_of(np.full(len(age), ALL, dtype=object) if segment is None else segment)
        span = EVER_DAYS if horizon is None else int(horizon)
        result = np.zeros(len(age))
        for key in np.unique(keys):
            rows = keys == key
            survival, incidence = self.curves(key, int(age[rows].max()) + span + 1)
            a = age[rows]
            result[rows] = (incidence[a + span] - incidence[a]) / np.maximum(survival[a], 1e-300)
        return result

    @property
    def new_deal_win_rate(self) -> float:
        """P(a new opportunity is ever won), pooled, at the posterior mean."""
        return float(self.win_probability(np.zeros(1, dtype=np.int64))[0])

    def is_stale(self, age: np.ndarray) -> np.ndarray:
        """Older than every won deal's age at its close."""
        return np.asarray(age) > self.max_won_age

    def to_frame(self) -> pd.DataFrame:
        """One row per (segment, age bin): counts, posterior-mean hazards, still open and won by age."""
        rows = []
        for key, post in self.posteriors.items():
            table = self.tables[key]
            mean = post.mean()
            survival, incidence = daily_curves(mean, self.width, post.bins * self.width)
            for j in range(post.bins):
                end = (j + 1) * self.width
                rows.append((key, j * self.width, end, table.at_risk[j], table.won[j], table.lost[j],
                             table.censored[j], mean[j, 0], mean[j, 1], survival[end], incidence[end]))
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))

    def summary(self) -> dict[str, Any]:
        """Headline figures (JSON-ready)."""
        _, incidence = self.curves(ALL)
        ever = float(incidence[-1])
        half = int(np.searchsorted(incidence, ever / 2)) if ever > 0 else None
        return {
            "as_of": self.as_of.isoformat(), "won": self.counts["won"], "lost": self.counts["lost"],
            "open": self.counts["open"], "age_bin_days": self.width,
            "segments_with_own_hazards": sorted(k for k in self.posteriors if k != ALL),
            "win_rate_new_opportunity": ever, "median_days_to_win": half, "oldest_won_age_days": self.max_won_age,
            "market_sigma": self.market.sigma,
            "market_sigma_interval": [math.sqrt(self.market.low), math.sqrt(self.market.high)],
            "market_measured": self.market.measured, "market_months": self.market.months,
            "arrivals_per_day": self.arrivals.rate, "arrival_dispersion": self.arrivals.dispersion,
            "won_amounts": len(self.won_amounts), "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return (f"<DealModel as of {self.as_of}: {self.counts['won']:,} won, {self.counts['lost']:,} lost, "
                f"{self.counts['open']:,} open; new deal wins {self.new_deal_win_rate:.1%}, "
                f"market σ {self.market.sigma:.2f}>")

    def _repr_html_(self) -> str:
        summary = self.summary()
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        items = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in summary.items() if k != "notes")
        return f"<div><h4>Deal model</h4><table>{items}</table>" + (f"<ul>{notes}</ul>" if notes else "") + "</div>"


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------


def fit_deal_model(table: DealTable, *, default_market_sigma: float = DEFAULT_MARKET_SIGMA) -> DealModel:
    """Fit the deal model to the deals of `table` (see the module docstring).

    Raises TooLittleHistory with fewer than MIN_CLOSED closed deals."""
    frame = table.frame
    notes: list[str] = []
    outcome = frame["outcome"].to_numpy()
    closed = int((outcome != OPEN).sum())
    if closed < MIN_CLOSED:
        raise TooLittleHistory(f"{closed} deal(s) closed before {table.as_of}: at least {MIN_CLOSED} are needed "
                               "to fit win and loss by age")
    age = frame["age"].to_numpy(dtype=np.int64)
    won = outcome == WON
    max_age = int(age.max())
    width = max(1, math.ceil(float(np.quantile(age, 0.995)) / TARGET_BINS))
    bins = max_age // width + 2  # one bin past the oldest age: the tail
    entry = frame["entry"].to_numpy(dtype=np.int64)
    pooled_table = life_table(age, outcome, width, bins, entry)
    pooled = posterior(pooled_table, pooled_prior(pooled_table), PRIOR_WEIGHT)
    posteriors: dict[str, HazardPosterior] = {ALL: pooled}
    tables: dict[str, Any] = {ALL: pooled_table}
    segments: dict[str, str] = {}
    segment = frame["segment"].to_numpy(dtype=object)
    distinct = sorted(set(segment))
    if len(distinct) > 1:
        pooled_mean = pooled.mean()
        prior = np.column_stack([pooled_mean, 1.0 - pooled_mean.sum(axis=1)])
        for name in distinct:
            rows = segment == name
            if (outcome[rows] != OPEN).sum() >= MIN_SEGMENT_CLOSED and won[rows].sum() >= MIN_SEGMENT_WON:
                own = life_table(age[rows], outcome[rows], width, bins, entry[rows])
                posteriors[name] = posterior(own, prior, SEGMENT_PRIOR_WEIGHT)
                tables[name] = own
                segments[name] = name
        thin = [s for s in distinct if s not in segments]
        if thin and segments:
            notes.append(f"segment(s) {', '.join(map(str, thin))} hold too few closed deals for hazards of their "
                         "own: they take the pooled ones")
    max_won_age = int(age[won].max()) if won.any() else 0
    open_rows = outcome == OPEN
    stale = open_rows & (age > max_won_age)
    if stale.any():
        value = float(np.nansum(frame["amount"].to_numpy(dtype=float)[stale]))
        notes.append(f"{int(stale.sum()):,} open deal(s) ({value:,.0f} of value) are older than every won deal "
                     f"({max_won_age} days): stale, their chance to be won is what deals that old showed")
    amounts = frame["amount"].to_numpy(dtype=float)
    lost_rows = outcome == LOST
    lost_zero = lost_rows & ~(amounts > 0)
    if lost_rows.any() and lost_zero.sum() > 0.5 * lost_rows.sum():
        notes.append(f"{int(lost_zero.sum()):,} of {int(lost_rows.sum()):,} lost deals carry no amount (0 or "
                     "blank): such an amount tells the outcome, not the value; import prices for them "
                     "(docs/crm-import.md) — an open deal without an amount draws one from the won deals")
    won_amounts = np.sort(amounts[won & (amounts > 0)])
    if won.any() and len(won_amounts) < won.sum():
        notes.append(f"{int(won.sum() - len(won_amounts))} won deal(s) without an amount are left out of the "
                     "deal sizes")
    first_created = pd.Timestamp(frame["created"].min())
    span_days = (pd.Timestamp(table.as_of) - first_created).days
    if span_days < 365:
        notes.append(f"the data spans {span_days} days: a young CRM; its open deals are counted as open "
                     "(right-censored), so its fast first closes do not set the cycle alone")
    market = _market_factor(frame, table.as_of, posteriors, segments, width, default_market_sigma, notes)
    arrivals = _arrivals(frame, table.as_of, notes)
    return DealModel(as_of=table.as_of, width=width, posteriors=posteriors, tables=tables, segments=segments,
                     counts={"won": int(won.sum()), "lost": int(lost_rows.sum()), "open": int(open_rows.sum())},
                     max_won_age=max_won_age, max_age=max_age, won_amounts=won_amounts, market=market,
                     arrivals=arrivals, notes=tuple(notes))


def _keys(segment: np.ndarray, segments: Mapping[str, str]) -> np.ndarray:
    """The posterior key of each segment: its own, or ALL."""
    return np.array([segments.get(s, ALL) for s in segment], dtype=object)


def _month_starts(first: pd.Timestamp, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """Starts of the whole calendar months between `first` and `as_of` (the last ends by as_of)."""
    start = first.normalize() + pd.offsets.MonthBegin(0) if first.day != 1 else first.normalize()
    return pd.date_range(start, as_of, freq="MS")


def _market_factor(frame: pd.DataFrame, as_of: dt.date, posteriors: Mapping[str, HazardPosterior],
                   segments: Mapping[str, str], width: int, default_sigma: float, notes: list[str]) -> MarketFactor:
    """The monthly factor's variance from the months' wins against the fitted hazards (module docstring)."""
    day = pd.Timestamp(as_of)
    starts = _month_starts(pd.Timestamp(frame["created"].min()), day)
    created = frame["created"].to_numpy(dtype="datetime64[D]")
    closed = frame["closed"].to_numpy(dtype="datetime64[D]")
    outcome = frame["outcome"].to_numpy()
    keys = _keys(frame["segment"].to_numpy(dtype=object), segments)
    horizon = int((day - pd.Timestamp(frame["created"].min())).days) + 62
    curves = {key: daily_curves(post.mean(), width, horizon) for key, post in posteriors.items()}
    observed, expected = [], []
    for start, end in itertools.pairwise(starts):
        s, e = np.datetime64(start.date(), "D"), np.datetime64(end.date(), "D")
        rows = (created < e) & (np.isnat(closed) | (closed >= s))
        if rows.sum() < MIN_MONTH_DEALS:
            continue
        entry = np.maximum((s - created[rows]).astype(np.int64), 0)
        leave = (e - created[rows]).astype(np.int64)
        p = np.zeros(int(rows.sum()))
        for key, (survival, incidence) in curves.items():
            mine = keys[rows] == key
            a0, a1 = entry[mine], np.minimum(leave[mine], len(incidence) - 1)
            p[mine] = (incidence[a1] - incidence[a0]) / np.maximum(survival[a0], 1e-300)
        observed.append(int(((outcome[rows] == WON) & (closed[rows] >= s) & (closed[rows] < e)).sum()))
        expected.append(float(p.sum()))
    months = len(observed)
    if months < MIN_MARKET_MONTHS or sum(expected) <= 0:
        notes.append(f"{months} whole month(s) of history: too few to measure the market's swing; a monthly σ of "
                     f"{default_sigma:.0%} is assumed")
        return MarketFactor(default_sigma**2, math.nan, math.nan, months, measured=False)
    o, ex = np.asarray(observed, dtype=float), np.asarray(expected, dtype=float)
    total, binomial, scale = float(np.sum((o - ex) ** 2)), float(ex.sum()), float(np.sum(ex**2))
    freedom = months - 1
    variance = max((total - binomial) / scale, 0.0)
    low = max((total * freedom / stats.chi2.ppf(0.975, freedom) - binomial) / scale, 0.0)
    high = max((total * freedom / stats.chi2.ppf(0.025, freedom) - binomial) / scale, 0.0)
    if variance == 0:
        notes.append(f"the months' wins spread no more than chance over {months} months; the market's swing is "
                     f"drawn from its sampling range (up to σ {math.sqrt(high):.0%})")
    return MarketFactor(variance, low, high, months, measured=True, total=total, binomial=binomial, scale=scale)


def _arrivals(frame: pd.DataFrame, as_of: dt.date, notes: list[str]) -> Arrivals:
    """New opportunities a day over the last ARRIVAL_DAYS, and the monthly counts' dispersion."""
    day = pd.Timestamp(as_of)
    created = pd.DatetimeIndex(frame["created"])
    first = created.min()
    days = int(min(ARRIVAL_DAYS, (day - first).days))
    if days <= 0:
        return Arrivals(0.0, 0, 0, 1.0)
    recent = created[created >= day - pd.Timedelta(days=days)]
    rate = len(recent) / days
    starts = _month_starts(first, day)
    counts = np.array([((created >= a) & (created < b)).sum() for a, b in itertools.pairwise(starts)],
                      dtype=float)[-12:]
    dispersion = 1.0
    if len(counts) >= 3 and counts.mean() > 0:
        dispersion = max(1.0, float(counts.var(ddof=1) / counts.mean()))
    if days < ARRIVAL_DAYS:
        notes.append(f"new opportunities are counted over {days} days only")
    return Arrivals(rate, len(recent), days, dispersion)
