"""The deal book of a plan: open deals and the rates of new ones, as arrays the kernel samples.

Open deals (the scenario's `pipeline` table) follow their account to the rep the plan gives it. A deal
in stage k closes won with the product of the conversions from k on (on average over the market: the
market factor of the calendar quarter it most likely closes in acts on each stage move left, see
`move_thresholds`); it closes after the median days
left in its stages (or its `expected_close`), lognormal around that with σ = `duration_sigma`, and
slips by one more last-stage duration with `slip_probability`. A won deal's amount is the CRM's times
a lognormal ratio of mean `amount_change_ratio` and log-σ `amount_change_sigma`.

New deals arrive on each rep's accounts at a rate set so that, at the scenario's win rate and deal
sizes, an account's annual potential × `pipeline_yield` would be won in a year; by calendar month with
`seasonality`, scaled by the share of the book that is worked that month. With
`simulation.workload_coverage` (the default) that share is counted in hours, as the assignment engine
counts them: a book needs its workload ÷ 12 hours a month; the rep gives it what the rep has (capacity
with ramp, start and end dates; after a departure nothing for the backfill lag, then the backfill
hire's ramping hours); a book whose rep is absent (not started, gone, vacant, backfill still ramping)
is covered by the spare hours of the segment's reps who have some, and a book above its rep's hours
stays part unworked. So a book above capacity leaves potential on the table, and spare hours in a
segment absorb vacancies: which is what hiring buys. Without it, a book's output is its rep's
productivity (ramp, start and end dates), whatever the book's size. Only deals that close
inside the period count: the book holds, per (rep, segment) cell, the expected number of opportunities
created in each month and closing in each month of the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from tercap.pipeline import DealModel
from tercap.pipeline.copula import correlation_levels
from tercap.pipeline.model import EVER_DAYS
from tercap.scenario import Scenario
from tercap.scenario.capacity import month_starts, monthly_capacity
from tercap.scenario.schema import Simulation

QUADRATURE_NODES = 80  # Gauss–Hermite nodes over the market factor
AGE_LEVELS = 40  # by age, open deals are classed by their P(won ever), rounded up to a 40th


@dataclass(frozen=True, eq=False)
class Coverage:
    """Hours per rep and month: what each book needs and what each rep has, and the reps' segments (the
    pools in which spare hours cover absent reps' books)."""

    needed: np.ndarray  # (reps,) hours a month the rep's book needs
    planned: np.ndarray  # (reps × months) hours the rep has (ramp, start and end dates)
    full: np.ndarray  # (reps,) hours a month of a ramped rep: a backfill hire has full × ramp
    segment: np.ndarray  # (reps,) pool index

    def worked_share(self, available: np.ndarray) -> np.ndarray:
        """(trials × reps × months) share of each book worked, given the hours each rep has in each trial."""
        needed = self.needed[None, :, None]
        worked = np.minimum(needed, available)
        spare = available - worked
        # what absence leaves unworked (not started, gone, vacant, backfill ramping): the pool covers it;
        # a book above its present rep's planned hours stays part unworked
        absent = np.maximum(self.planned[None, :, :] - available, 0.0) + np.where(
            self.planned[None, :, :] > 0, 0.0, needed)
        open_hours = np.minimum(needed - worked, absent)
        pools = int(self.segment.max(initial=-1)) + 1
        if pools and open_hours.any():
            spare_by_pool = np.stack([spare[:, self.segment == k, :].sum(axis=1) for k in range(pools)], axis=1)
            open_by_pool = np.stack([open_hours[:, self.segment == k, :].sum(axis=1) for k in range(pools)], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                covered = np.where(open_by_pool > 0, np.minimum(1.0, spare_by_pool / open_by_pool), 1.0)
            worked = worked + open_hours * covered[:, self.segment, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(needed > 0, worked / needed, 0.0)


@dataclass(frozen=True, eq=False)
class DealBook:
    """What the kernel samples, for one scenario and one assignment."""

    rep_ids: np.ndarray
    months: int
    # open deals, sorted by class (the quarter they likely close in × the stage they are in), then in the
    # pipeline's order
    deal_rep: np.ndarray  # rep index
    deal_class: np.ndarray  # index into class_conversions and class_quarter
    class_conversions: tuple[np.ndarray, ...]  # per class, the conversions of the stage moves left
    class_quarter: np.ndarray  # per class, the quarter of the period whose market factor its deals meet
    month_quarter: np.ndarray  # per month of the period, its calendar quarter (0: the first one touched)
    deal_amount: np.ndarray
    deal_close_month: np.ndarray  # (deals × months + 1) probability of closing in each month, last: after
    # new deals: (rep, segment) cells
    cell_rep: np.ndarray
    cell_median_amount: np.ndarray
    cell_sigma: np.ndarray
    cell_opportunities: np.ndarray  # (cells × created month) expected opportunities at full productivity
    cell_close_month: np.ndarray  # (cells × created month × close month) probability, within the period
    productivity: np.ndarray  # (reps × months) share of a ramped rep's output (start, end, ramp)
    ramp_curve: np.ndarray  # (reps × months) that share k months after a backfill hire starts
    win_rate: float  # of a new opportunity
    new_deal_conversions: np.ndarray  # conversions of a new opportunity's stage moves
    amount_ratio: float  # mean final ÷ CRM amount of a won open deal
    amount_sigma: float  # σ of the log of that ratio
    win_rate_std_error: float  # of the fitted win rate: drawn per trial
    pipeline_yield: float
    yield_std_error: float  # of the fitted pipeline yield: drawn per trial
    correlation: float  # ρ of the one-factor Gaussian copula
    monthly_hazard: float  # probability a rep leaves in a given month
    backfill_months: int
    # equally likely values of ρ, one drawn per trial where ρ was measured on few quarters (empty: ρ known)
    correlation_levels: tuple[float, ...] = ()
    # workload coverage in hours (simulation.workload_coverage); None: output is productivity
    coverage: Coverage | None = None
    # open deals forecast by age (the deal model): each deal's stage today and its P(won ever); the
    # classes are then (quarter × win-probability level), not (quarter × stage)
    open_deal_stage: np.ndarray | None = None
    open_deal_win: np.ndarray | None = None
    stage_count: int = 0  # the scenario's stages (0: as many as new_deal_conversions)
    median_days_to_win: float | None = None  # of a new opportunity that is won, by the deal model

    @property
    def num_reps(self) -> int:
        return len(self.rep_ids)

    @property
    def num_deals(self) -> int:
        return len(self.deal_rep)

    @property
    def stages(self) -> int:
        """How many open stages the scenario has."""
        return self.stage_count or len(self.new_deal_conversions)

    @property
    def deal_stage(self) -> np.ndarray:
        """Per open deal, the index of the stage it is in today (by stage, its class is quarter × stages + stage)."""
        if self.open_deal_stage is not None:
            return self.open_deal_stage
        return self.deal_class % len(self.new_deal_conversions)

    @property
    def deal_win(self) -> np.ndarray:
        """Per open deal, its probability to be won, ever (on average over the market)."""
        if self.open_deal_win is not None:
            return self.open_deal_win
        win_from_stage = np.cumprod(self.new_deal_conversions[::-1])[::-1]
        return win_from_stage[self.deal_stage]

    def parameter_sigmas(self) -> tuple[float, float]:
        """σ of the per-trial shift of the open deals' latent thresholds that moves a new deal's win
        probability by `win_rate_std_error` (to first order), and σ of the log of the per-trial factor on
        new deals whose relative spread is that of `pipeline_yield`."""
        win_shift = 0.0
        if self.win_rate_std_error > 0:
            thresholds = move_thresholds(self.new_deal_conversions, self.correlation)
            nodes, weights = _market_quadrature()
            step = 1e-4
            slope = (weights @ win_given_market(thresholds, nodes, self.correlation, step)
                     - weights @ win_given_market(thresholds, nodes, self.correlation, -step)) / (2 * step)
            win_shift = float(self.win_rate_std_error / max(slope, 1e-12))
        relative = self.yield_std_error / self.pipeline_yield if self.pipeline_yield > 0 else 0.0
        return win_shift, float(np.sqrt(np.log1p(relative**2)))

    def thresholds(self) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Latent thresholds of the moves of each class and of a new deal: (moves,) at this book's ρ,
        or (moves × levels), a column per value of ρ in `correlation_levels`, when there are several."""
        if len(self.correlation_levels) > 1:
            def at_levels(conversions: np.ndarray) -> np.ndarray:
                return np.column_stack([move_thresholds(conversions, rho) for rho in self.correlation_levels])

            return tuple(at_levels(c) for c in self.class_conversions), at_levels(self.new_deal_conversions)
        rho = self.correlation
        return (tuple(move_thresholds(c, rho) for c in self.class_conversions),
                move_thresholds(self.new_deal_conversions, rho))


def cycle_factors(simulation: Simulation, segment: np.ndarray, process: np.ndarray) -> np.ndarray:
    """Per deal: how much longer than the stages' medians its cycle runs (segment × buying process)."""
    return (pd.Series(segment).map(simulation.cycle_multiplier).fillna(1.0).to_numpy(dtype=float)
            * pd.Series(process).map(simulation.process_cycle_multiplier).fillna(1.0).to_numpy(dtype=float))


def _lognormal_month_probabilities(median_days: np.ndarray, sigma: float, start_day: np.ndarray,
                                   month_edges: np.ndarray) -> np.ndarray:
    """P(the close falls in each month) for closes at start_day + lognormal(median_days, σ) days;
    the last column is the probability of closing after the period."""
    edges = month_edges[None, :] - start_day[:, None]  # days from the start to each month boundary
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(edges, 1e-9)) - np.log(median_days)[:, None]) / max(sigma, 1e-9)
    cdf = np.where(edges > 0, ndtr(z), 0.0)
    inside = np.diff(cdf, axis=1)
    return np.column_stack([inside, 1.0 - cdf[:, -1]])


