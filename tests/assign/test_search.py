"""Local search: swaps and 3-cycles where no single move helps; it never worsens a plan or breaks a rule."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.assign.compile import CompiledAssignment, compile_assignment
from tercap.assign.search import LocalSearch
from tercap.assign.solve import solve_compiled
from tercap.profiles import SolverProfile
from tercap.scenario.generate import generate_scenario

from .instances import tiny_scenario

TIGHT = {"period": {"start": "2027-01-01"},
         "assignment": {"balance": {"workload_tolerance": 0.05, "potential_tolerance": 0.05},
                        "eligibility": {"nearest_reps": 0}}}


def equal_accounts_scenario(books: dict[str, list[str]], cost: dict[tuple[str, str], float | None]) -> tercap.Scenario:
    """Reps with equal capacity, each holding a book of equal accounts (same workload and potential), so
    that under tight hard bands no rep can gain or lose an account. `cost` gives a pair's travel cost, or
    None to forbid it; pairs not named cost 0."""
    reps = list(books)
    rep_table = pd.DataFrame({"rep_id": reps, "lat": 40.0, "lon": -90.0, "segment": "smb",
                              "experience_years": 10.0, "capacity_hours": 100.0})
    accounts = [account for book in books.values() for account in book]
    account_table = pd.DataFrame({"account_id": accounts, "lat": 40.0, "lon": -90.0, "segment": "smb",
                                  "potential": 1000.0, "workload_hours": 100.0, "buying_process": "transactional"})
    pair_table = pd.DataFrame([{"account_id": a, "rep_id": r, "cost": cost.get((a, r)) or 0.0,
                                "eligible": (a, r) not in cost or cost[(a, r)] is not None}
                               for a in accounts for r in reps])
    return tercap.Scenario.from_tables(TIGHT, {"reps": rep_table, "accounts": account_table, "pairs": pair_table})


def plan_of(compiled: CompiledAssignment, placed: dict[str, str]) -> np.ndarray:
    """`chosen` for an account → rep mapping."""
    inputs, pairs = compiled.inputs, compiled.pairs
    rep_index = {rep: i for i, rep in enumerate(inputs.rep_ids)}
    chosen = np.full(inputs.num_accounts, -1, dtype=np.int64)
    for a, account in enumerate(inputs.account_ids):
        own = np.arange(compiled.pair_start[a], compiled.pair_start[a + 1])
        chosen[a] = own[pairs.rep[own] == rep_index[placed[account]]][0]
    return chosen


def reps_of(compiled: CompiledAssignment, chosen: np.ndarray) -> dict[str, str]:
    return dict(zip(compiled.inputs.account_ids, compiled.inputs.rep_ids[compiled.pairs.rep[chosen]], strict=True))


def neighbours(compiled: CompiledAssignment, chosen: np.ndarray, accounts: int) -> list[np.ndarray]:
    """Every plan that differs from `chosen` by reassigning 1 (or 2: every pair of) accounts."""
    start = compiled.pair_start
    options = [[p for p in range(start[a], start[a + 1]) if p != chosen[a]] for a in range(len(chosen))]
    found = []
    for a in range(len(chosen)):
        for pa in options[a]:
            one = chosen.copy()
            one[a] = pa
            if accounts == 1:
                found.append(one)
                continue
            for b in range(a + 1, len(chosen)):
                for pb in options[b]:
                    two = one.copy()
                    two[b] = pb
                    found.append(two)
    return found


def no_deadline() -> float:
    return time.perf_counter() + 60


def test_a_swap_gets_past_tight_bands():
    books = {"R0": ["A0", "A1"], "R1": ["A2", "A3"]}
    # A1 belongs near R1 and A2 near R0; the others stay best where they are
    cost = {("A0", "R1"): 50, ("A1", "R0"): 50, ("A2", "R1"): 50, ("A3", "R0"): 50}
    compiled = compile_assignment(equal_accounts_scenario(books, cost))
    search = LocalSearch(compiled)
    start = plan_of(compiled, {"A0": "R0", "A1": "R0", "A2": "R1", "A3": "R1"})
    assert search.penalty(start) == 0
    before = search.score(start)
    assert all(search.score(moved) > before for moved in neighbours(compiled, start, 1))  # no move helps

    found = search.improve(start, no_deadline())
    assert reps_of(compiled, found) == {"A0": "R0", "A1": "R1", "A2": "R0", "A3": "R1"}
    assert search.penalty(found) == 0 and search.score(found) < before


def test_a_three_cycle_gets_past_tight_bands_where_no_swap_can():
    books = {"R0": ["F0", "B0"], "R1": ["F1", "B1"], "R2": ["F2", "B2"]}
    reps = list(books)
    cost: dict[tuple[str, str], float | None] = {}
    for i, rep in enumerate(reps):  # B_i sits at R_i, belongs at R_i+1, may not go to R_i+2; F_i stays home
        cost[(f"B{i}", rep)] = 50
        cost[(f"B{i}", reps[(i + 2) % 3])] = None
        for other in reps:
            if other != rep:
                cost[(f"F{i}", other)] = None
    compiled = compile_assignment(equal_accounts_scenario(books, cost))
    search = LocalSearch(compiled)
    start = plan_of(compiled, {"F0": "R0", "B0": "R0", "F1": "R1", "B1": "R1", "F2": "R2", "B2": "R2"})
    assert search.penalty(start) == 0
    before = search.score(start)
    assert all(search.score(changed) > before for changed in neighbours(compiled, start, 2))  # nor any swap

    found = search.improve(start, no_deadline())
    assert reps_of(compiled, found) == {"F0": "R0", "B0": "R1", "F1": "R1", "B1": "R2", "F2": "R2", "B2": "R0"}
    assert search.penalty(found) == 0 and search.score(found) < before


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[CompiledAssignment, np.ndarray]:
    """A generated scenario with locks, tight hard bands and both caps on moves, and its optimal plan."""
    folder = tmp_path_factory.mktemp("generated")
    scenario = tercap.load(generate_scenario(folder, accounts=400, reps=12, seed=1))
    scenario = scenario.replace(assignment={"continuity": {"max_moved_share": 0.1,  # binds at the optimum
                                                           "max_moved_potential_share": 0.3}})
    compiled = compile_assignment(scenario)
    profile = SolverProfile(name="test", strategy="mip", time_limit=30, local_search=False, lns_rounds=0)
    outcome = solve_compiled(compiled, profile)
    assert outcome.chosen is not None
    assert compiled.inputs.account_locked.any()
    return compiled, outcome.chosen


def feasible_walk(search: LocalSearch, chosen: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """A worse plan that still meets every hard constraint: random single moves that keep it so."""
    compiled = search.c
    rng = np.random.default_rng(seed)
    chosen = chosen.copy()
    free = np.flatnonzero(~compiled.inputs.account_locked & (np.diff(compiled.pair_start) > 1))
    for account in rng.choice(free, steps):
        trial = chosen.copy()
        trial[account] = rng.integers(compiled.pair_start[account], compiled.pair_start[account + 1])
        if search.penalty(trial) == 0:
            chosen = trial
    return chosen


def check_rules_kept(compiled: CompiledAssignment, start: np.ndarray, found: np.ndarray) -> None:
    locked = compiled.inputs.account_locked
    assert (found[locked] == start[locked]).all()
    count_cap, potential_cap = compiled.moved_cap
    moved = (compiled.owner_pair >= 0) & (found != compiled.owner_pair)
    assert moved.sum() <= count_cap
    assert compiled.inputs.account_potential[moved].sum() <= potential_cap * (1 + 1e-9)
    assert compiled.model.violations(compiled.solution_from(found)) == []


@pytest.mark.parametrize("seed", range(3))
def test_improve_keeps_a_feasible_plan_feasible_and_never_worsens_it(generated, seed):
    compiled, optimum = generated
    search = LocalSearch(compiled)
    start = feasible_walk(search, optimum, 600, seed)
    assert search.penalty(start) == 0 and (start != optimum).any()
    scores = [search.score(start)]
    for passes in (1, 2, 4, 8, 10_000):
        found = search.improve(start, no_deadline(), max_passes=passes)
        assert search.penalty(found) == 0
        check_rules_kept(compiled, start, found)
        scores.append(search.score(found))
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(scores))
    assert scores[-1] < scores[0]


@pytest.mark.parametrize("seed", range(3))
def test_repair_of_a_random_plan_never_worsens_it_and_keeps_locks(seed):
    scenario = tiny_scenario(seed, accounts=40, reps=5, assignment={"continuity": {"max_moved_share": 0.3}})
    compiled = compile_assignment(scenario)
    search = LocalSearch(compiled)
    rng = np.random.default_rng(seed)
    start = np.array([rng.integers(compiled.pair_start[a], compiled.pair_start[a + 1])
                      for a in range(compiled.inputs.num_accounts)])
    start[rng.random(start.size) < 0.2] = -1
    found = search.improve(start, no_deadline())
    assert search.score(found) <= search.score(start)
    assert search.penalty(found) <= search.penalty(start)


def test_same_start_same_result(generated):
    compiled, optimum = generated
    start = feasible_walk(LocalSearch(compiled), optimum, 600, 7)
    first = LocalSearch(compiled).improve(start, no_deadline())
    second = LocalSearch(compiled).improve(start.copy(), no_deadline())
    np.testing.assert_array_equal(first, second)
    assert (first != start).any()


def test_a_passed_deadline_returns_the_start():
    compiled = compile_assignment(tiny_scenario(2, accounts=20, reps=4))
    start = np.full(compiled.inputs.num_accounts, -1, dtype=np.int64)
    np.testing.assert_array_equal(LocalSearch(compiled).improve(start, time.perf_counter() - 1), start)


@pytest.mark.parametrize("feasible", [True, False], ids=["feasible start", "random start"])
def test_swaps_and_chains_are_scored_exactly(generated, feasible):
    """The change a compound step is scored with is the change of score it makes."""
    compiled, optimum = generated
    search = LocalSearch(compiled)
    rng = np.random.default_rng(1)
    start = feasible_walk(search, optimum, 600, 1) if feasible else np.array(
        [rng.integers(compiled.pair_start[a], compiled.pair_start[a + 1]) for a in range(compiled.inputs.num_accounts)])
    state = search.state(start)
    moves = search._moves(state, ~compiled.inputs.account_locked[compiled.pairs.account])
    pool = search._pool(moves, np.random.default_rng(0))
    paths, cycles = search._chains(moves, pool)
    before = search.score(start)
    for parts, closed in ((search._swaps(moves, pool), True), (paths, False), (cycles, True)):
        found = search._score(state, moves, parts, closed)
        assert len(found.change) > 0
        for i in range(min(len(found.change), 40)):
            step = found.moves[i][found.moves[i] >= 0]
            after = start.copy()
            after[moves.account[step]] = moves.pair[step]
            assert search.score(after) - before == pytest.approx(found.change[i], rel=1e-6, abs=1e-6)
