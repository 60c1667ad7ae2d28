"""Forecast accuracy backtest: forecast past windows from what was known at their start, and score them.

For each origin date (`as_of`) the scenario is cut back to what a planner knew that morning:

- the closed deals are the history rows closed before the origin; calibration fits the pipeline model
  to them (where the scenario does not fix a value), exactly as a planning run would;
- the open pipeline is every deal created before the origin and closed on or after it (history rows),
  plus the open pipeline table's deals created before it, at their recorded amounts (a CRM export keeps
  final amounts only: an amount that changed before the close is known here in advance, a small
  optimism that `open_deals` lets a reader weigh). A CRM export keeps no stage history either, so each
  open deal is given the pipeline model's own view of a deal still open at its age (`open_deal_view`,
  with the calibrated stages, cycle multipliers and duration σ): with its cycle factor f (segment ×
  buying process) and base age x = age / f, stage k has weight w_k ∝ Π_{j<k} c_j × P(S_k ≤ x < S_{k+1}),
  S_k being the sum of the first k lognormal stage durations (a Monte Carlo of 50,000 seeded draws),
  so its win probability is p = Σ_k w_k Π_{j≥k} c_j and, if won, its days left are f × (S_K − x given
  S_K > x). The simulator takes a stage and an expected close, so the deal gets one of the two stages
  whose win probabilities Π_{j≥k} c_j bracket p, drawn (seeded) such that its win probability is p on
  average, and `expected_close` = origin + f × the median days left (at least one day), which the book
  reads as the median of its close. What this approximates: a deal's stage is drawn instead of carried
  as the mixture w (its win is Bernoulli(p) either way; only the count of stage moves left, through
  which the market factor acts, is coarser), and its close is the book's lognormal around that median
  with σ and its slip rather than the distribution of S_K − x; the conversions and durations are those
  calibrated on the history before the origin, so their errors pass through. Its eventual outcome and
  last stage are never read;
- the team is the accounts' books of today with every rep fully productive and no attrition: the
  history already shows what the team of the time produced, through the fitted arrival rate.

The window [origin, origin + months) is then simulated and compared with the won deals that closed in
it, for the company and for each segment (the segment of the account). Per window: P10, P50, P90,
mean, whether P10–P90 covered the actual, pinball losses at 0.1/0.5/0.9 and the CRPS of the samples.
Summaries per level: MAPE and bias of P50, mean pinball loss and CRPS (both relative to the mean
actual), and the share of windows covered (a calibrated model covers about 80%).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tercap.errors import TercapError
from tercap.scenario import Scenario
from tercap.simulate.book import cycle_factors

__all__ = ["Backtest", "OpenDealView", "as_of_scenario", "backtest", "crps", "default_origins", "open_deal_view",
           "pinball_loss"]

QUANTILES = (0.1, 0.5, 0.9)
COMPANY = "company"
FORECAST_COLUMNS = ("origin", "end", "level", "key", "open_deals", "actual", "mean", "p10", "p50", "p90",
                    "covered", "pinball", "crps")
METRIC_COLUMNS = ("level", "windows", "mape", "bias", "pinball", "crps", "coverage")
AGE_DRAWS = 50_000  # seeded draws of a deal's stage durations behind `open_deal_view`
AGE_SEED = 0
AGE_MIN_TAIL = 250  # an age is read no later than where this many draws are still open


def pinball_loss(samples: np.ndarray, actual: float, quantiles: Sequence[float] = QUANTILES) -> float:
    """Mean over `quantiles` of the pinball (quantile) loss of the samples' quantiles at `actual`."""
    values = np.quantile(samples, quantiles)
    losses = [max(q * (actual - v), (q - 1) * (actual - v)) for q, v in zip(quantiles, values, strict=True)]
    return float(np.mean(losses))


