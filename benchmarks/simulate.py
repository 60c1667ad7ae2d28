"""Monte Carlo benchmark: the open-deal kernel's deal-trials per second against a naive numpy version,
and a whole plan year (10,000 trials of a 50,000-deal, 500-rep book) with its peak memory.

The kernel and the naive version run in the same process, one after the other, on the same book:
the ratio is what counts on a shared machine. The naive version is numpy written the obvious way:
one trial at a time, a latent normal per deal, compare, bincount per rep.

Run from the repository root:
    .venv/bin/python benchmarks/simulate.py
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import update_section

SECTION = "## Monte Carlo simulation"


def kernel_book(scenario: object, deals: int, reps: int, seed: int = 0) -> object:
    """The scenario's book with `deals` open deals spread over its stages on `reps` reps, all closing
    inside the period, and no new deals: the open-deal kernel alone."""
    from tercap.simulate import build_book

    accounts = scenario.accounts  # type: ignore[attr-defined]
    book = build_book(scenario, accounts.set_index("account_id")["current_owner"])
    rng = np.random.default_rng(seed)
    stage = rng.integers(0, len(book.class_conversions), deals)
    rep = rng.integers(0, reps, deals)
    order = np.lexsort((rep, stage))
    close = np.zeros((deals, book.months + 1))
    close[:, : book.months] = 1.0 / book.months
    return dataclasses.replace(
        book, rep_ids=np.array([f"R{i}" for i in range(reps)], dtype=object), deal_rep=rep[order],
        deal_class=stage[order], deal_amount=rng.lognormal(10, 0.8, deals)[order], deal_close_month=close,
        cell_rep=np.zeros(0, dtype=np.int64), cell_median_amount=np.zeros(0), cell_sigma=np.zeros(0),
        cell_opportunities=np.zeros((0, book.months)), cell_close_month=np.zeros((0, book.months, book.months)),
        productivity=np.ones((reps, book.months)), ramp_curve=np.ones((reps, book.months)), monthly_hazard=0.0)


def naive(book: object, trials: int, rho: float, seed: int) -> np.ndarray:
    """The obvious numpy: a loop over trials, a latent normal per deal and stage move left, compare,
    bincount per rep."""
    rng = np.random.default_rng(seed)
    amount, rep, klass = book.deal_amount, book.deal_rep, book.deal_class  # type: ignore[attr-defined]
    class_thresholds, _ = book.thresholds()  # type: ignore[attr-defined]
    moves = max(len(t) for t in class_thresholds)
    thresholds = np.full((len(class_thresholds), moves), np.inf)
    for k, values in enumerate(class_thresholds):
        thresholds[k, : len(values)] = values
    deal_thresholds = thresholds[klass]
    out = np.zeros((trials, book.num_reps))  # type: ignore[attr-defined]
    for t in range(trials):
        latent = np.sqrt(rho) * rng.standard_normal() + np.sqrt(1 - rho) * rng.standard_normal(deal_thresholds.shape)
        won = (latent <= deal_thresholds).all(axis=1)
        out[t] = np.bincount(rep, amount * won, minlength=out.shape[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--kernel-trials", type=int, default=4_096)
    parser.add_argument("--year-trials", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import tercap
    from tercap.scenario.generate import generate_scenario
    from tercap.simulate import simulate
    from tercap.simulate.kernel import BLOCK_TRIALS, block_seeds, simulate_blocks

    lines = []
    with tempfile.TemporaryDirectory() as folder:
        small = tercap.load(generate_scenario(Path(folder) / "small", accounts=300, reps=10, seed=1))
        book = kernel_book(small, args.deals, args.reps)
        rho = book.correlation
        trials = args.kernel_trials
        seeds = block_seeds(1, -(-trials // BLOCK_TRIALS))
        simulate_blocks(book, seeds, BLOCK_TRIALS, 0)  # warm up
        began = time.perf_counter()
        simulate_blocks(book, seeds, trials, 0)
        kernel_rate = args.deals * trials / (time.perf_counter() - began)
        naive_trials = max(trials // 8, 64)
        began = time.perf_counter()
        naive(book, naive_trials, rho, 1)
        naive_rate = args.deals * naive_trials / (time.perf_counter() - began)
        print(f"kernel {kernel_rate / 1e6:.1f} M deal-trials/s, naive {naive_rate / 1e6:.1f} M", flush=True)

        # a plan year: a generated scenario with about `deals` open deals (≈ 0.3 per account)
        accounts = int(args.deals / 0.31)
        path = generate_scenario(Path(folder) / "year", accounts=accounts, reps=args.reps, seed=2)
        scenario = tercap.load(path)
        open_deals = len(scenario.pipeline)
        began = time.perf_counter()
        result = simulate(scenario, trials=args.year_trials, workers=args.workers)
        year_seconds = time.perf_counter() - began
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
        print(f"plan year: {open_deals} deals, {year_seconds:.1f} s, peak {peak:.2f} GiB", flush=True)

    lines = [SECTION, "",
             "Open-deal kernel with the market factor (Gaussian copula on each stage move, per quarter,",
             f"ρ = {rho:g}), one process, against the naive numpy version in the same run; then a whole plan",
             "year (open deals, new deals,",
             "ramp, attrition) on a generated scenario. Peak memory: the larger of this process and its",
             "finished children (joblib's workers each hold one block of 256 trials at a time).",
             f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, numpy {np.__version__}, with:", "", "```",
             shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| measure | value |", "|---|---:|",
             f"| kernel, {args.deals:,} deals × {args.reps} reps, {trials:,} trials | "
             f"{kernel_rate / 1e6:.1f} M deal-trials/s |",
             f"| naive numpy, same book | {naive_rate / 1e6:.1f} M deal-trials/s |",
             f"| kernel ÷ naive | {kernel_rate / naive_rate:.1f} |",
             f"| plan year: {args.year_trials:,} trials, {open_deals:,} open deals, {args.reps} reps, "
             f"{args.workers} workers | {year_seconds:.1f} s |",
             f"| plan year: peak memory | {peak:.2f} GiB |",
             f"| plan year: company P50 | {result.company()['revenue_p50']:,.0f} |"]
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
