"""Backtest: forecast past windows from what was known at their start, and score them beside the baselines.

At each origin (any date, taken as the morning of that day) the deal model is fitted again from the
deals known then: closed before the origin, or still open then (right-censored at their age that
morning); nothing that happened from the origin on is read, except the amounts of deals later won (a
CRM export keeps final amounts only; an amount of 0 or blank is drawn from the won amounts known, so an
export's zero on lost deals does not tell the forecast which deals lose). Two targets, scored apart:

- `open`: the value won in [origin, origin + months) from the deals open at the origin — what a director
  asks of today's pipeline;
- `total`: all the value won in the window, new deals included.

Baselines in the same table, as practitioners make them: `win_rate_x_open` (the win rate of the deals
closed before the origin × the value open then), `run_rate` (the value won in the window of the same
length before the origin) and, where a stage history says which stage each deal was in on the origin's
morning, `stage_weighted` (Σ open value × the win rate of the deals closed before the origin that had
reached the deal's stage, a won deal having reached every stage). Without a stage history an export
does not say which stage a deal was in then, and the stage-weighted pipeline is not scored.

Per origin and target: P05, P10, P50, P90, P95, the error of P50, CRPS, pinball loss at 0.1/0.5/0.9,
whether P10–P90 and P05–P95 held the actual, and the PIT. Overall: MAPE and bias of P50, mean CRPS and
pinball (relative to the mean actual), the coverages, and for each baseline whether tercap's mean CRPS
is lower and at how many origins the baseline scored better. Origins with too little history before
them, or whose window ends after the data, are skipped with a note.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tercap.errors import TercapError
from tercap.pipeline.deals import deals_at, known_deals
from tercap.pipeline.forecast import forecast_window
from tercap.pipeline.model import TooLittleHistory, fit_deal_model
from tercap.pipeline.scores import crps, pinball_loss, pit

__all__ = ["Backtest", "backtest", "backtest_deals", "default_origins"]

TARGETS = ("open", "total")
TERCAP, WIN_RATE, RUN_RATE, STAGE_WEIGHTED = "tercap", "win_rate_x_open", "run_rate", "stage_weighted"
METHODS = (TERCAP, WIN_RATE, RUN_RATE, STAGE_WEIGHTED)
FORECAST_COLUMNS = ("origin", "end", "target", "method", "open_deals", "actual", "mean", "p05", "p10", "p50",
                    "p90", "p95", "error", "crps", "pinball", "covered80", "covered90", "pit")
METRIC_COLUMNS = ("target", "method", "origins", "mape", "bias", "crps", "pinball", "coverage80", "coverage90",
                  "beats", "origins_better")
MAX_DEFAULT_ORIGINS = 8
MIN_STAGED_CLOSED = 30  # closed deals with their stages on record that the stage-weighted baseline needs
MIN_DEFAULT_MONTHS = 6  # default origins leave this much data before them (a younger CRM is all fast deals)


@dataclass(frozen=True, eq=False)
class Backtest:
    """Forecasts of past windows beside what was won in them; see the module docstring."""

    scenario: str
    months: int
    forecasts: pd.DataFrame  # FORECAST_COLUMNS, one row per (origin, target, method)
    trials: int
    seed: int
    notes: tuple[str, ...] = ()
    samples: pd.DataFrame | None = field(default=None)  # origin, target, trial, value (when asked for)

    @property
    def origins(self) -> list[dt.date]:
        return sorted(set(self.forecasts["origin"]))

    def metrics(self) -> pd.DataFrame:
        """Per target and method: origins, MAPE and bias of P50, CRPS and pinball relative to the mean
        actual, P10–P90 and P05–P95 coverage (tercap), and for a baseline whether tercap's mean CRPS is
        lower (`beats`) and at how many origins the baseline's CRPS was lower (`origins_better`)."""
        rows = []
        for (target, method), frame in self.forecasts.groupby(["target", "method"], sort=False):
            actual = frame["actual"].to_numpy(dtype=float)
            scale = max(float(np.mean(actual)), 1e-9)
            positive = actual > 0
            row: dict[str, Any] = {
                "target": target, "method": method, "origins": len(frame),
                "mape": float(np.mean(np.abs(frame["error"].to_numpy()[positive]))) if positive.any() else np.nan,
                "bias": float((frame["p50"].sum() - actual.sum()) / max(actual.sum(), 1e-9)),
                "crps": float(frame["crps"].mean() / scale), "pinball": float(frame["pinball"].mean() / scale),
                "coverage80": np.nan, "coverage90": np.nan, "beats": None, "origins_better": None}
            if method == TERCAP:
                row["coverage80"] = float(frame["covered80"].astype(float).mean())
                row["coverage90"] = float(frame["covered90"].astype(float).mean())
            else:
                ours = self.forecasts[(self.forecasts["target"] == target) & (self.forecasts["method"] == TERCAP)]
                paired = frame.merge(ours[["origin", "crps"]], on="origin", suffixes=("", "_tercap"))
                row["beats"] = bool(paired["crps_tercap"].mean() < paired["crps"].mean())
                row["origins_better"] = int((paired["crps"] < paired["crps_tercap"]).sum())
            rows.append(row)
        return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))

    def summary(self) -> dict[str, Any]:
        """JSON-ready: scenario, months, trials, seed, origins, the metrics and the notes."""
        metrics: dict[str, Any] = {}
        for row in self.metrics().to_dict("records"):
            metrics.setdefault(row.pop("target"), {})[row.pop("method")] = {
                k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        return {"scenario": self.scenario, "months": self.months, "trials": self.trials, "seed": self.seed,
                "origins": [d.isoformat() for d in self.origins], "metrics": metrics, "notes": list(self.notes)}

    def __repr__(self) -> str:
        metrics = self.metrics()
        ours = metrics[(metrics["method"] == TERCAP) & (metrics["target"] == "open")]
        if ours.empty:
            return f"<Backtest {self.scenario!r}: no origin scored>"
        row = ours.iloc[0]
        return (f"<Backtest {self.scenario!r}: {int(row['origins'])} origins, open pipeline: MAPE {row['mape']:.1%}, "
                f"bias {row['bias']:+.1%}, P10–P90 coverage {row['coverage80']:.0%}>")

    def _repr_html_(self) -> str:
        metrics = self.metrics().to_html(index=False, float_format=lambda v: f"{v:,.3f}", na_rep="—")
        forecasts = self.forecasts.to_html(index=False, float_format=lambda v: f"{v:,.3f}", na_rep="—")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div><h4>Backtest of {html.escape(self.scenario)}</h4>{metrics}"
                + (f"<ul>{notes}</ul>" if notes else "")
                + f"<details><summary>forecasts</summary>{forecasts}</details></div>")


