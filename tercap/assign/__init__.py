"""Accounts → reps: compile, solve, check, and the Plan that results."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from tercap.assign.check import WIDEST, check_assignment
from tercap.assign.compile import CompiledAssignment, compile_assignment
from tercap.assign.diagnose import diagnose
from tercap.assign.eligibility import nearness
from tercap.assign.inputs import TerritoryGroups
from tercap.assign.reach import reach_pairs
from tercap.assign.solve import SolveOutcome, solve_compiled
from tercap.plan import ASSIGNMENT_COLUMNS, REP_COLUMNS, Plan, SolveStats
from tercap.profiles import SolverProfile
from tercap.scenario import Scenario
from tercap.status import SolveStatus

__all__ = ["TerritoryGroups", "build_plan", "compile_assignment", "plan", "plan_of_owners", "solver_profile"]

MIN_ATTEMPT_SECONDS = 5.0  # a widened neighbourhood gets at least this long, even past the time limit
FINISH_SHARE = 0.01  # of the time limit kept for building and checking the plan once the solver stops


def solver_profile(scenario: Scenario, solver: str | SolverProfile | None) -> SolverProfile:
    """The profile `solver` names (a name, a path or a profile), else the scenario's."""
    if isinstance(solver, SolverProfile):
        return solver
    name = solver or scenario.settings.solver.profile
    search = (scenario.source.parent / "solvers",) if scenario.source else ()
    return SolverProfile.named(name, search)


def plan(scenario: Scenario, solver: str | SolverProfile | None = None,
         progress: Callable[[str], None] | None = None, territories: TerritoryGroups | None = None) -> Plan:
    """Assign every account of `scenario` to a rep; `solver` is a profile name, path or object
    (default: the scenario's `solver.profile`); `territories`: each account to a rep of its own
    territory, balanced within it. The plan is checked by an independent checker."""
    profile = solver_profile(scenario, solver)
    say = progress or (lambda _message: None)
    say("compiling the model")
    began = time.perf_counter()
    compiled = compile_assignment(scenario, territories=territories)
    rules = scenario.settings.assignment.eligibility
    while True:
        say(f"solving: {compiled.num_pairs:,} eligible pairs, {compiled.model.num_rows:,} constraints "
            f"({profile.name} profile, {profile.backend})")
        outcome = solve_compiled(compiled, dataclasses.replace(profile, time_limit=_seconds_left(profile, began)))
        nearest, _ = nearness(rules, compiled.widening)
        if outcome.status is not SolveStatus.INFEASIBLE or nearest is None:
            break
        if compiled.reach is None:  # first, reach farther reps only where the bands need it
            reach = reach_pairs(compiled, rules, _seconds_left(profile, began))
            if reach[0].size:
                say(f"no plan among the {nearest} nearest reps: {np.unique(reach[0]).size:,} accounts may also go "
                    "to farther reps where the balance bands need it")
                compiled = compile_assignment(scenario, compiled.widening, reach, territories=territories)
                continue
        say(f"no plan among the {nearest} nearest reps: widening the neighbourhoods")
        compiled = compile_assignment(scenario, compiled.widening + 1, compiled.reach, territories=territories)
    diagnosis: tuple[str, ...] = ()
    if not outcome.status.has_plan:
        say("diagnosing")
        diagnosis = tuple(diagnose(scenario, compiled))
    result = build_plan(scenario, compiled, outcome, profile, diagnosis)
    if result.status.has_plan:
        say("checking every hard constraint")
        reached = _reached_pairs(compiled, outcome.chosen)
        violations = tuple(check_assignment(scenario, result.assignments[["account_id", "rep_id"]],
                                            compiled.widening, reached=reached, territories=territories))
        if violations:
            result = dataclasses.replace(result, violations=violations)
    return result


def plan_of_owners(scenario: Scenario, owners: pd.Series, strategy: str, solver: str | SolverProfile | None = None
                   ) -> tuple[Plan, tuple[str, ...]]:
    """The Plan of an owner per account made elsewhere (rep_id by account_id, e.g. accounts following
    their territory), with its figures and objective terms under the scenario's model; and the rules of
    the assignment model it breaks, in the independent checker's words (nearness aside: the owners
    replace it). Nothing is solved, so there is no bound: status `feasible`, solver status says so."""
    began = time.perf_counter()
    profile = solver_profile(scenario, solver)
    compiled = compile_assignment(scenario, owners=owners)
    chosen = np.full(compiled.inputs.num_accounts, -1, dtype=np.int64)
    chosen[compiled.pairs.account] = np.arange(compiled.num_pairs)
    x = compiled.solution_from(chosen)
    outcome = SolveOutcome(chosen=chosen, status=SolveStatus.FEASIBLE, objective=compiled.model.objective(x),
                           bound=None, seconds=time.perf_counter() - began, backend="none", strategy=strategy,
                           solver_status=f"not solved: the owners come from {strategy}")
    result = build_plan(scenario, compiled, outcome, profile)
    broken = check_assignment(scenario, result.assignments[["account_id", "rep_id"]], widening=WIDEST + 1)
    return result, tuple(broken)


def _reached_pairs(compiled: CompiledAssignment, chosen: np.ndarray | None) -> pd.DataFrame:
    """account_id, rep_id of the chosen pairs that only reach (beyond the nearest reps) allowed."""
    picked = chosen[chosen >= 0] if chosen is not None else np.zeros(0, dtype=np.int64)
    picked = picked[compiled.pairs.reached[picked]]
    return pd.DataFrame({"account_id": compiled.inputs.account_ids[compiled.pairs.account[picked]],
                         "rep_id": compiled.inputs.rep_ids[compiled.pairs.rep[picked]]})


