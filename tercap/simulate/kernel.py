"""The Monte Carlo kernel: a block of trials of a DealBook, vectorised over trials × deals.

Randomness comes in fixed blocks of BLOCK_TRIALS trials, block b drawing from PCG64DXSM generators
(numpy's recommended successor of PCG64, about 30% faster here) seeded from
`SeedSequence(seed).spawn(...)[b]`: a chunk is a run of whole blocks, so the result is bit-identical
whatever the chunk size or the number of workers.
Common random numbers: each part of the model draws from its own stream of the block (`Streams`), the
open deals in the pipeline's order and the reps' departures rep by rep, so two scenarios with the same
seed, period and pipeline see the same market, the same fate of every open deal and the same departures
of the reps they share, whatever their plans: differences between them are the plans', not noise.

Per trial and calendar quarter of the period: a market factor Z ~ N(0, 1), independent across quarters
(as calibration measures them). Where ρ was measured on few quarters, each trial also draws its ρ from
the book's equally likely levels (`copula.correlation_levels`), with thresholds set for each level.
An open deal meets the factor of the quarter it most likely closes in, a new deal that of the quarter it
closes in. An open deal is won when it passes each stage move left,
move j when √ρ·Z + √(1−ρ)·ε_j ≤ t_j (a one-factor Gaussian copula on every move, ε_j independent),
i.e. with probability p(Z) = Π_j Φ((t_j − √ρ·Z)/√(1−ρ)) given the market, the thresholds t_j set so
that p(Z) averages to the deal's win probability (`book.move_thresholds`); it counts when it also
closes inside the period.
New deals: won opportunities per (cell, close month) are Poisson with mean
Σ_created opportunities × the share of the book worked × P(close month | created) × p(Z), where p(Z)
is the win probability given the market (thinning a Poisson arrival process keeps it Poisson); each
brings a lognormal amount. Attrition: each rep leaves in a month with the monthly hazard; the book is
vacant for the backfill lag, then a hire ramps along the rep's segment curve (with workload coverage,
the segment's spare hours cover what the absence leaves: `book.Coverage`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from tercap.simulate.book import DealBook, win_given_market
from tercap.simulate.exact import RevenueDistribution, revenue_distribution

BLOCK_TRIALS = 256
MAX_CLASSES = 64  # open deals are sliced by class (stage × quarter) up to this many classes
EXACT_MAX_DEALS = 64  # independent open deals of a rep with at most this many: one exact draw per trial
EXACT_CELLS = 20_000  # cells of the revenue grid of such a rep (its deals' total amount ÷ this)


@dataclass(frozen=True, eq=False)
class BlockOutcome:
    """Closed revenue of a run of trials: per rep, and for the company per month."""

    rep_revenue: np.ndarray  # (trials × reps)
    company_monthly: np.ndarray  # (trials × months)
    departures: np.ndarray  # (trials,) reps that left during the period
    open_revenue: np.ndarray  # (trials,) of it from the open pipeline
    new_won: np.ndarray  # (trials,) new deals won and closed inside the period
    stage_won: np.ndarray  # (trials of block 0 × stages) open deals won inside the period by their stage today


def block_seeds(seed: int, blocks: int) -> list[np.random.SeedSequence]:
    """One SeedSequence per block of trials."""
    return np.random.SeedSequence(seed).spawn(blocks)


class Streams(NamedTuple):
    """A block's random streams, one per part of the model."""

    market: np.random.Generator  # market factors, the fitted values' uncertainty, drawn ρ
    open_deals: np.random.Generator  # fate and amount change of each open deal
    attrition: np.random.Generator  # departures, rep by rep
    new_deals: np.random.Generator  # deals created during the period

    @classmethod
    def of(cls, seed: np.random.SeedSequence) -> Streams:
        """The block's streams: children of its SeedSequence, derived without spawning (spawning would
        change `seed`, and the same block must give the same streams however often it is drawn)."""
        return cls(*(np.random.Generator(np.random.PCG64DXSM(
            np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, part)))) for part in range(4)))


def simulate_blocks(book: DealBook, seeds: list[np.random.SeedSequence], trials: int, first_block: int
                    ) -> BlockOutcome:
    """Simulate the blocks `first_block`, … covering `trials` trials (only the last may be partial)."""
    outcomes = []
    done = 0
    block = first_block
    prepared = _prepare(book)
    # one BLAS thread: a threaded matrix product sums in an order that depends on the threads available
    with threadpool_limits(limits=1, user_api="blas"):
        while done < trials:
            size = min(BLOCK_TRIALS, trials - done)
            outcomes.append(_simulate_block(book, prepared, Streams.of(seeds[block]), size, by_stage=block == 0))
            done += size
            block += 1
    return BlockOutcome(*(np.concatenate([getattr(o, name) for o in outcomes])
                          for name in ("rep_revenue", "company_monthly", "departures", "open_revenue", "new_won",
                                       "stage_won")))