def default_origins(deals: pd.DataFrame, data_end: dt.date, months: int = 3,
                    count: int = MAX_DEFAULT_ORIGINS) -> list[dt.date]:
    """Quarter starts whose window of `months` ends by `data_end`, after MIN_DEFAULT_MONTHS of data; the
    last `count` of them."""
    first = pd.Timestamp(deals["created"].min())
    starts = pd.date_range(first + pd.DateOffset(months=MIN_DEFAULT_MONTHS), pd.Timestamp(data_end), freq="QS")
    fitting = [d.date() for d in starts if d + pd.DateOffset(months=months) <= pd.Timestamp(data_end)]
    return fitting[-count:]


def backtest(scenario: Any, as_of: dt.date | Sequence[dt.date] | None = None, months: int = 3, *,
             trials: int = 2_000, seed: int | None = None, keep_samples: bool = False,
             progress: Callable[[int, int], None] | None = None) -> Backtest:
    """Backtest the deal model on `scenario`'s history and pipeline (see the module docstring). The data
    ends at the scenario's period start; `as_of` defaults to the quarter starts before it."""
    deals = known_deals(scenario)
    if not len(deals) or scenario.history is None or scenario.history.empty:
        raise TercapError(f"scenario {scenario.name!r} has no history table to backtest against")
    seed = int(scenario.settings.simulation.seed if seed is None else seed)
    return backtest_deals(deals, as_of, months, data_end=scenario.settings.period.start, trials=trials, seed=seed,
                          name=scenario.name, keep_samples=keep_samples, progress=progress,
                          stage_history=scenario.stage_history, stages=scenario.settings.simulation.stage_names)


