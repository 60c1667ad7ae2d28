"""The Monte Carlo kernel: a block of trials of a DealBook, vectorised over trials × deals.

Randomness comes in fixed blocks of BLOCK_TRIALS trials, block b drawing from
`SeedSequence(seed).spawn(...)[b]`: a chunk is a run of whole blocks, so the result is bit-identical
whatever the chunk size or the number of workers.

Per trial: one market factor Z ~ N(0, 1). An open deal is won when √ρ·Z + √(1−ρ)·ε ≤ Φ⁻¹(p) (a
one-factor Gaussian copula: each deal keeps its win probability p, deals move together); it counts
when it also closes inside the period (its close month drawn from its close-month probabilities).
New deals: won opportunities per (cell, close month) are Poisson with mean
Σ_created opportunities × productivity × P(close month | created) × p(Z), where p(Z) is the win
probability given the market (thinning a Poisson arrival process keeps it Poisson); each brings a
lognormal amount. Attrition: each rep leaves in a month with the monthly hazard; the book is vacant
for the backfill lag, then a hire ramps along the rep's segment curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from tercap.simulate.book import DealBook

BLOCK_TRIALS = 256


@dataclass(frozen=True, eq=False)
class BlockOutcome:
    """Closed revenue of a run of trials: per rep, and for the company per month."""

    rep_revenue: np.ndarray  # (trials × reps)
    company_monthly: np.ndarray  # (trials × months)
    departures: np.ndarray  # (trials,) reps that left during the period


def block_seeds(seed: int, blocks: int) -> list[np.random.SeedSequence]:
    """One SeedSequence per block of trials."""
    return np.random.SeedSequence(seed).spawn(blocks)


def simulate_blocks(book: DealBook, seeds: list[np.random.SeedSequence], trials: int, first_block: int
                    ) -> BlockOutcome:
    """Simulate the blocks `first_block`, … covering `trials` trials (only the last may be partial)."""
    outcomes = []
    done = 0
    block = first_block
    while done < trials:
        size = min(BLOCK_TRIALS, trials - done)
        outcomes.append(_simulate_block(book, np.random.default_rng(seeds[block]), size))
        done += size
        block += 1
    return BlockOutcome(np.concatenate([o.rep_revenue for o in outcomes]),
                        np.concatenate([o.company_monthly for o in outcomes]),
                        np.concatenate([o.departures for o in outcomes]))


def _simulate_block(book: DealBook, rng: np.random.Generator, trials: int) -> BlockOutcome:
    months, reps = book.months, book.num_reps
    rho = book.correlation
    market = rng.standard_normal(trials)
    rep_revenue = np.zeros((trials, reps))
    monthly = np.zeros((trials, months))

    if book.num_deals:
        latent_cut = (book.deal_threshold[None, :] - np.sqrt(rho) * market[:, None]).astype(np.float32)
        noise = rng.standard_normal((trials, book.num_deals), dtype=np.float32)
        won = noise * np.float32(np.sqrt(1 - rho)) <= latent_cut
        trial_of, deal_of = np.nonzero(won)
        cumulative = np.cumsum(book.deal_close_month, axis=1)
        month = (rng.random(deal_of.size)[:, None] > cumulative[deal_of]).sum(axis=1)
        inside = month < months
        trial_of, deal_of, month = trial_of[inside], deal_of[inside], month[inside]
        amount = book.deal_amount[deal_of]
        rep_revenue += _sum_into(trial_of, book.deal_rep[deal_of], amount, (trials, reps))
        monthly += _sum_into(trial_of, month, amount, (trials, months))

    departures = np.zeros(trials, dtype=np.int64)
    if len(book.cell_rep):
        output = book.productivity[None, :, :] * np.ones((trials, 1, 1))
        if book.monthly_hazard > 0:
            output, departures = _attrition(book, rng, output)
        win_given_market = ndtr((ndtri(book.win_rate) - np.sqrt(rho) * market) / np.sqrt(1 - rho))
        # expected wins per (trial, cell, close month)
        created = output[:, book.cell_rep, :] * book.cell_opportunities[None, :, :]
        expected = np.einsum("tcm,cmk->tck", created, book.cell_close_month) * win_given_market[:, None, None]
        counts = rng.poisson(expected)
        trial_of, cell_of, month = np.nonzero(counts)
        repeat = counts[trial_of, cell_of, month]
        cells = np.repeat(cell_of, repeat)
        amounts = book.cell_median_amount[cells] * np.exp(book.cell_sigma[cells] * rng.standard_normal(cells.size))
        trial_of = np.repeat(trial_of, repeat)
        rep_revenue += _sum_into(trial_of, book.cell_rep[cells], amounts, (trials, reps))
        monthly += _sum_into(trial_of, np.repeat(month, repeat), amounts, (trials, months))
    return BlockOutcome(rep_revenue, monthly, departures)


def _sum_into(row: np.ndarray, column: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (rows × columns) array of the sums of `values` at (row, column)."""
    return np.bincount(row * shape[1] + column, values, minlength=shape[0] * shape[1]).reshape(shape)


def _attrition(book: DealBook, rng: np.random.Generator, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Productivity after departures: zero while the book is vacant, then a backfill hire's ramp."""
    trials, reps, months = output.shape
    leaves = rng.random((trials, reps)) < 1 - (1 - book.monthly_hazard) ** months
    # the month of leaving, given that the rep leaves within the period (truncated geometric)
    u = rng.random((trials, reps))
    q = 1 - book.monthly_hazard
    month_left = np.floor(np.log(1 - u * (1 - q**months)) / np.log(q)).astype(np.int64)
    month_left = np.where(leaves, np.minimum(month_left, months - 1), months)
    since = np.arange(months)[None, None, :] - month_left[:, :, None]
    hired = since - book.backfill_months  # months since the backfill hire started
    ramp = np.take_along_axis(np.broadcast_to(book.ramp_curve[None, :, :], (trials, reps, months)),
                              np.clip(hired, 0, months - 1), axis=2)
    factor = np.where(since < 0, 1.0, np.where(hired < 0, 0.0, ramp))
    return output * factor, leaves.sum(axis=1)
