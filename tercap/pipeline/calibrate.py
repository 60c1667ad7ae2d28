"""Calibration: the simulation settings fitted from a scenario's closed-deal history, with their uncertainty.

`calibrate(scenario)` reads the `history` table (closed opportunities as a CRM exports them), the
accounts (segment, buying process, potential) and, when there is one, the open `pipeline`, and fits
what `Simulation` describes:

- stage conversions, by the survival (life-table) estimator, from the deals whose `last_stage` is known (an
  export without stage history has none: conversions are then not fitted): a deal lost with `last_stage` k reached
  stage k and failed there; a won deal passed every stage. Each is the pass rate of the deals that
  reached the stage, and their product is the win rate. Where a market factor is shared by a deal's
  successive stages (the synthetic generator draws one per calendar quarter for every transition), the
  survivors of a stage met it mostly in good quarters and pass the next one more often than a single
  transition does: the later stages' rates given survival, which the history shows and a simulation
  that multiplies conversions needs, then exceed the per-transition rates that process is configured with;
- the win rate, overall and by segment;
- deal sizes by segment: a lognormal fitted to won deals with their σ of the log amount and their mean
  amount (median = mean × exp(−σ²/2)): on a price list's mixture of a few products, which is not
  lognormal, the log-mean alone would set a mean far from the won deals' own, and totals follow the mean;
- cycle lengths of won deals by segment (median, σ of the log days; a cycle is closed − created + ½
  day, since whole-day dates truncate), and the stage durations behind
  them: deals lost at stage k took the first k + 1 stages, so the mean cycle of deals closing at
  successive stages differs by one stage's mean duration (a gamma GLM with a log link, factors stage
  × segment × buying process); σ of one stage's log duration comes from the deals lost at the first
  stage. This identifies per-stage durations only if a stage's duration does not depend on how the
  deal ends; in a CRM, lost deals that stall before someone closes them out break that assumption;
- the arrival rate of new opportunities per unit of account potential and year (overall and by
  segment) and its monthly seasonality (12 factors of mean 1), counted over a window in which every
  opportunity created is either closed (history) or still open (pipeline);
- the market correlation ρ of a one-factor Gaussian copula, from the dispersion of quarterly
  conversion rates beyond what independent deals give (method of moments through the bivariate normal).

Two quarterly dispersions are measured. `market_correlation` uses the last stage's conversion by
calendar quarter of the close: a deal that reached the last stage leaves it on its close date, so its
outcome is one Bernoulli trial of a copula on the market factor of that quarter. That is ρ as the
synthetic generator applies it (per stage transition, one factor per calendar quarter), and it is the
value `apply` writes. `win_correlation` is the same method on whole-deal outcomes (won or lost) by
quarter of the close: the correlation a copula put on a deal's win probability would need to match
quarterly swings. Both are per quarter, as the simulation draws its factors (one per calendar quarter,
acting on every stage move left: `tercap.simulate.book.move_thresholds`).

Uncertainty: every estimate carries a standard error and a 95% interval. Proportions are binomial
with a quasi-binomial dispersion (the spread of the quarterly rates beyond binomial, at least 1), so
that a market factor widens their intervals as it should; counts are Poisson with the dispersion of
the counts across accounts; sizes and cycles are normal on the log scale. What cannot be estimated
(too few deals, no pipeline table, a window shorter than a year) is NaN and listed in `notes`.

`Calibration.apply(simulation)` returns new `Simulation` settings with the fitted values, keeping the
values the scenario set itself (see `apply`). `slip_probability`, `trials` and `seed` are not fitted:
a closed-deal history does not record the close dates the reps expected.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tercap.pipeline.copula import MAX_CORRELATION, copula_density, correlation_for
from tercap.scenario import Scenario
from tercap.scenario.schema import DealSize, FrozenDict, Simulation, Stage
from tercap.scenario.tables import known_last_stage

__all__ = ["CALIBRATED_FIELDS", "Calibration", "Estimate", "calibrate", "calibrated_settings",
           "implied_correlation"]

Z95 = float(stats.norm.ppf(0.975))
DAYS_PER_YEAR = 365.25
HALF_DAY = 0.5  # cycle days = closed − created + ½: whole-day dates truncate; same-day closes stay finite
MIN_QUARTERS = 3  # fewest quarters with deals for a dispersion (and so for ρ)
MIN_APPLIED = 30  # fewest observations behind an estimate that `apply` writes into the settings
ALL = "all"  # the `segment` of an estimate over every segment in `to_frame()`
# The Simulation fields that `apply` may change; the others (trials, seed, slip_probability) it never does.
CALIBRATED_FIELDS = ("stages", "deal_sizes", "cycle_multiplier", "process_cycle_multiplier", "duration_sigma",
                     "seasonality", "market_correlation", "market_correlation_quarters", "pipeline_yield",
                     "win_rate_std_error", "pipeline_yield_std_error")
FRAME_COLUMNS = ("parameter", "segment", "key", "estimate", "std_error", "low", "high", "n")


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its standard error, 95% interval and the observations behind it."""

    estimate: float
    std_error: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @property
    def usable(self) -> bool:
        """Finite, and backed by at least MIN_APPLIED observations: `apply` writes only these."""
        return math.isfinite(self.estimate) and self.n >= MIN_APPLIED


