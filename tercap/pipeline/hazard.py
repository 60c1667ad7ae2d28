"""Competing risks by deal age: a discrete-time life table of won, lost and still open, with a posterior.

Each deal is followed from its creation (age 0) to its close, won or lost, or to the day the data ends
while it is still open (right-censored at that age). Ages are cut into bins of `width` days. In bin j,
of the deals still open at its start (n_j), w_j are won, l_j lost and c_j censored; the censored count
half (the actuarial life table). The bin's probabilities of closing won or lost, given open at its start,
have a Dirichlet posterior

    (h_won, h_lost, h_stay) ~ Dirichlet(w_j + m·π_won, l_j + m·π_lost, n_j − c_j/2 − w_j − l_j + m·π_stay)

where π is a prior mean taken from the neighbouring bins (or, by segment, from the pooled fit) and m its
weight in deals. Open deals matter as much as closed ones: a deal still open at 200 days says that deals
at 150–200 days did not close then, and an age at which many deals stayed open and none was won gets a
win probability near 0 instead of the cycle of the closed deals alone. Beyond the oldest age observed
the hazards of the last observed bins carry on (`tail_bins`), and a deal that old is reported stale.

Inside a bin the daily hazard is constant: (1 − h_won − h_lost)^(1/width) of the open deals stay open each
day, and the share h_won / (h_won + h_lost) of the closes are wins. From the daily hazards come the
survival S(a) (still open at age a), the cumulative incidence of a win F(a) (won by age a), and for a deal
open at age a, the chance it is won within the next h days: (F(a + h) − F(a)) / S(a).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRIOR_WEIGHT = 1.0  # m: the prior's weight in deals, for the pooled fit (its neighbouring bins)
SMOOTHING_BINS = 2  # the pooled prior mean of bin j is the hazard of bins j − 2 … j + 2 together
TAIL_SHARE = 0.2  # the hazards beyond the oldest observed age are those of the last 20% of observed bins
MIN_AT_RISK = 1e-9


@dataclass(frozen=True, eq=False)
class LifeTable:
    """Counts by age bin (see the module docstring): at risk, won, lost, censored; `width` days a bin."""

    width: int
    at_risk: np.ndarray  # (bins,) open at the start of the bin
    won: np.ndarray
    lost: np.ndarray
    censored: np.ndarray
    observed_bins: int  # bins up to the oldest age seen (closed or still open); later bins are the tail

    @property
    def bins(self) -> int:
        return len(self.at_risk)

    @property
    def exposure(self) -> np.ndarray:
        """Deals exposed in each bin: at risk less half the censored."""
        return np.maximum(self.at_risk - self.censored / 2, 0.0)


def life_table(age: np.ndarray, outcome: np.ndarray, width: int, bins: int,
               entry: np.ndarray | None = None) -> LifeTable:
    """Counts of `bins` bins of `width` days; `age` in whole days at the close (or at censoring),
    `outcome` 1 won, 2 lost, 0 still open; `entry` the age from which a deal is seen (left truncation:
    an export of the deals closed since a date holds the older deals only if they closed after it, so
    they count as at risk from the age they had on that date, not from 0)."""
    age = np.asarray(age, dtype=np.int64)
    outcome = np.asarray(outcome)
    index = np.minimum(age // width, bins - 1)
    won = np.bincount(index[outcome == 1], minlength=bins).astype(float)
    lost = np.bincount(index[outcome == 2], minlength=bins).astype(float)
    censored = np.bincount(index[outcome == 0], minlength=bins).astype(float)
    leaving = won + lost + censored
    if entry is None or not np.any(entry):
        at_risk = np.cumsum(leaving[::-1])[::-1]  # open at the start of bin j: leave in bin j or later
    else:
        start = np.minimum(np.minimum(np.asarray(entry, dtype=np.int64), age) // width, bins - 1)
        entering = np.bincount(start, minlength=bins).astype(float)
        left_before = np.concatenate([[0.0], np.cumsum(leaving)[:-1]])
        late = np.bincount(start[start > 0], minlength=bins).astype(float)  # enter inside a bin: half of it
        at_risk = np.cumsum(entering) - left_before - late / 2
    observed = int(index.max()) + 1 if age.size else 0
    return LifeTable(width, at_risk, won, lost, censored, observed)


@dataclass(frozen=True, eq=False)
class HazardPosterior:
    """Dirichlet parameters per bin: columns won, lost, stay."""

    width: int
    alpha: np.ndarray  # (bins × 3)
    observed_bins: int

    @property
    def bins(self) -> int:
        return len(self.alpha)

    def mean(self) -> np.ndarray:
        """(bins × 2) posterior mean of (h_won, h_lost)."""
        return self.alpha[:, :2] / self.alpha.sum(axis=1, keepdims=True)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size × bins × 2) draws of (h_won, h_lost) from the Dirichlet posterior."""
        gammas = rng.standard_gamma(np.broadcast_to(self.alpha, (size, *self.alpha.shape)))
        return gammas[..., :2] / np.maximum(gammas.sum(axis=-1, keepdims=True), 1e-300)