def _simulate_block(book: DealBook, prepared: _Prepared, streams: Streams, trials: int,
                    by_stage: bool = False) -> BlockOutcome:
    """One block of trials; `by_stage` (the first block of a run only: the result must not depend on
    the chunks) also counts the open deals won by their stage today."""
    months, reps = book.months, book.num_reps
    stages = book.stages
    stage_won = np.zeros((trials if by_stage else 0, stages), dtype=np.int64)
    rng = streams.market
    market = rng.standard_normal((trials, int(book.month_quarter.max(initial=0)) + 1))  # a factor per quarter
    # the fitted values' own uncertainty, one draw per trial (drawn only where there is any)
    uncertain = prepared.win_shift_sigma > 0 or prepared.yield_sigma > 0
    parameters = rng.standard_normal((trials, 2)) if uncertain else np.zeros((trials, 2))
    level = None  # per trial, its value of ρ among the book's levels (None: ρ known)
    rho: np.ndarray | float = book.correlation
    if len(book.correlation_levels) > 1:
        level = rng.integers(len(book.correlation_levels), size=trials)
        rho = np.asarray(book.correlation_levels)[level]
    rep_revenue = np.zeros((trials, reps))
    monthly = np.zeros((trials, months))

    sampled = prepared.sampled
    if sampled.num_deals:
        rep_part, month_part, won = _open_deals(sampled, prepared, streams.open_deals, market,
                                                prepared.win_shift_sigma * parameters[:, 0], level, rho, by_stage)
        rep_revenue += rep_part
        monthly += month_part
        if won is not None:
            stage_won += won
    for exact in prepared.exact:  # reps whose few independent open deals are drawn from their exact distribution
        revenue = exact.distribution.sample(streams.open_deals, trials)
        rep_revenue[:, exact.rep] += revenue
        monthly += revenue[:, None] * exact.month_share[None, :]

    open_revenue = rep_revenue.sum(axis=1)
    departures = np.zeros(trials, dtype=np.int64)
    new_won = np.zeros(trials, dtype=np.int64)
    if len(book.cell_rep):
        output = book.productivity[None, :, :] * np.ones((trials, 1, 1))
        if book.monthly_hazard > 0:
            output, departures = _attrition(book, streams.attrition, trials)
        # a new deal meets the market of the quarter it closes in
        thresholds = prepared.new_deal_thresholds
        if level is not None:  # a column of thresholds per trial, by its ρ
            thresholds, rho = thresholds[:, level, None], rho[:, None]
        win = win_given_market(thresholds, market, rho)[:, book.month_quarter]
        sigma = prepared.yield_sigma
        win *= np.exp(sigma * parameters[:, 1:2] - sigma**2 / 2)  # × the trial's yield factor (mean 1)
        # expected wins per (trial, cell, close month)
        created = output[:, book.cell_rep, :] * book.cell_opportunities[None, :, :]
        expected = np.einsum("tcm,cmk->tck", created, book.cell_close_month) * win[:, None, :]
        rng = streams.new_deals
        counts = rng.poisson(expected)
        new_won = counts.sum(axis=(1, 2))
        trial_of, cell_of, month = np.nonzero(counts)
        repeat = counts[trial_of, cell_of, month]
        cells = np.repeat(cell_of, repeat)
        amounts = book.cell_median_amount[cells] * np.exp(book.cell_sigma[cells] * rng.standard_normal(cells.size))
        trial_of = np.repeat(trial_of, repeat)
        rep_revenue += _sum_into(trial_of, book.cell_rep[cells], amounts, (trials, reps))
        monthly += _sum_into(trial_of, np.repeat(month, repeat), amounts, (trials, months))
    return BlockOutcome(rep_revenue, monthly, departures, open_revenue, new_won, stage_won)


