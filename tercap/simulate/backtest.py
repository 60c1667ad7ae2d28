"""Forecast accuracy backtest: forecast past windows from what was known at their start, and score them.

For each origin date (`as_of`) the scenario is cut back to what a planner knew that morning:

- the closed deals are the history rows closed before the origin; calibration fits the pipeline model
  to them (where the scenario does not fix a value), exactly as a planning run would;
- the open pipeline is every deal created before the origin and closed on or after it (history rows),
  plus the open pipeline table's deals created before it, at their recorded amounts (a CRM export keeps
  final amounts only: an amount that changed before the close is known here in advance, a small
  optimism that `open_deals` lets a reader weigh). A CRM export keeps no stage history either, so a
  deal's stage at the origin is estimated from its age: the stages whose calibrated median durations
  (times its segment's and buying process's multipliers) it has outlived. Its eventual outcome and
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

__all__ = ["Backtest", "as_of_scenario", "backtest", "crps", "default_origins", "pinball_loss"]

QUANTILES = (0.1, 0.5, 0.9)
COMPANY = "company"
FORECAST_COLUMNS = ("origin", "end", "level", "key", "open_deals", "actual", "mean", "p10", "p50", "p90",
                    "covered", "pinball", "crps")
METRIC_COLUMNS = ("level", "windows", "mape", "bias", "pinball", "crps", "coverage")


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
    staged = pipeline.assign(stage=_stage_by_age(cut, simulation, pipeline, day))
    return cut.replace(simulation=simulation, pipeline=staged)


def _stage_by_age(scenario: Scenario, simulation: Any, pipeline: pd.DataFrame, day: pd.Timestamp) -> np.ndarray:
    """Each open deal's stage on `day`, estimated from its age and the stages' median durations."""
    accounts = scenario.accounts.set_index("account_id")
    position = accounts.index.get_indexer(pipeline["account_id"])
    segment = accounts["segment"].to_numpy(dtype=object)[position]
    process = accounts["buying_process"].to_numpy(dtype=object)[position]
    factor = (pd.Series(segment).map(simulation.cycle_multiplier).fillna(1.0).to_numpy(dtype=float)
              * pd.Series(process).map(simulation.process_cycle_multiplier).fillna(1.0).to_numpy(dtype=float))
    age = ((day - pd.to_datetime(pipeline["created"])) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    ends = np.cumsum([stage.median_days for stage in simulation.stages])  # median day each stage ends
    passed = (age[:, None] >= ends[None, :-1] * factor[:, None]).sum(axis=1)
    return np.asarray(simulation.stage_names, dtype=object)[passed]


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