def pooled_prior(table: LifeTable) -> np.ndarray:
    """(bins × 3) prior means for the pooled fit: each bin's neighbours (± SMOOTHING_BINS) taken together,
    pulled by one deal towards the overall hazard; beyond the observed bins, the last TAIL_SHARE of them."""
    events = np.column_stack([table.won, table.lost])
    exposure = table.exposure
    kernel = np.ones(2 * SMOOTHING_BINS + 1)
    near_events = np.column_stack([np.convolve(events[:, k], kernel, mode="same") for k in range(2)])
    near_exposure = np.convolve(exposure, kernel, mode="same")
    overall = events.sum(axis=0) / max(float(exposure.sum()), 1.0)
    observed = max(table.observed_bins, 1)
    tail_from = max(0, observed - max(1, math.ceil(TAIL_SHARE * observed)))
    near_events[observed:] = events[tail_from:observed].sum(axis=0)
    near_exposure[observed:] = exposure[tail_from:observed].sum()
    prior = (near_events + overall) / (near_exposure[:, None] + 1.0)
    total = prior.sum(axis=1, keepdims=True)
    prior = np.where(total > 0.999, prior / np.maximum(total, 1e-300) * 0.999, prior)
    return np.column_stack([prior, 1.0 - prior.sum(axis=1)])


def posterior(table: LifeTable, prior_mean: np.ndarray, weight: float) -> HazardPosterior:
    """The Dirichlet posterior of each bin's (won, lost, stay), the prior `weight` deals at `prior_mean`.

    Beyond the observed bins the data holds nothing: those bins are the prior alone, at the weight of
    the tail's own exposure (so a well-observed tail gives a sharp tail hazard, a thin one a vague one)."""
    exposure = table.exposure
    stay = np.maximum(exposure - table.won - table.lost, 0.0)
    counts = np.column_stack([table.won, table.lost, stay])
    observed = max(table.observed_bins, 1)
    tail_from = max(0, observed - max(1, math.ceil(TAIL_SHARE * observed)))
    tail_weight = max(float(exposure[tail_from:observed].mean()) if observed > tail_from else 0.0, weight)
    alpha = counts + weight * prior_mean
    alpha[observed:] = tail_weight * prior_mean[observed:]
    return HazardPosterior(table.width, np.maximum(alpha, 1e-6), table.observed_bins)


def daily_curves(hazards: np.ndarray, width: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Survival S and cumulative incidence of a win F at ages 0 … days (inclusive), from bin hazards.

    `hazards` is (..., bins, 2) of (h_won, h_lost); the result is two arrays (..., days + 1), with S(0) = 1
    and F(0) = 0. Ages past the last bin use the last bin's hazards."""
    won, lost = hazards[..., 0], hazards[..., 1]
    total = np.clip(won + lost, 0.0, 1.0 - 1e-12)
    daily_stay = (1.0 - total) ** (1.0 / width)  # per day inside the bin
    won_share = np.divide(won, total, out=np.zeros_like(won), where=total > 0)
    bins = hazards.shape[-2]
    bin_of_day = np.minimum(np.arange(days) // width, bins - 1)
    stay = daily_stay[..., bin_of_day]  # (..., days): staying open through day d, given open at its start
    share = won_share[..., bin_of_day]
    log_survival = np.cumsum(np.log(np.maximum(stay, 1e-300)), axis=-1)
    survival = np.concatenate([np.ones((*stay.shape[:-1], 1)), np.exp(log_survival)], axis=-1)
    won_today = survival[..., :-1] * (1.0 - stay) * share
    incidence = np.concatenate([np.zeros((*stay.shape[:-1], 1)), np.cumsum(won_today, axis=-1)], axis=-1)
    return survival, incidence
