"""Monte Carlo simulation of the pipeline under a plan: revenue per rep and trial, quota-free.

Quotas come after (`tercap.quota.allocate_quotas`, which may read the simulation); a result is judged
against them with `SimulationResult.with_quotas` (`tercap.stress_test` does both steps)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from tercap.pipeline import calibrated_settings, open_deal_model
from tercap.pipeline.choice import with_market_of
from tercap.plan import account_reps
from tercap.scenario import Scenario
from tercap.scenario.capacity import month_starts
from tercap.simulate.book import DealBook, build_book
from tercap.simulate.kernel import BLOCK_TRIALS, BlockOutcome, block_seeds, simulate_blocks
from tercap.simulate.metrics import classic_metrics
from tercap.simulate.result import SimulationResult

__all__ = ["DealBook", "SimulationResult", "build_book", "simulate"]

DEFAULT_CHUNK_TRIALS = 2_048


def simulate(scenario: Scenario, plan: object | None = None, quotas: pd.Series | None = None, *,
             trials: int | None = None, seed: int | None = None, chunk_trials: int = DEFAULT_CHUNK_TRIALS,
             workers: int = 1, dask: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Simulate the period under `plan` (a Plan; None: the scenario's current owners).

    The pipeline model is the scenario's `simulation` section, with the values fitted from its history
    in place of those it leaves at their defaults (`simulation.use_history`; see `tercap calibrate`).

    The result is quota-free unless `quotas` (rep_id → quota) are given: P(attain) and the attainment
    rate need quotas, which `tercap.stress_test` allocates from this simulation (`quota.method`).
    Trials run in chunks of `chunk_trials` (rounded up to whole blocks of 256) on `workers`
    processes (joblib), or on a Dask cluster: `dask="local"` starts a LocalCluster of `workers`
    processes, `dask="tcp://host:port"` uses a running scheduler. The result does not depend on the
    chunk size, the worker count or where the chunks run. `progress(done, total)` is called per chunk.
    """
    sim = scenario.settings.simulation
    trials = int(trials or sim.trials)
    seed = int(sim.seed if seed is None else seed)
    parameters = "the scenario's settings"
    fitted = calibrated_settings(scenario)
    if fitted is not sim:
        scenario = scenario.replace(simulation=fitted)
        parameters = (f"fitted from {len(scenario.history):,} closed deals where the scenario sets no value "
                      "(simulation.use_history)")
    model, note = open_deal_model(scenario)
    if model is not None:
        market, market_note = with_market_of(scenario.settings.simulation, model)
        if market is not scenario.settings.simulation:
            scenario = scenario.replace(simulation=market)
            note += f"; {market_note}"
    if note:
        parameters += f"; {note}"
    book = build_book(scenario, account_reps(scenario, plan), _pair_workload(plan), model)
    blocks = -(-trials // BLOCK_TRIALS)
    seeds = block_seeds(seed, blocks)
    per_chunk = max(1, -(-max(chunk_trials, 1) // BLOCK_TRIALS))
    chunks = [(first, min(per_chunk, blocks - first)) for first in range(0, blocks, per_chunk)]

    def trials_in(first: int, count: int) -> int:
        return min(count * BLOCK_TRIALS, trials - first * BLOCK_TRIALS)

    outcomes: list[BlockOutcome] = []
    if progress:
        progress(0, len(chunks))
    if dask:
        outcomes = _on_dask(dask, workers, book, seeds, [(first, trials_in(first, count)) for first, count in chunks],
                            progress)
    elif workers > 1 and len(chunks) > 1:
        from joblib import Parallel, delayed

        run = Parallel(n_jobs=workers, return_as="generator")(
            delayed(simulate_blocks)(book, seeds, trials_in(first, count), first) for first, count in chunks)
        for outcome in run:
            outcomes.append(outcome)
            if progress:
                progress(len(outcomes), len(chunks))
    else:
        for first, count in chunks:
            outcomes.append(simulate_blocks(book, seeds, trials_in(first, count), first))
            if progress:
                progress(len(outcomes), len(chunks))
    starts = month_starts(scenario.settings)[:-1]
    company_monthly = np.concatenate([o.company_monthly for o in outcomes])
    metrics = classic_metrics(book, scenario.settings, np.concatenate([o.open_revenue for o in outcomes]),
                              np.concatenate([o.new_won for o in outcomes]),
                              np.concatenate([o.stage_won for o in outcomes]), company_monthly.sum(axis=1))
    result = SimulationResult(
        scenario=scenario.name, rep_ids=book.rep_ids, quota=np.zeros(book.num_reps), quota_basis="none",
        target=scenario.settings.quota.company_target,
        rep_revenue=np.concatenate([o.rep_revenue for o in outcomes]), company_monthly=company_monthly,
        month_labels=tuple(f"{d:%Y-%m}" for d in starts), seed=seed, parameters=parameters,
        departures=np.concatenate([o.departures for o in outcomes]), metrics=metrics)
    return result if quotas is None else result.with_quotas(quotas, "given")


def _pair_workload(plan: object | None) -> pd.Series | None:
    """account_id → the plan's hours a year for the account's rep, where the plan says."""
    table = getattr(plan, "assignments", None)
    if table is None or "workload_hours" not in table:
        return None
    return pd.Series(pd.to_numeric(table["workload_hours"], errors="coerce").to_numpy(dtype=float),
                     index=table["account_id"])


def _on_dask(address: str, workers: int, book: DealBook, seeds: list[np.random.SeedSequence],
             chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None) -> list[BlockOutcome]:
    """Run the chunks (first block, trials) on a Dask cluster; outcomes in chunk order."""
    from tercap.dask_cluster import dask_client

    with dask_client(address, workers) as client:
        from dask.distributed import as_completed

        shared_book, shared_seeds = client.scatter(book, broadcast=True), client.scatter(seeds, broadcast=True)
        futures = [client.submit(simulate_blocks, shared_book, shared_seeds, count, first, pure=False)
                   for first, count in chunks]
        for done, _ in enumerate(as_completed(futures), start=1):
            if progress:
                progress(done, len(futures))
        return client.gather(futures)
