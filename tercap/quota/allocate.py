"""Quota allocation: the company target × over-assignment, split among reps by one of four methods.

- `potential`: in proportion to the potential of the rep's book × its ramp factor;
- `history`: last year's won revenue on the book × `history_growth`, blended with the potential share
  (weight `history_weight` on history; the potential part is scaled to history's total first, so the
  weight is a weight between two shares), × ramp;
- `pipeline`: in proportion to the book's weighted pipeline (Σ amount × win probability of the stage)
  × ramp: every rep gets the same coverage of quota by weighted pipeline;
- `equal_probability`: quotas such that every rep has the same simulated probability p of reaching
  quota, p set by bisection so that the quotas sum to the total (each quota is the (1 − p) quantile
  of the rep's simulated revenue, which already carries its ramp, start and end).

Every method then applies the floor (`quota.floor` × the rep's ramp factor: a rep ramping at 50%
over the period gets half the floor) and the cap (`quota.cap`), re-spreading what they move over the
other reps so that the sum stays, and rounds to a multiple of `quota.rounding`: each quota down, then
one unit up for the largest remainders (equal_probability: where a unit more takes the least
P(attain) away — a rep whose revenue is often one deal has an atom there), so the rounded quotas still
sum to the total rounded to that unit. A rep with no productive time in the period (ramp factor 0)
gets no quota.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tercap.errors import TercapError
from tercap.pipeline import open_deal_win
from tercap.plan import account_reps
from tercap.quota.inputs import BookFigures, book_figures
from tercap.scenario import Scenario

QUOTA_METHODS = ("potential", "history", "pipeline", "equal_probability")
QUOTA_COLUMNS = ("rep_id", "quota", "method", "potential", "last_year_actual", "pipeline", "ramp_factor",
                 "p_attain", "basis")
BISECTION_STEPS = 200
STRETCH_QUANTILE = 90  # a quota above this percentile of the rep's simulated revenue is flagged


@dataclass(frozen=True, eq=False)
class Quotas:
    """Per-rep quotas with the figures behind each number and the method used."""

    table: pd.DataFrame  # QUOTA_COLUMNS, plus weighted_pipeline and the checks (see `checks`)
    method: str
    target: float  # the company target
    total: float  # target × over-assignment: what the quotas sum to (before rounding)
    target_source: str
    last_year_source: str  # where last_year_actual comes from, in words
    probability: float | None = None  # the common P(attain) of equal_probability

    def as_series(self) -> pd.Series:
        """rep_id → quota."""
        return pd.Series(self.table["quota"].to_numpy(), index=self.table["rep_id"], name="quota")

    def checks(self) -> pd.DataFrame:
        """Per rep with a quota: quota ÷ potential, weighted pipeline ÷ quota, and a flag in words where
        the book cannot carry the quota (above its potential; above its simulated P90)."""
        columns = ["rep_id", "quota", "quota_to_potential", "pipeline_coverage", "flag"]
        return self.table.loc[self.table["quota"] > 0, columns].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        table = self.table
        return {"method": self.method, "target": self.target, "target_source": self.target_source,
                "over_assignment": self.total / self.target if self.target else None,
                "quota_total": float(table["quota"].sum()), "reps_with_quota": int((table["quota"] > 0).sum()),
                "flagged_reps": int((table["flag"] != "").sum()), "common_p_attain": self.probability,
                "last_year_actual": self.last_year_source}

    def __repr__(self) -> str:
        return (f"<Quotas {self.method}: {int((self.table['quota'] > 0).sum())} reps, total "
                f"{self.table['quota'].sum():,.0f} for a target of {self.target:,.0f}>")

    def _repr_html_(self) -> str:
        shown = self.table[["rep_id", "quota", "potential", "last_year_actual", "pipeline", "ramp_factor",
                            "p_attain", "flag"]]
        return (f"<div><b>Quotas</b> ({self.method}): target {self.target:,.0f}, total "
                f"{self.table['quota'].sum():,.0f}"
                + shown.to_html(index=False, escape=True, float_format=lambda v: f"{v:,.2f}") + "</div>")


def allocate_quotas(scenario: Scenario, plan: object | None = None, simulation: object | None = None,
                    method: str | None = None) -> Quotas:
    """Quotas for the reps of `scenario` under `plan` (None: today's owners) by `method` (default: the
    scenario's `quota.method`). `simulation` (a SimulationResult of the same plan) is needed by
    `equal_probability` and by a scenario without a company target (the target is then the simulated
    P50 of company revenue); given, it also fills `p_attain` and the P90 check."""
    settings = scenario.settings.quota
    method = method or settings.method
    if method not in QUOTA_METHODS:
        raise TercapError(f"unknown quota method {method!r}: use one of {', '.join(QUOTA_METHODS)}")
    figures = book_figures(scenario, account_reps(scenario, plan), open_deal_win(scenario))
    revenue = _revenue_by_rep(simulation, figures.rep_ids) if simulation is not None else None

    target, target_source = _target(scenario, simulation)
    total = target * settings.over_assignment
    active = figures.ramp_factor > 0
    floor = np.where(active, (settings.floor or 0.0) * figures.ramp_factor, 0.0)
    cap = np.where(active, settings.cap if settings.cap is not None else np.inf, 0.0)
    unit = settings.rounding
    if unit > 0:  # floors and caps on the grid the quotas are rounded to, so that rounding keeps them
        floor = np.ceil(floor / unit - 1e-9) * unit
        cap = np.where(np.isfinite(cap), np.floor(cap / unit + 1e-9) * unit, cap)
    _check_room(total, floor, cap, active)

    probability = None
    if method == "equal_probability":
        if revenue is None:
            raise TercapError("quota method equal_probability needs a simulation of the plan "
                              "(tercap plan runs one; in Python pass simulation=tercap.simulate(...))")
        quota, probability = _equal_probability(revenue, total, floor, cap, active)
        basis = [f"the ({1 - probability:.0%}) quantile of the rep's simulated revenue: P(attain) "
                 f"{probability:.1%} for every rep" for _ in figures.rep_ids]
    else:
        weight, basis = _weights(method, figures, settings.history_growth, settings.history_weight)
        weight = np.where(active, weight, 0.0)
        if weight.sum() <= 0:
            raise TercapError(f"quota method {method}: no rep's book has any {_what(method)} to share the "
                              "target by; use another quota.method")
        quota = _proportional(weight, total, floor, cap)
    quota = np.where(active, quota, 0.0)
    clamped = np.where(active & (quota <= floor + 1e-6) & (floor > 0), "; at the floor",
                       np.where(active & np.isfinite(cap) & (quota >= cap - 1e-6), "; at the cap", ""))
    if unit > 0:
        odds = None
        if method == "equal_probability":  # round up where it moves a rep's odds least (atoms: single deals)
            down = np.floor(quota / unit + 1e-9) * unit
            odds = (revenue >= down[None, :]).mean(axis=0) - (revenue >= down[None, :] + unit).mean(axis=0)
        quota = _round_to_unit(quota, total, unit, floor, cap, odds)
    basis = [("no productive time in the period" if not on else text + extra)
             for text, extra, on in zip(basis, clamped, active, strict=True)]
    return Quotas(_table(figures, quota, method, basis, revenue), method, target, total, target_source,
                  figures.last_year_source, probability)


def _what(method: str) -> str:
    return {"potential": "potential", "history": "past revenue or potential", "pipeline": "weighted pipeline"
            }.get(method, method)


def _target(scenario: Scenario, simulation: object | None) -> tuple[float, str]:
    target = scenario.settings.quota.company_target
    if target:
        return float(target), "quota.company_target"
    if simulation is None:
        raise TercapError("quota.company_target is not set: set it, or allocate with a simulation of the plan "
                          "(the target is then its P50 of company revenue)")
    company = simulation.company_revenue  # type: ignore[attr-defined]
    return float(np.percentile(company, 50)), "the simulated P50 of company revenue (no quota.company_target)"


def _revenue_by_rep(simulation: object, rep_ids: np.ndarray) -> np.ndarray:
    """The simulation's (trials × reps) revenue, columns in the order of `rep_ids`."""
    index = pd.Index(simulation.rep_ids)  # type: ignore[attr-defined]
    position = index.get_indexer(rep_ids)
    if (position < 0).any():
        missing = ", ".join(str(r) for r in rep_ids[position < 0][:5])
        raise TercapError(f"the simulation has no revenue for rep(s) {missing}: simulate the same scenario")
    return np.asarray(simulation.rep_revenue)[:, position]  # type: ignore[attr-defined]


def _check_room(total: float, floor: np.ndarray, cap: np.ndarray, active: np.ndarray) -> None:
    if floor.sum() > total * (1 + 1e-12):
        raise TercapError(f"the quota floors alone sum to {floor.sum():,.0f}, above the total to allocate "
                          f"({total:,.0f} = target × over_assignment): lower quota.floor")
    if active.any() and cap[active].sum() < total * (1 - 1e-12):
        raise TercapError(f"the quota caps allow at most {cap[active].sum():,.0f} over {int(active.sum())} reps, "
                          f"below the total to allocate ({total:,.0f}): raise quota.cap")


def _weights(method: str, figures: BookFigures, growth: float, history_weight: float
             ) -> tuple[np.ndarray, list[str]]:
    ramp = figures.ramp_factor
    if method == "potential":
        return figures.potential * ramp, ["share of potential × ramp"] * len(ramp)
    if method == "pipeline":
        return figures.weighted_pipeline * ramp, ["share of weighted pipeline × ramp"] * len(ramp)
    history = figures.last_year_actual * growth
    potential = figures.potential
    scale = history.sum() / potential.sum() if potential.sum() > 0 else 0.0
    if history.sum() <= 0:  # no past revenue at all: potential alone
        return potential * ramp, ["share of potential × ramp (no revenue last year)"] * len(ramp)
    blend = history_weight * history + (1 - history_weight) * scale * potential
    text = f"{history_weight:.0%} last year × {growth:g}, {1 - history_weight:.0%} potential share; × ramp"
    return blend * ramp, [text] * len(ramp)


def _monotone_root(total_at: Callable[[float], float], total: float, low: float, high: float) -> float:
    """The x in [low, high] where the non-decreasing total_at(x) reaches `total` (bisection)."""
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if total_at(middle) < total:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * max(abs(high), 1.0):
            break
    return high


def _proportional(weight: np.ndarray, total: float, floor: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """clip(s × weight, floor, cap) with the scale s that makes them sum to `total`."""
    def total_at(scale: float) -> float:
        return float(np.clip(scale * weight, floor, cap).sum())

    high = total / weight.sum()
    while total_at(high) < total:
        high *= 2.0
    return np.clip(_monotone_root(total_at, total, 0.0, high) * weight, floor, cap)


def _equal_probability(revenue: np.ndarray, total: float, floor: np.ndarray, cap: np.ndarray,
                       active: np.ndarray) -> tuple[np.ndarray, float]:
    """Quotas q_i = clip(Q_i(1 − p), floor, cap), Q_i the empirical quantile of rep i's revenue, with
    the p that makes them sum to `total`; returns the quotas and p."""
    ordered = np.sort(revenue, axis=0)
    trials = ordered.shape[0]

    def quantile(level: float) -> np.ndarray:
        position = level * (trials - 1)
        below = int(np.floor(position))
        above = min(below + 1, trials - 1)
        return ordered[below] + (position - below) * (ordered[above] - ordered[below])

    def quotas_at(level: float) -> np.ndarray:
        return np.where(active, np.clip(quantile(level), floor, cap), 0.0)

    if quotas_at(1.0).sum() < total:  # even each rep's best trial is short: p as low as it goes
        raise TercapError(f"equal_probability: the quotas would have to sum to {total:,.0f}, above even the sum "
                          f"of every rep's best simulated year ({quotas_at(1.0).sum():,.0f}); lower the target "
                          "or the over-assignment")
    level = _monotone_root(lambda x: float(quotas_at(x).sum()), total, 0.0, 1.0)
    return quotas_at(level), 1.0 - level


def _round_to_unit(quota: np.ndarray, total: float, unit: float, floor: np.ndarray, cap: np.ndarray,
                   cost_up: np.ndarray | None = None) -> np.ndarray:
    """Quotas as multiples of `unit` summing to round(total ÷ unit) units: each rounded down, then one
    unit more where rounding up costs least (`cost_up`, e.g. the P(attain) it takes away), else for the
    largest remainders; never above a cap."""
    cells = quota / unit
    whole = np.floor(cells + 1e-9)
    missing = int(round(total / unit) - whole.sum())
    if missing > 0:
        room = ((whole + 1) * unit <= cap + 1e-6) & (quota > 0)
        remainder = cells - whole
        key = (-remainder,) if cost_up is None else (-remainder, cost_up)  # lexsort: last key first
        order = np.lexsort(key)
        order = order[room[order]][:missing]
        whole[order] += 1
    return np.maximum(whole * unit, np.where(quota > 0, floor, 0.0))


def _table(figures: BookFigures, quota: np.ndarray, method: str, basis: list[str],
           revenue: np.ndarray | None) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        to_potential = np.where(figures.potential > 0, quota / figures.potential, np.nan)
        coverage = np.where(quota > 0, figures.weighted_pipeline / quota, np.nan)
    p_attain = (revenue >= quota[None, :]).mean(axis=0) if revenue is not None else np.full(quota.size, np.nan)
    p_attain = np.where(quota > 0, p_attain, np.nan)
    flags = []
    p90 = np.percentile(revenue, STRETCH_QUANTILE, axis=0) if revenue is not None else None
    for i, value in enumerate(quota):
        notes = []
        if value > 0 and value > figures.potential[i]:
            notes.append("quota above the book's potential")
        if value > 0 and p90 is not None and value > p90[i]:
            notes.append(f"quota above the book's simulated P{STRETCH_QUANTILE}")
        flags.append("; ".join(notes))
    return pd.DataFrame({
        "rep_id": figures.rep_ids, "quota": quota, "method": method, "potential": figures.potential,
        "last_year_actual": figures.last_year_actual, "pipeline": figures.pipeline,
        "ramp_factor": figures.ramp_factor, "p_attain": p_attain, "basis": basis,
        "weighted_pipeline": figures.weighted_pipeline, "quota_to_potential": to_potential,
        "pipeline_coverage": coverage, "flag": flags})