def _open_deals(book: DealBook, prepared: _Prepared, rng: np.random.Generator, market: np.ndarray,
                shift: np.ndarray, level: np.ndarray | None, rho: np.ndarray | float, by_stage: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Revenue of the open deals that are won and close inside the period, per (trial, rep) and
    (trial, month).

    A deal counts when U < p(Z)·q, U uniform, p(Z) its win probability given the market, q its
    probability of closing inside the period: deals are sliced by class (stage × quarter) so that p(Z)
    is one column per class, never a gather; the draws become the counted amounts in place, summed per
    rep in one sparse product. The month a counted deal lands in is spread over the
    months by its close-month probabilities (yearly totals per trial are exact draws; monthly figures
    are their expectation over close dates). A counted deal's amount is the CRM's × the mean ratio,
    with a lognormal change per deal and trial where `amount_sigma` > 0."""
    trials = market.shape[0]
    class_thresholds, class_of, amount = prepared.class_thresholds, book.deal_class, prepared.amount
    order, bounds = prepared.order, prepared.bounds
    classes = len(class_thresholds)
    win = np.column_stack([win_given_market(t if level is None else t[:, level], market[:, q], rho, shift)
                           for t, q in zip(class_thresholds, book.class_quarter, strict=True)]).astype(np.float32)
    draws = rng.random((trials, book.num_deals), dtype=np.float32)
    draws *= prepared.inverse_inside[None, :]  # U / q < p(Z)  ⇔  U < p(Z)·q
    if classes > MAX_CLASSES:  # many classes: one column per deal
        np.multiply(draws < win[:, class_of], amount[None, :], out=draws)
    else:  # a column of p(Z) per class, never a gather; the draws become the counted amounts in place
        for k in range(classes):
            lo, hi = bounds[k], bounds[k + 1]
            if lo == hi:
                continue
            deals = order[lo:hi]
            if deals[-1] - deals[0] == hi - lo - 1 and bool(np.all(np.diff(deals) == 1)):
                columns = slice(deals[0], deals[-1] + 1)
                np.multiply(draws[:, columns] < win[:, k: k + 1], amount[None, columns], out=draws[:, columns])
            else:
                draws[:, deals] = (draws[:, deals] < win[:, k: k + 1]) * amount[None, deals]
    counted = draws
    if book.amount_sigma > 0:
        counted *= _amount_changes(rng, book.amount_sigma, counted.shape)
    rep_revenue = np.asarray(prepared.rep_indicator.T @ counted.T, dtype=float).T  # sums per rep: one sparse pass
    won = None
    if by_stage:
        stage = book.deal_stage
        won = np.column_stack([np.count_nonzero(counted[:, stage == s], axis=1)
                               for s in range(book.stages)])
    return rep_revenue, (counted @ prepared.month_share).astype(float), won


class _ExactRep(NamedTuple):
    """A rep's open deals as one exact distribution: independent deals, few of them."""

    rep: int
    distribution: RevenueDistribution
    month_share: np.ndarray  # the expected share of that revenue in each month of the period


class _Prepared(NamedTuple):
    """What every block of a book needs, computed once per call."""

    sampled: DealBook  # the book without the open deals of the reps in `exact`
    exact: tuple[_ExactRep, ...]
    class_thresholds: tuple[np.ndarray, ...]  # per class: (moves,), or (moves × levels of ρ)
    new_deal_thresholds: np.ndarray
    win_shift_sigma: float  # per-trial shift of the open deals' thresholds: the win rate's own uncertainty
    yield_sigma: float  # σ of the log of the per-trial factor on new deals: the yield's own uncertainty
    rep_indicator: sp.csr_matrix  # (deals × reps) 1 where the deal is the rep's
    order: np.ndarray  # deals by class, in the book's order within a class (the order the draws come in)
    bounds: np.ndarray  # class k is order[bounds[k]:bounds[k + 1]]
    amount: np.ndarray  # float32: the CRM amount × the mean ratio ÷ the mean of the lognormal change
    inverse_inside: np.ndarray  # float32: 1 ÷ P(closing inside the period)
    month_share: np.ndarray  # float32 (deals × months): the close month, given a close inside the period


def _prepare(book: DealBook) -> _Prepared:
    exact, book = _exact_reps(book)
    deals, months = book.num_deals, book.months
    order = np.argsort(book.deal_class, kind="stable")
    inside = 1.0 - book.deal_close_month[:, -1]
    with np.errstate(divide="ignore"):
        inverse_inside = (1.0 / inside).astype(np.float32)
    return _Prepared(
        book, exact, *book.thresholds(), *book.parameter_sigmas(),
        rep_indicator=sp.csr_matrix((np.ones(deals, dtype=np.float32), (np.arange(deals), book.deal_rep)),
                                    shape=(deals, book.num_reps)),
        order=order,
        bounds=np.searchsorted(book.deal_class[order], np.arange(len(book.class_conversions) + 1)),
        amount=(book.deal_amount * book.amount_ratio * np.exp(-book.amount_sigma**2 / 2)).astype(np.float32),
        inverse_inside=inverse_inside,
        month_share=(book.deal_close_month[:, :months] / np.maximum(inside, 1e-300)[:, None]).astype(np.float32))


def _exact_reps(book: DealBook) -> tuple[tuple[_ExactRep, ...], DealBook]:
    """Where a book's open deals are independent (no market factor, no drawn win rate, fixed amounts),
    the reps with at most EXACT_MAX_DEALS of them, each as its exact revenue distribution (dynamic
    programme on the grid of `_revenue_grid`: an outcome is off by at most half a cell per deal), and the
    book of the other deals, which is sampled."""
    independent = (book.correlation == 0 and not any(book.correlation_levels) and book.win_rate_std_error == 0
                   and book.amount_sigma == 0)
    if not independent or not book.num_deals:
        return (), book
    counts = np.bincount(book.deal_rep, minlength=book.num_reps)
    few = np.flatnonzero((counts > 0) & (counts <= EXACT_MAX_DEALS))
    if few.size == 0:
        return (), book
    win = np.array([np.prod(c) for c in book.class_conversions])[book.deal_class]
    inside = 1.0 - book.deal_close_month[:, -1]
    counted = win * inside  # P(won and closed inside the period)
    amount = book.deal_amount * book.amount_ratio
    share = book.deal_close_month[:, :book.months] / np.maximum(inside, 1e-300)[:, None]
    exact = []
    for rep in few.tolist():
        deals = np.flatnonzero(book.deal_rep == rep)
        grid = _revenue_grid(amount[deals])
        expected = counted[deals] * amount[deals]
        month_share = expected @ share[deals] / max(float(expected.sum()), 1e-300)
        exact.append(_ExactRep(rep, revenue_distribution(counted[deals], amount[deals], grid), month_share))
    kept = ~np.isin(book.deal_rep, few)
    by_age = {} if book.open_deal_stage is None else {
        "open_deal_stage": book.open_deal_stage[kept], "open_deal_win": book.open_deal_win[kept]}
    sampled = dataclasses.replace(book, **by_age, deal_rep=book.deal_rep[kept], deal_class=book.deal_class[kept],
                                  deal_amount=book.deal_amount[kept], deal_close_month=book.deal_close_month[kept])
    return tuple(exact), sampled


def _revenue_grid(amount: np.ndarray) -> float:
    """The grid of a rep's exact distribution: the amounts' greatest common divisor when they are whole
    and it keeps the support within EXACT_CELLS cells (no rounding at all), else a whole unit that does."""
    total = float(amount.sum())
    if np.all(amount == np.rint(amount)) and total < 2**53:
        unit = int(np.gcd.reduce(np.rint(amount).astype(np.int64)))
        if unit > 0 and total / unit <= EXACT_CELLS:
            return float(unit)
    return float(max(np.ceil(total / EXACT_CELLS), 1.0))


def _amount_changes(rng: np.random.Generator, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """exp(σ·Z) per deal and trial: with the exp(−σ²/2) already in the amounts, a ratio of mean 1."""
    return np.exp(sigma * rng.standard_normal(shape, dtype=np.float32))


def _sum_into(row: np.ndarray, column: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (rows × columns) array of the sums of `values` at (row, column)."""
    return np.bincount(row * shape[1] + column, values, minlength=shape[0] * shape[1]).reshape(shape)


def _attrition(book: DealBook, rng: np.random.Generator, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """(trials × reps × months) share of each book worked after departures, and the departures per trial.

    A rep who leaves gives nothing while the book is vacant (the backfill lag), then a backfill hire
    ramps along the rep's segment curve. With workload coverage that is counted in hours, the segment's
    spare hours covering what absence leaves; without it, the book's output is the rep's productivity."""
    reps, months = book.num_reps, book.months
    # drawn rep by rep (reps × trials), so a rep's draws do not depend on how many reps follow it
    leaves = 1 - (1 - book.monthly_hazard) ** months > rng.random((reps, trials)).T
    # the month of leaving, given that the rep leaves within the period (truncated geometric)
    u = rng.random((reps, trials)).T
    q = 1 - book.monthly_hazard
    month_left = np.floor(np.log(1 - u * (1 - q**months)) / np.log(q)).astype(np.int64)
    month_left = np.where(leaves, np.minimum(month_left, months - 1), months)
    since = np.arange(months)[None, None, :] - month_left[:, :, None]
    hired = since - book.backfill_months  # months since the backfill hire started
    ramp = np.take_along_axis(np.broadcast_to(book.ramp_curve[None, :, :], (trials, reps, months)),
                              np.clip(hired, 0, months - 1), axis=2)
    coverage = book.coverage
    if coverage is None:
        factor = np.where(since < 0, 1.0, np.where(hired < 0, 0.0, ramp))
        return book.productivity[None, :, :] * factor, leaves.sum(axis=1)
    backfill = np.where(coverage.planned[None, :, :] > 0, coverage.full[None, :, None] * ramp, 0.0)
    available = np.where(since < 0, coverage.planned[None, :, :], np.where(hired < 0, 0.0, backfill))
    return coverage.worked_share(available), leaves.sum(axis=1)