def win_given_market(thresholds: np.ndarray, market: np.ndarray, rho: np.ndarray | float,
                     shift: np.ndarray | float = 0.0) -> np.ndarray:
    """P(a deal passes every move | market Z): Π_j Φ((t_j + shift − √ρ·Z) / √(1 − ρ)), one value per Z.

    `thresholds` runs over the moves first; each t_j, ρ and shift broadcast against `market`
    (e.g. a value per trial)."""
    scale = np.sqrt(1.0 - rho)
    result = np.ones_like(market, dtype=float)
    for threshold in thresholds:
        result *= ndtr((threshold + shift - np.sqrt(rho) * market) / scale)
    return result


def _market_quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes over a standard normal market factor, with weights that sum to 1."""
    nodes, weights = hermegauss(QUADRATURE_NODES)
    return nodes, weights / weights.sum()


def move_thresholds(conversion: np.ndarray, rho: float) -> np.ndarray:
    """Latent thresholds of the stage moves left, Φ⁻¹(conversion) + δ, with one shift δ such that the
    probability of passing them all, averaged over the market, is Π conversion: the moves share the
    market factor, so they pass together more often than independent ones, and δ takes that back.

    The conversions are pass rates of the deals that reached each stage (as calibration measures them),
    whose product is the win rate from the first of them: that rate is kept, and the market's swing
    acts on every move, not once per deal."""
    conversion = np.clip(np.asarray(conversion, dtype=float), 1e-12, 1 - 1e-12)
    base = ndtri(conversion)
    if rho <= 0 or conversion.size <= 1:
        return base
    target = float(np.prod(conversion))
    nodes, weights = _market_quadrature()

    def excess(shift: float) -> float:
        return float(weights @ win_given_market(base + shift, nodes, rho)) - target

    return base + brentq(excess, -12.0, 12.0, xtol=1e-12)


def build_book(scenario: Scenario, account_rep: pd.Series, account_workload: pd.Series | None = None,
               deal_model: DealModel | None = None) -> DealBook:
    """The deal book of `scenario` with accounts assigned as in `account_rep` (account_id → rep_id);
    `account_workload` (account_id → hours a year for its rep) defaults to the accounts' workload_hours.

    With a `deal_model` (`tercap.pipeline`), open deals win and close by their age, and new deals win and
    close as the model's new opportunities do (see `_open_deals_by_age`); else by their stage."""
    settings = scenario.settings
    sim = settings.simulation
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    rep_ids = reps["rep_id"].to_numpy(dtype=object)
    rep_index = pd.Index(rep_ids)
    months = settings.period.months
    starts = month_starts(settings)
    month_edges = ((starts - starts[0]) / pd.Timedelta(days=1)).to_numpy(dtype=float)  # days, months + 1

    accounts = scenario.accounts.set_index("account_id")
    rep_of_account = rep_index.get_indexer(account_rep.reindex(accounts.index).astype(object).fillna(""))
    segment = accounts["segment"].to_numpy(dtype=object)
    process = accounts["buying_process"].to_numpy(dtype=object)
    cycle_factor = cycle_factors(sim, segment, process)
    stage_days = np.array([s.median_days for s in sim.stages])
    conversion = np.array([s.conversion for s in sim.stages])
    days_from_stage = np.cumsum(stage_days[::-1])[::-1]  # median days left from the start of stage k
    win_from_stage = np.cumprod(conversion[::-1])[::-1]

    if deal_model is None:
        deal_rep, deal_stage, amount, close = _open_deals(scenario, accounts.index, rep_of_account, cycle_factor,
                                                          days_from_stage, stage_days, month_edges)
        levels, deal_level, deal_win = len(conversion), deal_stage, None
        level_conversions = [conversion[k:] for k in range(len(conversion))]
    else:
        deal_rep, deal_stage, deal_level, amount, close, deal_win = _open_deals_by_age(
            scenario, deal_model, accounts, rep_of_account, month_edges)
        levels = AGE_LEVELS
        level_conversions = [np.array([(k + 1) / AGE_LEVELS]) for k in range(AGE_LEVELS)]
    calendar_quarter = np.asarray((starts[:-1].year * 12 + starts[:-1].month - 1) // 3)
    month_quarter = calendar_quarter - calendar_quarter[0]
    quarters = int(month_quarter[-1]) + 1
    # an open deal meets the market of the quarter it most likely closes in (within the period)
    deal_quarter = month_quarter[np.argmax(close[:, :months], axis=1)] if len(close) else np.zeros(0, np.int64)
    deal_class = (deal_quarter * levels + deal_level).astype(np.int64)
    order = np.argsort(deal_class, kind="stable")  # by class, the pipeline's order within one (common draws)
    deal_rep, deal_class, amount, close = deal_rep[order], deal_class[order], amount[order], close[order]
    deal_stage = deal_stage[order]
    deal_win = None if deal_win is None else deal_win[order]
    hours = monthly_capacity(settings, reps)
    full_hours = reps["capacity_hours"].to_numpy(dtype=float)
    productivity = hours / np.maximum(full_hours[:, None], 1e-9)
    coverage = None
    if sim.workload_coverage:
        workload = accounts["workload_hours"] if account_workload is None else \
            account_workload.reindex(accounts.index).fillna(accounts["workload_hours"])
        assigned = rep_of_account >= 0
        needed = np.bincount(rep_of_account[assigned], workload.to_numpy(dtype=float)[assigned],
                             minlength=len(reps)) / 12
        coverage = Coverage(needed=needed, planned=hours, full=full_hours,
                            segment=pd.Index(sorted(set(reps["segment"]))).get_indexer(reps["segment"]))
        productivity = coverage.worked_share(hours[None, :, :])[0]
    new_win = float(win_from_stage[0]) if deal_model is None else deal_model.new_deal_win_rate
    # the arrivals of opportunities are set from pipeline_yield through the win rate that calibration
    # read it with: the stage model's, or by age the closed deals' share won (deal sizes alike)
    arrival_win = float(win_from_stage[0]) if deal_model is None else _closed_win_rate(scenario, new_win)
    cells = _new_deal_cells(scenario, accounts, rep_of_account, segment, cycle_factor, stage_days, arrival_win,
                            month_edges, deal_model)
    curves = [settings.capacity.ramp_curves[settings.capacity.ramp_name_for(s, "")] for s in reps["segment"]]
    ramp = np.array([[curve[min(k, len(curve) - 1)] for k in range(months)] for curve in curves]) if curves \
        else np.zeros((0, months))  # a backfill hire's productivity k months after starting
    hazard = 1.0 - (1.0 - settings.capacity.annual_attrition) ** (1 / 12)
    return DealBook(rep_ids=rep_ids, months=months, deal_rep=deal_rep, deal_class=deal_class,
                    class_conversions=tuple(c for _ in range(quarters) for c in level_conversions),
                    class_quarter=np.repeat(np.arange(quarters), levels), month_quarter=month_quarter.astype(np.int64),
                    new_deal_conversions=conversion if deal_model is None else np.array([new_win]),
                    deal_amount=amount, deal_close_month=close, cell_rep=cells[0], cell_median_amount=cells[1],
                    cell_sigma=cells[2], cell_opportunities=cells[3], cell_close_month=cells[4],
                    productivity=productivity, ramp_curve=ramp, win_rate=new_win,
                    amount_ratio=float(sim.amount_change_ratio), amount_sigma=float(sim.amount_change_sigma),
                    win_rate_std_error=float(sim.win_rate_std_error), pipeline_yield=float(sim.pipeline_yield),
                    yield_std_error=float(sim.pipeline_yield_std_error),
                    correlation=float(sim.market_correlation), monthly_hazard=float(hazard),
                    backfill_months=round(settings.capacity.backfill_lag_months),
                    correlation_levels=_drawn_correlations(sim, float(conversion[-1])), coverage=coverage,
                    open_deal_stage=None if deal_model is None else deal_stage.astype(np.int64),
                    open_deal_win=deal_win, stage_count=len(conversion),
                    median_days_to_win=None if deal_model is None else deal_model.summary()["median_days_to_win"])


def _drawn_correlations(sim: Simulation, last_conversion: float) -> tuple[float, ...]:
    """The equally likely values of ρ a trial draws from, where ρ was measured on few quarters (else none)."""
    levels = correlation_levels(sim.market_correlation, last_conversion, sim.market_correlation_quarters)
    return tuple(float(rho) for rho in levels) if len(levels) > 1 else ()


def _open_deals(scenario: Scenario, account_ids: pd.Index, rep_of_account: np.ndarray, cycle_factor: np.ndarray,
                days_from_stage: np.ndarray, stage_days: np.ndarray, month_edges: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sim = scenario.settings.simulation
    months = len(month_edges) - 1
    pipeline = scenario.pipeline
    if pipeline is None or pipeline.empty:
        return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, months + 1)))
    position = account_ids.get_indexer(pipeline["account_id"])
    rep = rep_of_account[position]
    stage = pd.Index(sim.stage_names).get_indexer(pipeline["stage"])
    keep = (rep >= 0) & (stage >= 0)
    position, rep, stage = position[keep], rep[keep], stage[keep]
    frame = pipeline[keep]
    period_start = pd.Timestamp(scenario.settings.period.start)
    median_left = days_from_stage[stage] * cycle_factor[position]
    expected = frame["expected_close"] if "expected_close" in frame else pd.Series(pd.NaT, index=frame.index)
    given = ((pd.to_datetime(expected) - period_start) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    median_left = np.where(np.isfinite(given) & (given > 0), given, median_left)
    sigma = sim.duration_sigma
    start = np.zeros(len(rep))
    on_time = _lognormal_month_probabilities(median_left, sigma, start, month_edges)
    slip_days = stage_days[-1] * cycle_factor[position]
    slipped = _lognormal_month_probabilities(median_left + slip_days, sigma, start, month_edges)
    close = (1 - sim.slip_probability) * on_time + sim.slip_probability * slipped
    return rep.astype(np.int64), stage.astype(np.int64), frame["amount"].to_numpy(dtype=float), close


def _closed_win_rate(scenario: Scenario, fallback: float) -> float:
    """Share of the history's closed deals that were won (`fallback` without any)."""
    history = scenario.history
    if history is None or history.empty:
        return fallback
    return float(history["won"].astype(bool).mean())


def _open_deals_by_age(scenario: Scenario, model: DealModel, accounts: pd.DataFrame, rep_of_account: np.ndarray,
                       month_edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Open deals as the deal model sees them at the period start: rep, stage today, win level, amount,
    close-month probabilities and P(won ever).

    A deal of age a (days since its creation) is won in month m of the period with
    q_m = (F(a + e_{m+1}) − F(a + e_m)) / S(a) and ever with p = (F(∞) − F(a)) / S(a) (`DealModel`). The
    kernel draws a win as U < p(Z)·q, p(Z) the class's win probability given the market: the class is
    the level ⌈p × AGE_LEVELS⌉ / AGE_LEVELS and q_m is divided by it, so that the deal counts in month m
    with exactly q_m on average over the market."""
    months = len(month_edges) - 1
    pipeline = scenario.pipeline
    empty = np.zeros(0, dtype=np.int64)
    if pipeline is None or pipeline.empty:
        return empty, empty, empty, np.zeros(0), np.zeros((0, months + 1)), np.zeros(0)
    position = accounts.index.get_indexer(pipeline["account_id"])
    rep = np.where(position >= 0, rep_of_account[np.maximum(position, 0)], -1)
    keep = rep >= 0
    frame = pipeline[keep]
    position, rep = position[keep], rep[keep]
    stage = pd.Index(scenario.settings.simulation.stage_names).get_indexer(frame["stage"])
    start = pd.Timestamp(scenario.settings.period.start)
    age = np.maximum(((start - pd.to_datetime(frame["created"])) / pd.Timedelta(days=1)).to_numpy(dtype=float), 0)
    age = np.floor(age).astype(np.int64)
    segment = accounts["segment"].to_numpy(dtype=object)[position]
    keys = model.key_of(segment)
    edges = np.round(month_edges).astype(np.int64)
    by_month = np.zeros((len(age), months))
    for key in np.unique(keys):
        rows = keys == key
        a = age[rows]
        survival, incidence = model.curves(key, int(a.max(initial=0)) + int(edges[-1]) + 1)
        alive = np.maximum(survival[a], 1e-300)[:, None]
        by_month[rows] = (incidence[a[:, None] + edges[None, 1:]] - incidence[a[:, None] + edges[None, :-1]]) / alive
    ever = model.win_probability(age, segment)
    by_month = np.clip(by_month, 0.0, 1.0)
    inside = by_month.sum(axis=1)
    ever = np.clip(np.maximum(ever, inside), 0.0, 1.0)
    level = np.clip(np.ceil(ever * AGE_LEVELS - 1e-9), 1, AGE_LEVELS).astype(np.int64)
    share = level / AGE_LEVELS
    close = np.column_stack([by_month / share[:, None], 1.0 - inside / share])
    return (rep.astype(np.int64), np.maximum(stage, 0).astype(np.int64), level - 1,
            frame["amount"].to_numpy(dtype=float), close, ever)


def _new_deal_cells(scenario: Scenario, accounts: pd.DataFrame, rep_of_account: np.ndarray, segment: np.ndarray,
                    cycle_factor: np.ndarray, stage_days: np.ndarray, win_rate: float, month_edges: np.ndarray,
                    deal_model: DealModel | None = None) -> tuple[np.ndarray, ...]:
    """Per (rep, segment): median amount, σ, expected opportunities per created month, close months (by
    the stage durations; with a deal model, by the model's days from creation to a win)."""
    settings = scenario.settings
    sim = settings.simulation
    months = settings.period.months
    share_of_year = 1 / 12
    assigned = rep_of_account >= 0
    segments = sorted(set(segment[assigned]))
    seg_code = pd.Index(segments).get_indexer(segment)
    key = rep_of_account * max(len(segments), 1) + seg_code
    cell_keys, cell_of = np.unique(key[assigned], return_inverse=True)
    cell_of = cell_of.ravel()
    cell_rep = cell_keys // max(len(segments), 1)
    cell_segment = np.array(segments, dtype=object)[cell_keys % max(len(segments), 1)]
    sizes = [sim.deal_sizes.get(s) for s in cell_segment]
    fallback = next(iter(sim.deal_sizes.values()))
    median = np.array([(d or fallback).median for d in sizes], dtype=float)
    sigma = np.array([(d or fallback).sigma for d in sizes], dtype=float)
    mean_amount = median * np.exp(sigma**2 / 2)

    seasonality = np.asarray(sim.seasonality, dtype=float)
    seasonality = seasonality / seasonality.mean()
    calendar_month = (pd.Timestamp(settings.period.start).month - 1 + np.arange(months)) % 12
    potential = accounts["potential"].to_numpy(dtype=float)[assigned]
    won_per_year = np.bincount(cell_of, potential * sim.pipeline_yield, minlength=len(cell_keys))
    opportunities_per_year = won_per_year / max(win_rate, 1e-12) / mean_amount
    opportunities = opportunities_per_year[:, None] * share_of_year * seasonality[calendar_month][None, :]

    # close-month probabilities per (cell, created month): the cell's workload-weighted cycle factor
    workload = accounts["workload_hours"].to_numpy(dtype=float)[assigned]
    weights = np.bincount(cell_of, workload, minlength=len(cell_keys))
    factor = np.bincount(cell_of, workload * cycle_factor[assigned], minlength=len(cell_keys)) / np.maximum(
        weights, 1e-12)
    factor = np.where(weights > 0, factor, 1.0)
    total_days = stage_days.sum() * factor
    mid_month = (month_edges[:-1] + month_edges[1:]) / 2
    close = np.zeros((len(cell_keys), months, months))
    if deal_model is not None:
        keys = deal_model.key_of(cell_segment)
        for key in np.unique(keys):
            _, incidence = deal_model.curves(key, EVER_DAYS + int(month_edges[-1]) + 1)
            won_by = incidence / max(float(incidence[-1]), 1e-12)  # days to a win, given won
            for created in range(months):
                since = np.clip(np.floor(month_edges - mid_month[created]).astype(np.int64), 0, len(won_by) - 1)
                close[keys == key, created, :] = np.diff(np.where(month_edges > mid_month[created], won_by[since], 0.0))
        return cell_rep.astype(np.int64), median, sigma, opportunities, close
    for created in range(months):
        probabilities = _lognormal_month_probabilities(total_days, sim.duration_sigma,
                                                       np.full(len(cell_keys), mid_month[created]), month_edges)
        close[:, created, :] = probabilities[:, :months]
    return cell_rep.astype(np.int64), median, sigma, opportunities, close