def backtest_deals(deals: pd.DataFrame, as_of: dt.date | Sequence[dt.date] | None, months: int, *,
                   data_end: dt.date, trials: int = 2_000, seed: int = 0, name: str = "deals",
                   keep_samples: bool = False, progress: Callable[[int, int], None] | None = None,
                   stage_history: pd.DataFrame | None = None, stages: Sequence[str] = ()) -> Backtest:
    """Backtest on a `known_deals` frame whose outcomes are known up to the morning of `data_end`;
    `stage_history` (opp_id, stage, entered) with the open `stages` in order adds the stage-weighted
    baseline."""
    if isinstance(as_of, dt.date):
        origins = [as_of]
    elif as_of is None:
        origins = default_origins(deals, data_end, months)
    else:
        origins = sorted(set(as_of))
    if not origins:
        raise TercapError(f"no origin to backtest from: no quarter start leaves a window of {months} month(s) "
                          f"before {data_end} after {MIN_DEFAULT_MONTHS} months of data")
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    samples: list[pd.DataFrame] = []
    created = pd.to_datetime(deals["created"])
    closed = pd.to_datetime(deals["closed"])
    won = deals["won"].to_numpy(dtype=bool)
    amount = deals["amount"].to_numpy(dtype=float)
    for done, origin in enumerate(origins, start=1):
        day = pd.Timestamp(origin)
        end = day + pd.DateOffset(months=months)
        if end > pd.Timestamp(data_end):
            notes.append(f"{origin}: the window ends {end.date()}, after the data ({data_end}): skipped")
            continue
        table = deals_at(deals, origin)
        try:
            model = fit_deal_model(table)
        except TooLittleHistory as exc:
            notes.append(f"{origin}: skipped: {exc}")
            continue
        days = (end - day).days
        forecast = forecast_window(model, table.open, days, trials=trials, seed=seed)
        open_ids = set(table.open["opp_id"])
        in_window = won & (closed >= day).to_numpy() & (closed < end).to_numpy()
        from_open = in_window & deals["opp_id"].isin(open_ids).to_numpy()
        actual = {"open": float(amount[from_open].sum()), "total": float(amount[in_window].sum())}
        before = table.closed
        win_rate = float((before["outcome"] == 1).mean())
        open_frame = table.open
        fill = float(model.won_amounts.mean()) if len(model.won_amounts) else 0.0
        open_value = float(np.where(open_frame["amount_known"], open_frame["amount"], fill).sum())
        previous = won & (closed >= day - pd.Timedelta(days=days)).to_numpy() & (closed < day).to_numpy()
        point = {WIN_RATE: win_rate * open_value, RUN_RATE: float(amount[previous].sum())}
        weighted = _stage_weighted(table, stage_history, stages, fill)
        if weighted is not None:
            point[STAGE_WEIGHTED] = weighted
        if (created < day - pd.Timedelta(days=days)).sum() == 0:
            point[RUN_RATE] = np.nan
        for target, values in (("open", forecast.open_value), ("total", forecast.total_value)):
            truth = actual[target]
            rows.append(_scored(origin, end.date(), target, TERCAP, len(open_ids), truth, values, seed, done))
            for method, value in point.items():
                if np.isfinite(value):
                    rows.append(_scored(origin, end.date(), target, method, len(open_ids), truth,
                                        np.array([value]), seed, done))
            if keep_samples:
                samples.append(pd.DataFrame({"origin": origin, "target": target, "trial": np.arange(len(values)),
                                             "value": values}))
        notes.extend(f"{origin}: {note}" for note in model.notes if "stale" in note or "no amount" in note)
        if progress:
            progress(done, len(origins))
    if not rows:
        raise TercapError("no origin could be backtested: " + "; ".join(notes))
    return Backtest(scenario=name, months=months, forecasts=pd.DataFrame(rows, columns=list(FORECAST_COLUMNS)),
                    trials=trials, seed=seed, notes=tuple(notes),
                    samples=pd.concat(samples, ignore_index=True) if samples else None)


def _stage_weighted(table: Any, stage_history: pd.DataFrame | None, stages: Sequence[str],
                    fill: float) -> float | None:
    """Σ over the deals open on the table's morning of value × the win rate from the stage each was in
    (the furthest open stage it had entered by then; the first where it had entered none), the win rates
    read off the deals closed before then whose stages are on record. None without such deals."""
    if stage_history is None or stage_history.empty or not stages:
        return None
    day = pd.Timestamp(table.as_of)
    entries = stage_history[pd.to_datetime(stage_history["entered"]) < day]
    rank = pd.Index(list(stages)).get_indexer(entries["stage"])
    furthest = pd.Series(rank, index=entries["opp_id"].to_numpy())[rank >= 0].groupby(level=0).max()
    closed = table.closed
    known = closed["opp_id"].isin(furthest.index).to_numpy()
    if known.sum() < MIN_STAGED_CLOSED:
        return None
    won = (closed["outcome"] == 1).to_numpy()[known]
    reached = furthest.reindex(closed["opp_id"][known]).to_numpy()
    win_from = np.array([won[won | (reached >= k)].mean() if (won | (reached >= k)).any() else 0.0
                         for k in range(len(stages))])
    open_deals = table.open
    stage = furthest.reindex(open_deals["opp_id"]).fillna(0).to_numpy(dtype=np.int64)
    value = np.where(open_deals["amount_known"], open_deals["amount"], fill)
    return float((value * win_from[stage]).sum())


def _scored(origin: dt.date, end: dt.date, target: str, method: str, open_deals: int, actual: float,
            values: np.ndarray, seed: int, index: int) -> dict[str, Any]:
    p05, p10, p50, p90, p95 = np.quantile(values, (0.05, 0.1, 0.5, 0.9, 0.95))
    uniform = float(np.random.default_rng([seed, index, TARGETS.index(target)]).random())
    return {"origin": origin, "end": end, "target": target, "method": method, "open_deals": open_deals,
            "actual": actual, "mean": float(values.mean()), "p05": float(p05), "p10": float(p10), "p50": float(p50),
            "p90": float(p90), "p95": float(p95),
            "error": float(p50 / actual - 1.0) if actual > 0 else np.nan,
            "crps": crps(values, actual), "pinball": pinball_loss(values, actual),
            "covered80": bool(p10 <= actual <= p90) if method == TERCAP else None,
            "covered90": bool(p05 <= actual <= p95) if method == TERCAP else None,
            "pit": pit(values, actual, uniform) if method == TERCAP else np.nan}