def _seconds_left(profile: SolverProfile, began: float) -> float:
    return max(profile.time_limit * (1 - FINISH_SHARE) - (time.perf_counter() - began), MIN_ATTEMPT_SECONDS)


def build_plan(scenario: Scenario, compiled: CompiledAssignment, outcome: SolveOutcome, profile: SolverProfile,
               diagnosis: tuple[str, ...] = ()) -> Plan:
    """The Plan of a solve outcome: tables, KPIs and statistics."""
    inputs, pairs, model = compiled.inputs, compiled.pairs, compiled.model
    chosen = outcome.chosen if outcome.chosen is not None else np.full(inputs.num_accounts, -1)
    has = chosen >= 0
    rep = np.where(has, pairs.rep[np.maximum(chosen, 0)], -1)
    owner = inputs.account_owner
    moved = (owner >= 0) & (rep != owner)
    workload = np.where(has, pairs.workload[np.maximum(chosen, 0)], inputs.account_workload)
    distance = np.where(has, pairs.distance_km[np.maximum(chosen, 0)], np.nan)
    rep_ids = pd.array(np.append(inputs.rep_ids, None)[rep], dtype="string")
    assignments = pd.DataFrame({
        "account_id": inputs.account_ids,
        "rep_id": rep_ids,
        "previous_rep_id": pd.array(np.append(inputs.rep_ids, None)[owner], dtype="string"),
        "moved": moved if outcome.chosen is not None else np.zeros(inputs.num_accounts, dtype=bool),
        "workload_hours": workload,
        "potential": inputs.account_potential,
        "distance_km": distance,
    }, columns=list(ASSIGNMENT_COLUMNS))

    r = inputs.num_reps
    taken = rep[has]
    load = np.bincount(taken, workload[has], minlength=r)
    potential = np.bincount(taken, inputs.account_potential[has], minlength=r)
    industry = inputs.account_industry[has]
    matched = (industry >= 0) & inputs.rep_knows[taken, np.maximum(industry, 0)] if inputs.rep_knows.size else \
        np.zeros(has.sum(), dtype=bool)
    known_industry = np.bincount(taken, workload[has] * (industry >= 0), minlength=r)
    total_potential = potential.sum()
    reps = pd.DataFrame({
        "rep_id": inputs.rep_ids,
        "accounts": np.bincount(taken, minlength=r),
        "workload_hours": load,
        "capacity_hours": inputs.rep_capacity,
        "utilisation": np.divide(load, inputs.rep_capacity, out=np.full(r, np.nan), where=inputs.rep_capacity > 0),
        "potential": potential,
        "potential_share": potential / total_potential if total_potential > 0 else np.zeros(r),
        "travel_km": np.bincount(taken, distance[has] * workload[has], minlength=r) / np.maximum(load, 1e-9),
        "moved_in": np.bincount(rep[moved & has], minlength=r),
        "moved_out": np.bincount(owner[moved], minlength=r),
        "industry_match_share": np.divide(np.bincount(taken, workload[has] * matched, minlength=r), known_industry,
                                          out=np.full(r, np.nan), where=known_industry > 0),
    }, columns=list(REP_COLUMNS))

    x = compiled.solution_from(chosen) if outcome.chosen is not None else None
    stats = SolveStats(
        backend=outcome.backend, profile=profile.name, strategy=outcome.strategy, status=outcome.status,
        solver_status=outcome.solver_status, objective=outcome.objective,
        terms=model.term_values(x) if x is not None else {}, weights=dict(model.weights), bound=outcome.bound,
        gap=outcome.gap, seconds=outcome.seconds, variables=model.num_cols, constraints=model.num_rows,
        phases=outcome.phases, widening=compiled.widening, incumbents=outcome.incumbents,
        reached_accounts=int(pairs.reached[chosen[has]].sum()), lp_bound=outcome.lp_bound)
    kpis = _kpis(assignments, reps, inputs.account_owner >= 0, compiled.target_potential) if outcome.chosen \
        is not None else {}
    return Plan(scenario.name, assignments, reps, stats, kpis, (), diagnosis)


def _kpis(assignments: pd.DataFrame, reps: pd.DataFrame, owned: np.ndarray, target_potential: np.ndarray
          ) -> dict[str, float]:
    active = reps[reps["capacity_hours"] > 0]
    utilisation = active["utilisation"]
    targeted = target_potential > 0
    share_ratio = reps["potential"][targeted] / target_potential[targeted]
    moved = assignments["moved"]
    owned_potential = assignments.loc[owned, "potential"].sum()
    placed = assignments["rep_id"].notna()
    workload = assignments.loc[placed, "workload_hours"]
    return {
        "utilisation_max": float(utilisation.max()) if len(active) else float("nan"),
        "utilisation_min": float(utilisation.min()) if len(active) else float("nan"),
        "utilisation_cv": float(utilisation.std(ddof=0) / utilisation.mean()) if len(active) else float("nan"),
        "potential_share_cv": float(share_ratio.std(ddof=0) / share_ratio.mean()) if targeted.any()
        else float("nan"),
        "accounts_moved": int(moved.sum()),
        "accounts_moved_share": float(moved.sum() / max(owned.sum(), 1)),
        "potential_moved_share": float(assignments.loc[moved, "potential"].sum() / owned_potential)
        if owned_potential > 0 else 0.0,
        "mean_travel_km": float(np.average(assignments.loc[placed, "distance_km"], weights=workload))
        if workload.sum() > 0 else 0.0,
        "unassigned_accounts": int((~placed).sum()),
    }

