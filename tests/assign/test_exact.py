"""Small instances: the engine's optimum equals brute-force enumeration; backends agree."""

from __future__ import annotations

import numpy as np
import pytest

from tercap.assign import build_plan
from tercap.assign.check import check_assignment
from tercap.assign.compile import compile_assignment
from tercap.assign.solve import solve_compiled
from tercap.profiles import SolverProfile

from .instances import brute_force, tiny_scenario

EXACT = SolverProfile(name="test-exact", strategy="mip", mip_gap=0.0, time_limit=60)
CASES = [
    ("balanced", {}),
    ("tight bands", {"assignment": {"balance": {"workload_tolerance": 0.35, "potential_tolerance": 0.6}}}),
    ("soft bands", {"assignment": {"balance": {"workload_tolerance": 0.1, "potential_tolerance": 0.1,
                                               "hard": False}}}),
    ("move cap", {"assignment": {"continuity": {"max_moved_share": 0.2}}}),
    ("experience rule", {"assignment": {"eligibility": {"complex_min_experience": 4}}}),
    ("cost mode", {"assignment": {"mode": "cost"}}),
    ("nearest two", {"assignment": {"eligibility": {"nearest_reps": 2}}}),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name, sections", CASES, ids=[c[0] for c in CASES])
def test_optimum_equals_brute_force(name, sections, seed):
    scenario = tiny_scenario(seed, **sections)
    compiled = compile_assignment(scenario)
    expected, _ = brute_force(compiled)
    outcome = solve_compiled(compiled, EXACT)
    if expected is None:
        assert not outcome.status.has_plan
        return
    assert outcome.status.has_plan, outcome
    assert outcome.objective == pytest.approx(expected, rel=1e-7, abs=1e-7)
    assert outcome.bound <= outcome.objective + 1e-7
    plan = build_plan(scenario, compiled, outcome, EXACT)
    assert check_assignment(scenario, plan.assignments[["account_id", "rep_id"]]) == []


@pytest.mark.parametrize("seed", range(6))
def test_checker_and_model_agree_on_random_assignments(seed):
    """Two independent implementations of the hard constraints judge the same way."""
    scenario = tiny_scenario(seed, assignment={"continuity": {"max_moved_share": 0.5},
                                               "balance": {"workload_tolerance": 0.4}})
    compiled = compile_assignment(scenario)
    rng = np.random.default_rng(seed)
    start = compiled.pair_start
    agreed = {True: 0, False: 0}
    for _ in range(150):
        chosen = np.array([rng.integers(start[a], start[a + 1]) for a in range(compiled.inputs.num_accounts)])
        model_ok = not compiled.model.violations(compiled.solution_from(chosen))
        reps = compiled.inputs.rep_ids[compiled.pairs.rep[chosen]]
        table = scenario.accounts[["account_id"]].assign(rep_id=reps)
        checker_ok = check_assignment(scenario, table) == []
        assert model_ok == checker_ok, (chosen, check_assignment(scenario, table),
                                        compiled.model.violations(compiled.solution_from(chosen)))
        agreed[model_ok] += 1
    assert agreed[True] > 0 and agreed[False] > 0  # both outcomes were exercised


@pytest.mark.parametrize("backend", ["highs", "cpsat", "cbc"])
@pytest.mark.parametrize("name, sections", CASES[:3] + CASES[5:6], ids=[c[0] for c in CASES[:3] + CASES[5:6]])
def test_backends_agree_on_the_optimum(backend, name, sections):
    scenario = tiny_scenario(11, accounts=7, **sections)
    compiled = compile_assignment(scenario)
    expected, _ = brute_force(compiled)
    profile = SolverProfile(name=f"test-{backend}", backend=backend, strategy="mip", mip_gap=0.0, time_limit=60,
                            local_search=False)
    outcome = solve_compiled(compiled, profile)
    assert outcome.status.has_plan
    assert outcome.objective == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert outcome.bound <= outcome.objective + 1e-6


@pytest.mark.parametrize("strategy", ["decompose", "greedy"])
def test_heuristic_strategies_are_feasible_and_bounded(strategy):
    scenario = tiny_scenario(5, accounts=30, reps=5)
    compiled = compile_assignment(scenario)
    profile = SolverProfile(name="test", strategy=strategy, time_limit=20)
    outcome = solve_compiled(compiled, profile)
    assert outcome.status.has_plan
    assert outcome.bound <= outcome.objective + 1e-9
    plan = build_plan(scenario, compiled, outcome, profile)
    assert check_assignment(scenario, plan.assignments[["account_id", "rep_id"]]) == []


def _two_segments(seed: int, **sections) -> object:
    """A tiny scenario whose reps and accounts split into two segments: two independent blocks."""
    scenario = tiny_scenario(seed, accounts=8, reps=4, **sections)
    reps, accounts = scenario.reps, scenario.accounts
    reps["segment"] = ["smb", "smb", "mid_market", "mid_market"]
    accounts["segment"] = ["smb"] * 4 + ["mid_market"] * 4
    owner_segment = accounts["current_owner"].map(dict(zip(reps["rep_id"], reps["segment"], strict=True)))
    accounts.loc[owner_segment.ne(accounts["segment"]), "current_owner"] = ""
    return scenario.replace(reps=reps, accounts=accounts)


@pytest.mark.parametrize("seed", range(5))
def test_exact_blocks_reach_the_optimum_and_raise_the_bound(seed):
    """auto above mip_max_pairs: decompose, then each segment (an independent block of at most
    mip_max_pairs pairs) goes whole to the solver; the plan is the brute-force optimum and its bound,
    the LP's raised by the blocks' proofs, never passes it."""
    scenario = _two_segments(seed, assignment={"balance": {"workload_tolerance": 0.3, "potential_tolerance": 0.6}})
    compiled = compile_assignment(scenario)
    labels = compiled.model.blocks()
    account_block = labels[compiled.num_pairs + np.arange(compiled.inputs.num_accounts)]
    assert len(set(account_block[:4])) == 1 and len(set(account_block[4:])) == 1
    assert account_block[0] != account_block[4]
    expected, _ = brute_force(compiled)
    profile = SolverProfile(name="test-blocks", strategy="auto", mip_gap=0.0, time_limit=60,
                            mip_max_pairs=compiled.num_pairs - 1)
    outcome = solve_compiled(compiled, profile)
    if expected is None:
        assert not outcome.status.has_plan
        return
    assert outcome.objective == pytest.approx(expected, rel=1e-7, abs=1e-7)
    assert outcome.lp_bound <= outcome.bound + 1e-9
    assert outcome.bound <= expected + 1e-7
    assert outcome.bound == pytest.approx(expected, rel=1e-6, abs=1e-6)  # both blocks proven
    assert sum(phase.startswith("block mip") for phase, _, _ in outcome.phases) == 2 or \
        outcome.lp_bound == pytest.approx(expected, rel=1e-7, abs=1e-7)