def crps(samples: np.ndarray, actual: float) -> float:
    """Continuous ranked probability score of the empirical distribution of `samples` at `actual`:
    E|X − y| − ½ E|X − X'| (lower is better; in the units of the samples)."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    spread = np.dot(2 * np.arange(1, n + 1) - n - 1, x) / n**2  # ½ E|X − X'|
    return float(np.abs(x - actual).mean() - spread)


@dataclass(frozen=True, eq=False)
class Backtest:
    """Forecasts of past windows beside what closed in them; see the module docstring."""

    scenario: str
    forecasts: pd.DataFrame  # FORECAST_COLUMNS, one row per (origin, level, key)
    trials: int
    seed: int

    def metrics(self) -> pd.DataFrame:
        """Per level (company, segment): windows, MAPE and bias of P50, pinball and CRPS relative to
        the mean actual, and the share of windows whose P10–P90 covered the actual."""
        rows = []
        for level, frame in self.forecasts.groupby(self.forecasts["level"], sort=False):
            actual = frame["actual"].to_numpy(dtype=float)
            scale = max(float(actual.mean()), 1e-9)
            positive = actual > 0
            rows.append({
                "level": level, "windows": len(frame),
                "mape": float(np.mean(np.abs(frame["p50"].to_numpy()[positive] - actual[positive])
                                      / actual[positive])) if positive.any() else float("nan"),
                "bias": float((frame["p50"].sum() - actual.sum()) / max(actual.sum(), 1e-9)),
                "pinball": float(frame["pinball"].mean() / scale),
                "crps": float(frame["crps"].mean() / scale),
                "coverage": float(frame["covered"].mean()),
            })
        return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))

    def summary(self) -> dict[str, Any]:
        """JSON-ready: scenario, trials, seed, origins, and the metrics by level."""
        origins = sorted(set(self.forecasts["origin"]))
        return {"scenario": self.scenario, "trials": self.trials, "seed": self.seed,
                "origins": [d.isoformat() for d in origins],
                "metrics": {row.pop("level"): row for row in self.metrics().to_dict("records")}}

    def __repr__(self) -> str:
        company = self.metrics().set_index("level").loc[COMPANY]
        return (f"<Backtest {self.scenario!r}: {int(company['windows'])} windows, MAPE {company['mape']:.1%}, "
                f"bias {company['bias']:+.1%}, P10–P90 coverage {company['coverage']:.0%}>")

    def _repr_html_(self) -> str:
        metrics = self.metrics().to_html(index=False, float_format=lambda v: f"{v:,.3f}", na_rep="—")
        forecasts = self.forecasts.to_html(index=False, float_format=lambda v: f"{v:,.0f}", na_rep="—")
        return (f"<div><h4>Backtest of {html.escape(self.scenario)}</h4>{metrics}"
                f"<details><summary>forecasts</summary>{forecasts}</details></div>")


def default_origins(scenario: Scenario, months: int = 3, count: int = 4) -> list[dt.date]:
    """The last `count` origins, `months` apart, whose windows end by the period start."""
    start = pd.Timestamp(scenario.settings.period.start)
    return [(start - pd.DateOffset(months=months * k)).date() for k in range(count, 0, -1)]


def as_of_scenario(scenario: Scenario, origin: dt.date, months: int) -> Scenario:
    """`scenario` as a planner knew it on the morning of `origin`, planning the next `months` months."""
    history = scenario.history
    if history is None or history.empty:
        raise TercapError(f"scenario {scenario.name!r} has no history table to backtest against")
    day = pd.Timestamp(origin)
    end = day + pd.DateOffset(months=months)
    period_start = pd.Timestamp(scenario.settings.period.start)
    if end > period_start:
        raise TercapError(f"the window {origin} + {months} months ends after {period_start.date()}, where the "
                          "history of closed deals ends")
    before = history[history["closed"] < day]
    if before.empty:
        raise TercapError(f"no deal closed before {origin}: nothing to calibrate the forecast from")
    open_then = history[(history["created"] < day) & (history["closed"] >= day)]
    columns = ["opp_id", "account_id", "amount", "created"]
    pipeline = open_then[columns]
    if scenario.pipeline is not None and not scenario.pipeline.empty:
        still_open = scenario.pipeline[scenario.pipeline["created"] < day]
        pipeline = pd.concat([pipeline, still_open[columns]], ignore_index=True)

    accounts = scenario.accounts.copy()
    reps = scenario.reps.copy()
    reps["start_date"], reps["end_date"] = pd.NaT, pd.NaT  # fully productive: the history is the team's output
    first_rep = reps.groupby("segment")["rep_id"].first()
    rep_segment = reps.set_index("rep_id")["segment"]
    owner = accounts["current_owner"]
    owner = owner.where(owner.map(rep_segment).eq(accounts["segment"]).fillna(False).astype(bool))
    accounts["current_owner"] = owner.fillna(accounts["segment"].map(first_rep)).fillna(reps["rep_id"].iat[0])
    accounts["locked"] = False
    pipeline = pipeline.assign(stage=scenario.settings.simulation.stage_names[0], owner=None,
                               expected_close=pd.NaT, forecast_category=None).reset_index(drop=True)
    # calibration reads the open deals' creation dates only (to count arrivals); their stages come next
    cut = scenario.replace(period={"start": day.date(), "months": months}, capacity={"annual_attrition": 0.0,
                                                                                     "hires": []},
                           reps=reps, accounts=accounts, history=before, pipeline=pipeline)
    from tercap.simulate.calibrate import calibrated_settings

    simulation = calibrated_settings(cut)
    stage, expected_close = _stage_by_age(cut, simulation, pipeline, day)
    staged = pipeline.assign(stage=stage, expected_close=expected_close)
    return cut.replace(simulation=simulation, pipeline=staged)


def _stage_by_age(scenario: Scenario, simulation: Any, pipeline: pd.DataFrame,
                  day: pd.Timestamp) -> tuple[np.ndarray, pd.Series]:
    """Each open deal's stage and expected close on `day`, from its age alone (see the module docstring)."""
    accounts = scenario.accounts.set_index("account_id")
    position = accounts.index.get_indexer(pipeline["account_id"])
    segment = accounts["segment"].to_numpy(dtype=object)[position]
    process = accounts["buying_process"].to_numpy(dtype=object)[position]
    factor = np.maximum(cycle_factors(simulation, segment, process), 1e-9)
    age = ((day - pd.to_datetime(pipeline["created"])) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    conversion = [stage.conversion for stage in simulation.stages]
    view = open_deal_view([stage.median_days for stage in simulation.stages], conversion,
                          simulation.duration_sigma, age / factor)
    uniform = np.random.default_rng([AGE_SEED, 1]).random(len(age))
    stage = _stage_for(view.win_probability, np.cumprod(conversion[::-1])[::-1], uniform)
    days_left = np.maximum(np.round(view.median_days_left * factor), 1.0)
    expected_close = pd.Series(day + pd.to_timedelta(days_left, unit="D"), index=pipeline.index)
    return np.asarray(simulation.stage_names, dtype=object)[stage], expected_close


def _stage_for(probability: np.ndarray, win_from_stage: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One stage per deal whose win probability W is `probability` on average over `uniform`: of the two
    stages around p, the upper one when uniform < (p − W_lower) / (W_upper − W_lower). `win_from_stage`
    is non-decreasing (W_k = Π_{j≥k} c_j)."""
    if len(win_from_stage) == 1:
        return np.zeros(len(probability), dtype=np.int64)
    upper = np.clip(np.searchsorted(win_from_stage, probability), 1, len(win_from_stage) - 1)
    lower = upper - 1
    gap = win_from_stage[upper] - win_from_stage[lower]
    chance = np.clip((probability - win_from_stage[lower]) / np.where(gap > 0, gap, 1.0), 0.0, 1.0)
    return np.where(uniform < chance, upper, lower)


@dataclass(frozen=True, eq=False)
class OpenDealView:
    """The pipeline model's view of deals still open at a given base age (age / cycle factor, in days);
    one row per deal. Made by `open_deal_view`."""

    weights: np.ndarray  # (deals, stages): P(in stage k | open at that age)
    win_probability: np.ndarray  # P(won eventually | open at that age)
    mean_days_left: np.ndarray  # E[base days to the close | open at that age, won eventually]
    median_days_left: np.ndarray  # their median


def open_deal_view(median_days: Sequence[float], conversion: Sequence[float], duration_sigma: float,
                   base_age: np.ndarray, *, draws: int = AGE_DRAWS, seed: int = AGE_SEED,
                   min_tail: int = AGE_MIN_TAIL) -> OpenDealView:
    """Stage weights, win probability and days to a won close of deals still open at `base_age` days.

    The model's deal spends D_k = median_days[k] × exp(σ Z_k) days in stage k (Z_k independent standard
    normals), leaves it at S_{k+1} = D_0 + … + D_k (S_0 = 0) and passes with conversion[k] = c_k, or is
    lost then. Open at age a, it is in stage k with weight w_k ∝ Π_{j<k} c_j × P(S_k ≤ a < S_{k+1}), and
    won with P = Σ_k w_k Π_{j≥k} c_j. A won deal's path is an unconditioned one, so given open and won
    its days left are S_K − a given S_K > a (mean and median). The S_k are `draws` seeded draws of the K
    durations, used exactly as their empirical distribution (sorted once; ages looked up by searchsorted).
    An age beyond all but `min_tail` draws of S_K is read where `min_tail` remain (the tail is noise
    beyond).
    """
    median_days = np.asarray(median_days, dtype=float)
    conversion = np.asarray(conversion, dtype=float)
    stages = len(median_days)
    rng = np.random.default_rng(seed)
    ends = np.sort(np.cumsum(median_days * np.exp(duration_sigma * rng.standard_normal((draws, stages))),
                             axis=1), axis=0)  # column k: the draws of S_{k+1}, each column sorted
    total = ends[:, -1]
    last = np.nextafter(total[max(draws - min_tail, 0)], -np.inf)
    age = np.clip(np.asarray(base_age, dtype=float), 0.0, max(last, 0.0))
    reached = np.ones((len(age), stages + 1))  # P(S_j ≤ a), j = 0..K
    for j in range(1, stages + 1):
        reached[:, j] = np.searchsorted(ends[:, j - 1], age, side="right") / draws
    within = reached[:, :-1] - reached[:, 1:]  # P(S_k ≤ a < S_{k+1}): S_k ≤ S_{k+1}
    weights = np.concatenate([[1.0], np.cumprod(conversion[:-1])])[None, :] * within
    norm = weights.sum(axis=1, keepdims=True)
    weights = np.where(norm > 0, weights / np.where(norm > 0, norm, 1.0), within / within.sum(axis=1, keepdims=True))
    closed = np.searchsorted(total, age, side="right")  # draws with S_K ≤ a; fewer than `draws` by the clip
    tail_sum = np.concatenate([np.cumsum(total[::-1])[::-1], [0.0]])[closed]  # Σ S_K over draws with S_K > a
    return OpenDealView(weights=weights, win_probability=weights @ np.cumprod(conversion[::-1])[::-1],
                        mean_days_left=tail_sum / (draws - closed) - age,
                        median_days_left=total[closed + (draws - closed) // 2] - age)


def backtest(scenario: Scenario, as_of: dt.date | Sequence[dt.date] | None = None, months: int = 3, *,
             trials: int = 2_000, seed: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Backtest:
    """Forecast the `months` after each origin in `as_of` (default: the last four quarters before the
    period) from what was known then, and score each forecast against what closed."""
    from tercap.simulate import simulate

    origins = default_origins(scenario, months) if as_of is None else \
        [as_of] if isinstance(as_of, dt.date) else list(as_of)
    if not origins:
        raise TercapError("no origin date to backtest from")
    seed = int(scenario.settings.simulation.seed if seed is None else seed)
    history = scenario.history
    segment_of = scenario.accounts.set_index("account_id")["segment"]
    rows = []
    for done, origin in enumerate(sorted(origins), start=1):
        cut = as_of_scenario(scenario, origin, months)
        result = simulate(cut, trials=trials, seed=seed)
        day, end = pd.Timestamp(origin), pd.Timestamp(origin) + pd.DateOffset(months=months)
        closed = history[(history["closed"] >= day) & (history["closed"] < end) & history["won"].astype(bool)]
        actual = closed["amount"].groupby(closed["account_id"].map(segment_of)).sum()
        rep_segment = cut.reps.set_index("rep_id")["segment"].reindex(result.rep_ids).to_numpy(dtype=object)
        open_deals = cut.pipeline["account_id"].map(segment_of).value_counts()
        samples = {COMPANY: result.rep_revenue.sum(axis=1)}
        for segment in sorted(set(segment_of)):
            samples[segment] = result.rep_revenue[:, rep_segment == segment].sum(axis=1)
        for key, values in samples.items():
            truth = float(actual.sum() if key == COMPANY else actual.get(key, 0.0))
            p10, p50, p90 = np.quantile(values, QUANTILES)
            rows.append({"origin": origin, "end": end.date(), "level": COMPANY if key == COMPANY else "segment",
                         "key": key, "open_deals": int(open_deals.sum() if key == COMPANY else open_deals.get(key, 0)),
                         "actual": truth, "mean": float(values.mean()), "p10": float(p10), "p50": float(p50),
                         "p90": float(p90), "covered": bool(p10 <= truth <= p90),
                         "pinball": pinball_loss(values, truth), "crps": crps(values, truth)})
        if progress:
            progress(done, len(origins))
    return Backtest(scenario=scenario.name, forecasts=pd.DataFrame(rows, columns=list(FORECAST_COLUMNS)),
                    trials=trials, seed=seed)