MISSING = Estimate(math.nan)


@dataclass(frozen=True, eq=False)
class Calibration:
    """Simulation parameters fitted from a scenario's history. Immutable; see the module docstring.

    Mappings are keyed by segment (or buying process); tuples follow `stages` (or the calendar months,
    January first). Rates are per year; the arrival rate is opportunities per unit of potential per year.
    """

    scenario: str
    deals: int  # closed deals used
    quarters: int  # calendar quarters of close in the history
    stages: tuple[str, ...]
    conversion: tuple[Estimate, ...]
    win_rate: Estimate
    win_rate_by_segment: Mapping[str, Estimate]
    deal_median: Mapping[str, Estimate]
    deal_sigma: Mapping[str, Estimate]
    cycle_median: Mapping[str, Estimate]  # won deals, days
    cycle_sigma: Mapping[str, Estimate]
    stage_days: tuple[Estimate, ...]  # median days in each stage of a deal whose multipliers are 1
    cycle_multiplier: Mapping[str, Estimate]
    process_cycle_multiplier: Mapping[str, Estimate]
    duration_sigma: Estimate
    arrival_rate: Estimate
    arrival_rate_by_segment: Mapping[str, Estimate]
    arrival_window: tuple[dt.date, dt.date] | None  # creation dates counted: [start, end)
    seasonality: tuple[Estimate, ...]
    market_correlation: Estimate
    win_correlation: Estimate
    pipeline_yield: Estimate
    notes: tuple[str, ...] = ()

    # -- reading -------------------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate: parameter, segment ('all' if none), key (stage, month or buying
        process; '' if none), estimate, std_error, low, high (95%), n."""
        rows: list[tuple[str, str, str, Estimate]] = []
        rows += [("conversion", ALL, stage, e) for stage, e in zip(self.stages, self.conversion, strict=True)]
        rows.append(("win_rate", ALL, "", self.win_rate))
        rows += [("win_rate", s, "", e) for s, e in self.win_rate_by_segment.items()]
        for name in ("deal_median", "deal_sigma", "cycle_median", "cycle_sigma"):
            rows += [(name, s, "", e) for s, e in getattr(self, name).items()]
        rows += [("stage_days", ALL, stage, e) for stage, e in zip(self.stages, self.stage_days, strict=True)]
        rows += [("cycle_multiplier", s, "", e) for s, e in self.cycle_multiplier.items()]
        rows += [("process_cycle_multiplier", ALL, p, e) for p, e in self.process_cycle_multiplier.items()]
        rows.append(("duration_sigma", ALL, "", self.duration_sigma))
        rows.append(("arrival_rate", ALL, "", self.arrival_rate))
        rows += [("arrival_rate", s, "", e) for s, e in self.arrival_rate_by_segment.items()]
        rows += [("seasonality", ALL, f"{m:02d}", e) for m, e in enumerate(self.seasonality, start=1)]
        rows += [("market_correlation", ALL, "", self.market_correlation),
                 ("win_correlation", ALL, "", self.win_correlation),
                 ("pipeline_yield", ALL, "", self.pipeline_yield)]
        return pd.DataFrame([(p, s, k, e.estimate, e.std_error, e.low, e.high, e.n) for p, s, k, e in rows],
                            columns=list(FRAME_COLUMNS))

    def summary(self) -> dict[str, Any]:
        """Headline figures (JSON-ready): deals, quarters, win rate, conversions, ρ, yield, notes."""
        return {
            "scenario": self.scenario, "deals": self.deals, "quarters": self.quarters,
            "win_rate": self.win_rate.estimate,
            "conversion": dict(zip(self.stages, (e.estimate for e in self.conversion), strict=True)),
            "market_correlation": self.market_correlation.estimate,
            "win_correlation": self.win_correlation.estimate,
            "pipeline_yield": self.pipeline_yield.estimate,
            "arrival_window": None if self.arrival_window is None else [d.isoformat() for d in self.arrival_window],
            "notes": list(self.notes),
        }

    # -- writing the settings ------------------------------------------------------------------

    def apply(self, simulation: Simulation, *, keep: Iterable[str] | None = None) -> Simulation:
        """New `Simulation` settings with the fitted values in place of `simulation`'s; it is unchanged.

        `keep` names the fields to leave as they are. None (the default): the fields the scenario set
        itself, read from `simulation.model_fields_set`, unless their value equals the schema default
        (`Scenario.replace` marks every field as set, and a value equal to the default says nothing
        either way). A mapping-valued field (deal_sizes, cycle_multiplier, process_cycle_multiplier)
        is then kept entry by entry: the entries that differ from the default stay, the others are
        fitted. A scenario that defines its own stages has set them, and keeps its conversions: pass
        `keep=()` to fit every field. Only estimates with at least MIN_APPLIED observations are
        written; `trials`, `seed` and `slip_probability` are never changed. Conversions are written as
        fitted: pass rates given survival, whose product from a stage on is a deal's win probability.

        The result replaces a scenario's section whole: `scenario.replace(simulation=calibration.apply(
        scenario.settings.simulation))`.
        """
        if tuple(simulation.stage_names) != self.stages:
            raise ValueError(f"the settings' stages {list(simulation.stage_names)} are not the stages the "
                             f"calibration was fitted with {list(self.stages)}")
        defaults = Simulation()
        if keep is None:
            explicit = {name for name in simulation.model_fields_set
                        if getattr(simulation, name) != getattr(defaults, name)}
            entries_kept = True
        else:
            explicit = {keep} if isinstance(keep, str) else set(keep)
            unknown = explicit - set(Simulation.model_fields)
            if unknown:
                raise ValueError(f"keep names unknown Simulation fields: {', '.join(sorted(unknown))}")
            entries_kept = False
        update: dict[str, Any] = {}

        def fitted(name: str, value: Any) -> None:
            if name not in explicit:
                update[name] = value

        def merged(name: str, values: Mapping[str, Any]) -> None:
            current = dict(getattr(simulation, name))
            default = getattr(defaults, name)
            if name in explicit and not entries_kept:
                return
            for key, value in values.items():
                if name in explicit and key in current and current[key] != default.get(key):
                    continue  # an entry the scenario set itself
                current[key] = value
            update[name] = current

        stages = []
        for stage, conversion, days in zip(simulation.stages, self.conversion, self.stage_days, strict=True):
            stages.append(Stage(name=stage.name,
                                conversion=conversion.estimate if conversion.usable else stage.conversion,
                                median_days=max(days.estimate, HALF_DAY) if days.usable else stage.median_days))
        fitted("stages", tuple(stages))
        merged("deal_sizes", {
            segment: DealSize(median=median.estimate, sigma=self.deal_sigma[segment].estimate)
            for segment, median in self.deal_median.items()
            if median.usable and self.deal_sigma[segment].usable})
        merged("cycle_multiplier", {s: e.estimate for s, e in self.cycle_multiplier.items() if e.usable})
        merged("process_cycle_multiplier",
               {p: e.estimate for p, e in self.process_cycle_multiplier.items() if e.usable})
        if self.duration_sigma.usable:
            fitted("duration_sigma", self.duration_sigma.estimate)
        if all(e.usable for e in self.seasonality):
            fitted("seasonality", tuple(e.estimate for e in self.seasonality))
        if math.isfinite(self.market_correlation.estimate) and self.quarters >= MIN_QUARTERS:
            fitted("market_correlation", self.market_correlation.estimate)
            if "market_correlation" not in explicit:  # the spread of a ρ the scenario set is not ours to add
                fitted("market_correlation_quarters", self.market_correlation.n)
        if self.pipeline_yield.usable:
            fitted("pipeline_yield", self.pipeline_yield.estimate)
            if math.isfinite(self.pipeline_yield.std_error):
                fitted("pipeline_yield_std_error", self.pipeline_yield.std_error)
        if self.win_rate.usable and math.isfinite(self.win_rate.std_error):
            fitted("win_rate_std_error", min(self.win_rate.std_error, 0.5))
        values = {name: getattr(simulation, name) for name in simulation.model_fields_set}
        values.update(update)
        # Validated again (not a model_copy): fitted values obey the schema's bounds like any others.
        return Simulation.model_validate(_plain(values))

    # -- display -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<Calibration {self.scenario!r}: {self.deals:,} closed deals, {self.quarters} quarters, "
                f"win rate {self.win_rate.estimate:.1%}, ρ {self.market_correlation.estimate:.3f}>")

    def _repr_html_(self) -> str:
        frame = self.to_frame().to_html(index=False, float_format=lambda v: f"{v:,.4g}", escape=True, na_rep="—")
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
        return (f"<div><h4>Calibration of {html.escape(self.scenario)}</h4>"
                f"<p>{self.deals:,} closed deals over {self.quarters} quarters</p>{frame}"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def _plain(value: Any) -> Any:
    """Settings values as plain Python (dicts, tuples, floats) for validation."""
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, np.floating):
        return float(value)
    return value


# ----------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------


def calibrate(scenario: Scenario) -> Calibration:
    """Fit the simulation parameters from `scenario`'s history (see the module docstring).

    Raises ValueError when the scenario has no history table, or a history without closed deals.
    """
    history = scenario.history
    if history is None or history.empty:
        raise ValueError(f"scenario {scenario.name!r} has no closed deals (a 'history' table) to calibrate from")
    sim = scenario.settings.simulation
    stage_names = sim.stage_names
    accounts = scenario.accounts.set_index("account_id")
    deals = _deals(history, accounts, stage_names)
    notes: list[str] = []
    segments = sorted(deals["segment"].unique())
    last = len(stage_names) - 1

    # stage conversions: deals that reached stage k, and those of them lost there; only the deals whose
    # last stage is known (a CRM export without stage history says nothing about it)
    reached_at = deals["stage"].to_numpy()
    won = deals["won"].to_numpy()
    quarter = deals["quarter"].to_numpy()
    staged = reached_at >= 0
    conversion = []
    if not staged.any():
        notes.append("no closed deal has a known last stage (no stage history): stage conversions are not fitted "
                     "and stay as the scenario sets them; the deal model (tercap.pipeline) forecasts open deals "
                     "by age instead")
        conversion = [MISSING for _ in stage_names]
    else:
        if not staged.all():
            notes.append(f"{int((~staged).sum()):,} closed deal(s) without a known last stage are left out of the "
                         "stage conversions and durations")
        for k, name in enumerate(stage_names):
            reached = staged & (won | (reached_at >= k))
            passed = won[reached] | (reached_at[reached] > k)
            conversion.append(_proportion(passed, quarter[reached]))
            if not reached.any():
                notes.append(f"no closed deal reached stage '{name}': its conversion is not estimated")

    win_rate = _proportion(won, quarter)
    by_segment = {s: deals["segment"].to_numpy() == s for s in segments}
    win_rate_by_segment = {s: _proportion(won[rows], quarter[rows]) for s, rows in by_segment.items()}

    won_deals = deals[deals["won"]]
    amounts = won_deals[won_deals["amount"] > 0]
    if len(amounts) < len(won_deals):
        notes.append(f"{len(won_deals) - len(amounts)} won deal(s) with amount 0 are left out of the deal sizes")
    deal_median, deal_sigma = {}, {}
    cycle_median, cycle_sigma = {}, {}
    for s in segments:
        deal_median[s], deal_sigma[s] = _deal_sizes(amounts.loc[amounts["segment"] == s, "amount"].to_numpy())
        days = won_deals.loc[won_deals["segment"] == s, "days"].to_numpy()
        cycle_median[s] = _median(days)
        cycle_sigma[s] = _lognormal(np.log(days))[1]

    durations = _stage_durations(deals[staged | won], sim, notes) if staged.any() else (
        tuple(MISSING for _ in stage_names), {}, {}, MISSING)
    arrivals = _arrivals(scenario, deals, accounts, notes)
    arrival_rate, arrival_rate_by_segment, window, seasonality = arrivals

    at_last = staged & (won | (reached_at == last))
    market = implied_correlation(*_grouped(won[at_last], quarter[at_last])) if at_last.any() else MISSING
    whole = implied_correlation(*_grouped(won, quarter))
    quarters = len(np.unique(quarter))
    if quarters < MIN_QUARTERS:
        notes.append(f"the history spans {quarters} calendar quarter(s) of closes; ρ needs at least {MIN_QUARTERS}")

    pipeline_yield = _pipeline_yield(accounts, arrival_rate_by_segment, win_rate_by_segment, deal_median,
                                     deal_sigma)
    return Calibration(
        scenario=scenario.name, deals=len(deals), quarters=quarters, stages=stage_names,
        conversion=tuple(conversion), win_rate=win_rate, win_rate_by_segment=FrozenDict(win_rate_by_segment),
        deal_median=FrozenDict(deal_median), deal_sigma=FrozenDict(deal_sigma),
        cycle_median=FrozenDict(cycle_median), cycle_sigma=FrozenDict(cycle_sigma),
        stage_days=durations[0], cycle_multiplier=FrozenDict(durations[1]),
        process_cycle_multiplier=FrozenDict(durations[2]), duration_sigma=durations[3],
        arrival_rate=arrival_rate, arrival_rate_by_segment=FrozenDict(arrival_rate_by_segment),
        arrival_window=window, seasonality=seasonality, market_correlation=market, win_correlation=whole,
        pipeline_yield=pipeline_yield, notes=tuple(notes))


def _deals(history: pd.DataFrame, accounts: pd.DataFrame, stage_names: tuple[str, ...]) -> pd.DataFrame:
    """The closed deals with their account's segment, process and potential, stage index, quarter, days."""
    known = known_last_stage(history)
    stage = np.full(len(history), -1)
    if known.any():
        stage[known] = pd.Index(stage_names).get_indexer(history["last_stage"][known].astype(str).str.strip())
    if (known & (stage < 0)).any():  # validation refuses unknown stages; a table built by hand may not be validated
        raise ValueError(f"history has last_stage values outside simulation.stages {list(stage_names)}")
    account = accounts.reindex(history["account_id"])
    closed = pd.to_datetime(history["closed"])
    created = pd.to_datetime(history["created"])
    return pd.DataFrame({
        "account_id": history["account_id"].to_numpy(dtype=object),
        "segment": account["segment"].to_numpy(dtype=object),
        "process": account["buying_process"].to_numpy(dtype=object),
        "amount": history["amount"].to_numpy(dtype=float),
        "created": created.to_numpy(),
        "closed": closed.to_numpy(),
        "won": history["won"].to_numpy(dtype=bool),
        "stage": stage,
        "quarter": closed.dt.year.to_numpy() * 4 + (closed.dt.month.to_numpy() - 1) // 3,
        "days": (closed - created).dt.days.to_numpy(dtype=float) + HALF_DAY,
    })


def _grouped(success: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Successes and trials per group (groups with at least one trial)."""
    _, index = np.unique(group, return_inverse=True)
    trials = np.bincount(index)
    return np.bincount(index, weights=success.astype(float)), trials.astype(float)


def _proportion(success: np.ndarray, group: np.ndarray) -> Estimate:
    """A proportion with a quasi-binomial standard error and a Wilson interval.

    The dispersion is the Pearson χ² of the per-group (quarter) rates over its degrees of freedom, at
    least 1: when quarters disagree more than independent deals would, the error widens to match.
    """
    n = len(success)
    if n == 0:
        return MISSING
    p = float(np.mean(success))
    dispersion = 1.0
    hits, trials = _grouped(success, group)
    if len(trials) >= MIN_QUARTERS and 0 < p < 1:
        chi2 = float(np.sum((hits - p * trials) ** 2 / (p * (1 - p) * trials)))
        dispersion = max(1.0, chi2 / (len(trials) - 1))
    effective = n / dispersion
    low, high = _wilson(p, effective)
    return Estimate(p, math.sqrt(dispersion * p * (1 - p) / n), low, high, n)


def _wilson(p: float, n: float) -> tuple[float, float]:
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _lognormal(logs: np.ndarray | pd.Series) -> tuple[Estimate, Estimate]:
    """Median exp(μ) and σ of a lognormal fitted to log values, with standard errors and intervals."""
    logs = np.asarray(logs, dtype=float)
    n = len(logs)
    if n < 2:
        return Estimate(math.exp(logs[0]) if n else math.nan, n=n), Estimate(math.nan, n=n)
    mu, sigma = float(logs.mean()), float(logs.std(ddof=1))
    se_mu = sigma / math.sqrt(n)
    median = Estimate(math.exp(mu), math.exp(mu) * se_mu, math.exp(mu - Z95 * se_mu), math.exp(mu + Z95 * se_mu), n)
    return median, _sigma_estimate(sigma, n - 1, n)


def _deal_sizes(amounts: np.ndarray) -> tuple[Estimate, Estimate]:
    """Median and σ of a lognormal with the amounts' mean and σ of their logs (see the module docstring)."""
    median, sigma = _lognormal(np.log(amounts))
    n = len(amounts)
    if n < 2 or not math.isfinite(sigma.estimate):
        return median, sigma
    mean = float(amounts.mean())
    shrink = math.exp(-sigma.estimate**2 / 2)
    se = float(amounts.std(ddof=1)) / math.sqrt(n) * shrink
    value = mean * shrink
    return Estimate(value, se, max(value - Z95 * se, 0.0), value + Z95 * se, n), sigma


def _sigma_estimate(sigma: float, freedom: int, n: int) -> Estimate:
    """A standard deviation with the χ² interval of `freedom` degrees of freedom."""
    if freedom < 1:
        return Estimate(sigma, n=n)
    low = sigma * math.sqrt(freedom / stats.chi2.ppf(0.975, freedom))
    high = sigma * math.sqrt(freedom / stats.chi2.ppf(0.025, freedom))
    return Estimate(sigma, sigma / math.sqrt(2 * freedom), low, high, n)


def _median(values: np.ndarray) -> Estimate:
    """The sample median with a distribution-free (order statistic) 95% interval."""
    n = len(values)
    if n == 0:
        return MISSING
    ordered = np.sort(values)
    low_rank = max(0, math.floor(n / 2 - Z95 * math.sqrt(n) / 2))
    high_rank = min(n - 1, math.ceil(n / 2 + Z95 * math.sqrt(n) / 2))
    low, high = float(ordered[low_rank]), float(ordered[high_rank])
    return Estimate(float(np.median(values)), (high - low) / (2 * Z95), low, high, n)


# ----------------------------------------------------------------------------------------------
# Stage durations
# ----------------------------------------------------------------------------------------------


def _stage_durations(deals: pd.DataFrame, sim: Simulation, notes: list[str]) -> tuple[
        tuple[Estimate, ...], dict[str, Estimate], dict[str, Estimate], Estimate]:
    """Per-stage median days, cycle multipliers by segment and buying process, σ of a stage's log days.

    The model is the schema's: a deal's time in stage k is median_days[k] × cycle_multiplier[segment]
    × process_cycle_multiplier[process] × a lognormal of σ `duration_sigma`, so the mean cycle of a
    deal that closes at stage k is exp(σ²/2) × multipliers × Σ_{j ≤ k} median_days[j]. A gamma GLM with
    a log link fits log mean cycle = segment + process + one level per closing stage; differences of
    the stage levels give the per-stage days. Multipliers are relative to a reference segment and
    process (the level whose current multiplier is 1, else the commonest), which keep their current
    multiplier. σ is the pooled within-cell σ of the log days of deals lost at the first stage.
    """
    stages = len(sim.stages)
    closing = np.where(deals["won"].to_numpy(), stages - 1, deals["stage"].to_numpy())
    segment = deals["segment"].to_numpy()
    process = deals["process"].to_numpy()
    days = deals["days"].to_numpy()
    seg_levels = _levels(segment, sim.cycle_multiplier)
    proc_levels = _levels(process, sim.process_cycle_multiplier)
    present = np.unique(closing)
    missing_days = tuple(MISSING for _ in range(stages))
    if len(present) < stages:
        absent = [sim.stages[k].name for k in range(stages) if k not in present]
        notes.append(f"no closed deal ends at stage(s) {', '.join(absent)}: per-stage durations are not "
                     "identified")

    first = closing == 0
    cells = pd.Series(list(zip(segment[first], process[first], strict=True)), dtype=object)
    log_days = pd.Series(np.log(days[first]))
    residual = log_days - log_days.groupby(cells.to_numpy()).transform("mean")
    freedom = int(first.sum()) - int(cells.nunique())
    if freedom >= 1:
        sigma = _sigma_estimate(float(np.sqrt(np.sum(residual**2) / freedom)), freedom, int(first.sum()))
    else:
        sigma = Estimate(math.nan, n=int(first.sum()))

    columns = [closing == k for k in range(stages)]
    columns += [segment == s for s in seg_levels[1:]]
    columns += [process == p for p in proc_levels[1:]]
    design = np.column_stack(columns).astype(float)
    keep = design.any(axis=0)
    if len(days) <= design.shape[1] or not keep[:stages].all():
        return missing_days, {}, {}, sigma
    beta, cov = _gamma_log_fit(design[:, keep], days)
    full_beta = np.full(design.shape[1], np.nan)
    full_beta[keep] = beta
    full_cov = np.full((design.shape[1], design.shape[1]), np.nan)
    full_cov[np.ix_(keep, keep)] = cov

    seg_ref = sim.cycle_multiplier.get(seg_levels[0], 1.0)
    proc_ref = sim.process_cycle_multiplier.get(proc_levels[0], 1.0)
    counts_seg = pd.Series(segment).value_counts()
    counts_proc = pd.Series(process).value_counts()
    seg_mult = {seg_levels[0]: Estimate(seg_ref, 0.0, seg_ref, seg_ref, int(counts_seg[seg_levels[0]]))}
    for i, s in enumerate(seg_levels[1:]):
        seg_mult[s] = _exp_estimate(full_beta[stages + i], full_cov[stages + i, stages + i], seg_ref,
                                    int(counts_seg[s]))
    offset = stages + len(seg_levels) - 1
    proc_mult = {proc_levels[0]: Estimate(proc_ref, 0.0, proc_ref, proc_ref, int(counts_proc[proc_levels[0]]))}
    for i, p in enumerate(proc_levels[1:]):
        proc_mult[p] = _exp_estimate(full_beta[offset + i], full_cov[offset + i, offset + i], proc_ref,
                                     int(counts_proc[p]))

    # Cumulative mean days of the reference cell, then one stage's median days at multipliers 1.
    scale = math.exp(-sigma.estimate**2 / 2) / (seg_ref * proc_ref) if math.isfinite(sigma.estimate) else math.nan
    level = np.exp(full_beta[:stages])
    stage_days = []
    for k in range(stages):
        gradient = np.zeros(stages)
        gradient[k] = level[k]
        previous = 0.0
        if k > 0:
            gradient[k - 1] = -level[k - 1]
            previous = level[k - 1]
        variance = float(gradient @ full_cov[:stages, :stages] @ gradient)
        mean_days = (level[k] - previous) * scale
        se = math.sqrt(max(variance, 0.0)) * scale
        stage_days.append(Estimate(mean_days, se, mean_days - Z95 * se, mean_days + Z95 * se,
                                   int((closing == k).sum())))
        if mean_days <= 0:
            notes.append(f"deals closing at stage '{sim.stages[k].name}' took no longer than those closing "
                         "a stage earlier: its duration is not identified (lost deals linger?)")
    return tuple(stage_days), seg_mult, proc_mult, sigma


def _levels(values: np.ndarray, multipliers: Mapping[str, float]) -> list[str]:
    """Levels present, the reference first: the commonest level whose multiplier is 1, else the commonest."""
    counts = pd.Series(values).value_counts()
    unit = [level for level in counts.index if multipliers.get(level, 1.0) == 1.0]
    reference = unit[0] if unit else counts.index[0]
    return [reference, *sorted(level for level in counts.index if level != reference)]


def _exp_estimate(beta: float, variance: float, scale: float, n: int) -> Estimate:
    se = math.sqrt(max(variance, 0.0))
    value = scale * math.exp(beta)
    return Estimate(value, value * se, scale * math.exp(beta - Z95 * se), scale * math.exp(beta + Z95 * se), n)


def _gamma_log_fit(design: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A gamma GLM with a log link by iteratively reweighted least squares (the weights are 1).

    Returns the coefficients and their covariance: dispersion × (XᵀX)⁻¹, the dispersion being the
    Pearson χ² of the relative residuals over the residual degrees of freedom.
    """
    beta = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
    for _ in range(iterations):
        eta = design @ beta
        mu = np.exp(eta)
        updated = np.linalg.lstsq(design, eta + (y - mu) / mu, rcond=None)[0]
        converged = np.max(np.abs(updated - beta)) < 1e-10
        beta = updated
        if converged:
            break
    mu = np.exp(design @ beta)
    dispersion = float(np.sum(((y - mu) / mu) ** 2) / max(len(y) - design.shape[1], 1))
    return beta, dispersion * np.linalg.pinv(design.T @ design)


# ----------------------------------------------------------------------------------------------
# Arrivals and seasonality
# ----------------------------------------------------------------------------------------------


def _arrivals(scenario: Scenario, deals: pd.DataFrame, accounts: pd.DataFrame, notes: list[str]) -> tuple[
        Estimate, dict[str, Estimate], tuple[dt.date, dt.date] | None, tuple[Estimate, ...]]:
    """Opportunities created per unit of potential and year, and their seasonality by calendar month.

    Counted over a window in which every opportunity created is known: from the first month start on
    or after the earliest close in the history (a deal created since then has closed since then, so it
    is in an export by close date, or it is still open) to the period start, taking the pipeline's
    open deals with the closed ones. Without a pipeline table the window ends, instead, at the last
    close less the 95th percentile of cycle lengths, and misses the slowest few percent of the deals
    created near its end.
    """
    first_close = pd.Timestamp(deals["closed"].min())
    start = first_close if first_close.day == 1 else first_close + pd.offsets.MonthBegin(1)
    created = [pd.DatetimeIndex(deals["created"])]
    created_accounts = [deals["account_id"].to_numpy(dtype=object)]
    pipeline = scenario.pipeline
    if pipeline is not None and not pipeline.empty:
        end = pd.Timestamp(scenario.period.start)
        created.append(pd.DatetimeIndex(pipeline["created"]))
        created_accounts.append(pipeline["account_id"].to_numpy(dtype=object))
    else:
        slowest = math.ceil(float(np.quantile(deals["days"], 0.95)))
        end = pd.Timestamp(deals["closed"].max()) + pd.Timedelta(days=1 - slowest)
        notes.append("no pipeline table: arrivals are counted up to the last close less the 95th percentile "
                     "cycle, and miss the slowest deals created near that date (a few percent)")
    segments = sorted(deals["segment"].unique())
    missing = (MISSING, dict.fromkeys(segments, MISSING), None, tuple(MISSING for _ in range(12)))
    if end <= start:
        notes.append("the history is too short for a window in which every created deal is known: no arrival "
                     "rate or seasonality")
        return missing
    when = pd.DatetimeIndex(np.concatenate([c.to_numpy() for c in created]))
    inside = (when >= start) & (when < end)
    when = when[inside]
    account_of = np.concatenate(created_accounts)[inside]
    years = (end - start).days / DAYS_PER_YEAR

    potential = accounts["potential"].astype(float)
    counts = pd.Series(account_of).value_counts().reindex(potential.index, fill_value=0).to_numpy(float)
    rate_all = _rate(counts, potential.to_numpy(), years)
    segment = accounts["segment"].to_numpy(dtype=object)
    by_segment = {s: _rate(counts[segment == s], potential.to_numpy()[segment == s], years)
                  for s in sorted(set(segment) | set(segments))}

    # Seasonality: opportunities per exposure day of each calendar month, normalised to mean 1.
    exposure = pd.date_range(start, end - pd.Timedelta(days=1), freq="D").month.value_counts()
    exposure = exposure.reindex(range(1, 13), fill_value=0).to_numpy(float)
    by_month = pd.Series(when.month).value_counts().reindex(range(1, 13), fill_value=0).to_numpy(float)
    if (exposure == 0).any():
        notes.append("the arrival window is shorter than a year: no seasonality")
        seasonality = missing[3]
    elif by_month.sum() == 0:
        notes.append("no opportunity was created in the arrival window: no seasonality")
        seasonality = missing[3]
    else:
        seasonality = _seasonality(by_month, exposure)
    return rate_all, by_segment, (start.date(), end.date()), seasonality


def _rate(counts: np.ndarray, potential: np.ndarray, years: float) -> Estimate:
    """Opportunities per unit of potential and year; quasi-Poisson error (dispersion across accounts)."""
    exposure = potential.sum() * years
    total = counts.sum()
    if exposure <= 0:
        return Estimate(math.nan, n=int(total))
    rate = float(total / exposure)
    expected = rate * potential * years
    # Pearson's χ² over the accounts expected to hold at least one deal: a tiny expectation (an account
    # of almost no potential) with a deal or two would swamp it and say nothing of the rate's error
    positive = expected >= 1.0
    dispersion = 1.0
    if positive.sum() >= 2 and total > 0:
        chi2 = float(np.sum((counts[positive] - expected[positive]) ** 2 / expected[positive]))
        dispersion = max(1.0, chi2 / (positive.sum() - 1))
    se = rate * math.sqrt(dispersion / total) if total > 0 else math.nan
    return Estimate(rate, se, rate - Z95 * se, rate + Z95 * se, int(total))


def _seasonality(counts: np.ndarray, exposure: np.ndarray) -> tuple[Estimate, ...]:
    """Monthly factors s_m = 12 r_m / Σ r, r_m = counts per exposure day; Poisson counts, delta method."""
    rate = counts / exposure
    total = rate.sum()
    factor = 12 * rate / total
    # ∂s_m/∂c_j = 12 (δ_mj / e_m) / R − 12 r_m / (R² e_j), with Var(c_j) = c_j.
    jacobian = 12 * (np.diag(1 / exposure) / total - np.outer(rate, 1 / exposure) / total**2)
    variance = (jacobian**2) @ counts
    return tuple(Estimate(float(f), float(math.sqrt(v)), float(f - Z95 * math.sqrt(v)),
                          float(f + Z95 * math.sqrt(v)), int(c))
                 for f, v, c in zip(factor, variance, counts, strict=True))


def _pipeline_yield(accounts: pd.DataFrame, arrival: Mapping[str, Estimate], win: Mapping[str, Estimate],
                    median: Mapping[str, Estimate], sigma: Mapping[str, Estimate]) -> Estimate:
    """Expected won revenue a year per unit of potential: Σ_s arrivals × potential × mean deal × win rate.

    The generator and the simulation set arrivals = potential × yield ÷ (mean deal × win rate); this
    inverts that, segment by segment, weighted by potential. Its error combines the parts' relative
    errors (taken as independent) on the log scale.
    """
    potential = accounts.groupby("segment")["potential"].sum().astype(float)
    value, variance, n = 0.0, 0.0, 0
    for s, rate in arrival.items():
        w = win.get(s, MISSING)
        if not math.isfinite(rate.estimate) or rate.n == 0 or not math.isfinite(w.estimate) or w.estimate == 0:
            continue
        m, sg = median.get(s, MISSING), sigma.get(s, MISSING)
        if not (math.isfinite(m.estimate) and math.isfinite(sg.estimate)):
            return Estimate(math.nan, n=n)
        mean_amount = m.estimate * math.exp(sg.estimate**2 / 2)
        term = rate.estimate * potential.get(s, 0.0) * mean_amount * w.estimate
        relative = ((rate.std_error / rate.estimate) ** 2 + (w.std_error / w.estimate) ** 2
                    + (m.std_error / m.estimate) ** 2 + (sg.estimate * sg.std_error) ** 2)
        value += term
        variance += term**2 * relative
        n += rate.n
    total = float(potential.sum())
    if total <= 0 or n == 0:
        return Estimate(math.nan, n=n)
    value, se = float(value / total), float(math.sqrt(variance) / total)
    return Estimate(value, se, value - Z95 * se, value + Z95 * se, n)


# ----------------------------------------------------------------------------------------------
# Market correlation
# ----------------------------------------------------------------------------------------------


def implied_correlation(successes: np.ndarray, trials: np.ndarray) -> Estimate:
    """ρ of a one-factor Gaussian copula from per-period success counts (method of moments).

    Period q's rate p_q = Φ((t − √ρ Z_q)/√(1 − ρ)) with t = Φ⁻¹(p) has variance Φ₂(t, t; ρ) − p².
    The between-period variance τ² of the true rates is estimated from the weighted spread of the
    observed rates less its binomial part (the one-way ANOVA estimator for binary data):
    τ² = (S − (Q − 1) p(1 − p)) / (N − Σ n_q² / N − (Q − 1)), S = Σ n_q (p̂_q − p̂)². ρ solves the
    variance equation and is clipped to [0, MAX_CORRELATION]. The interval maps a χ² interval
    (Q − 1 degrees of freedom) of the between-period mean square through the same equation; the
    standard error is the delta method's. NaN with fewer than MIN_QUARTERS periods.
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    used = trials > 0
    successes, trials = successes[used], trials[used]
    periods, total = len(trials), float(trials.sum())
    if periods < MIN_QUARTERS or total <= periods:
        return Estimate(math.nan, n=periods)
    p = float(successes.sum() / total)
    if not 0 < p < 1:
        return Estimate(0.0, n=periods)
    pq = p * (1 - p)
    spread = float(np.sum(trials * (successes / trials - p) ** 2))
    n0 = (total - float(np.sum(trials**2)) / total) / (periods - 1)  # effective trials per period
    if n0 <= 1:
        return Estimate(math.nan, n=periods)
    threshold = float(stats.norm.ppf(p))
    mean_square = spread / (periods - 1)

    def rho_of(ms: float) -> float:
        return correlation_for((ms - pq) / (n0 - 1), threshold)

    rho = rho_of(mean_square)
    freedom = periods - 1
    low = rho_of(mean_square * freedom / stats.chi2.ppf(0.975, freedom))
    high = rho_of(mean_square * freedom / stats.chi2.ppf(0.025, freedom))
    se_tau2 = mean_square * math.sqrt(2 / freedom) / (n0 - 1)
    se = se_tau2 / copula_density(min(rho, MAX_CORRELATION), threshold)
    return Estimate(rho, se, low, high, periods)


def calibrated_settings(scenario: Scenario) -> Simulation:
    """The simulation settings a run uses: the scenario's, with the values fitted from its history in
    place of those it leaves at their defaults (when `use_history` is on and there is a history)."""
    simulation = scenario.settings.simulation
    if not simulation.use_history or scenario.history is None or scenario.history.empty:
        return simulation
    return calibrate(scenario).apply(simulation)
