"""Solve a compiled assignment with a profile's strategy; a proven bound (the LP's, raised by exact
solves) certifies every answer.

- decompose: LP relaxation → fix the accounts it assigns whole → residual MIP on the rest (widened
  when it cannot be completed; rounded and repaired when even that fails) → local search.
- mip: decompose for a warm start, then the whole model to the backend for the proof.
- greedy: regret-greedy construction → local search → exact repair around broken reps (decompose
  when that fails).
- auto: mip up to the profile's mip_max_pairs eligible pairs; above, decompose, then the time left goes
  to the model's independent blocks (e.g. one per segment) by how far each block's plan is above its
  share of the LP: a block of at most mip_max_pairs pairs goes whole to the backend, warm-started, and
  its proven bound raises the plan's bound; larger blocks get neighbourhood search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from tercap.assign.compile import CompiledAssignment
from tercap.assign.inputs import unit_vectors
from tercap.assign.search import LocalSearch, regret_greedy
from tercap.backends import Backend, BackendResult, SolveLimits, get_backend, relative_gap
from tercap.profiles import SolverProfile
from tercap.status import SolveStatus

INTEGRAL = 1 - 1e-6
LOCAL_SEARCH_SHARE = 0.25  # of the time left, at most, for polishing
EXACT_BLOCK_SHARE = 0.5  # of its share of the time left, what an exact block's solve gets; the rest goes to
#                         neighbourhood search (a time-limited solve finds most of its plan in its first half)
# A part's objective holds the whole plan's constant: a relative gap there is a gap on the whole plan,
# so a neighbourhood is solved far tighter than the profile's gap, or each would stop at its first fair plan.
NEIGHBOURHOOD_GAP = 1e-5
LNS_COVERAGE = 3  # "auto" neighbourhood rounds: enough to visit every rep this many times
PART_PAIRS = 200_000  # the largest part widened for an exact completion; beyond it, round and repair


@dataclass(frozen=True, eq=False)
class SolveOutcome:
    """What solving found: the plan as chosen pairs, and what is proven about it."""

    chosen: np.ndarray | None  # per account, chosen pair index or -1 (None: no plan)
    status: SolveStatus
    objective: float | None
    bound: float | None
    seconds: float
    backend: str
    strategy: str
    solver_status: str
    phases: tuple[tuple[str, float, str], ...] = field(default=())  # (phase, seconds, note)
    incumbents: tuple[tuple[float, float], ...] = field(default=())  # (seconds, objective) at each better plan
    lp_bound: float | None = None  # the LP relaxation's optimum; `bound` is this or better (raised by exact blocks)

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)


class ProvenInfeasible(Exception):
    """The whole model was handed to the solver and it proved that no plan exists."""


class _Clock:
    def __init__(self, limit: float) -> None:
        self.began = time.perf_counter()
        self.deadline = self.began + limit
        self.phases: list[tuple[str, float, str]] = []
        self.incumbents: list[tuple[float, float]] = []
        self._mark = self.began

    def incumbent(self, objective: float, at: float | None = None) -> None:
        """Record a better plan's objective and when it was found (`at`: seconds since the start; now)."""
        if not self.incumbents or objective < self.incumbents[-1][1] - 1e-12:
            self.incumbents.append((self.elapsed() if at is None else at, objective))

    def left(self) -> float:
        return max(self.deadline - time.perf_counter(), 0.0)

    def phase(self, name: str, note: str = "") -> None:
        now = time.perf_counter()
        self.phases.append((name, now - self._mark, note))
        self._mark = now

    def elapsed(self) -> float:
        return time.perf_counter() - self.began


def _limits(profile: SolverProfile, seconds: float) -> SolveLimits:
    return SolveLimits(time_limit=max(seconds, 0.5), mip_gap=profile.mip_gap, threads=profile.threads,
                       seed=profile.seed)


def solve_compiled(compiled: CompiledAssignment, profile: SolverProfile) -> SolveOutcome:
    """Run the profile's strategy on `compiled` and return the best plan with its bound and gap."""
    clock = _Clock(profile.time_limit)
    strategy = profile.strategy
    if strategy == "auto":
        strategy = "mip" if compiled.num_pairs <= profile.mip_max_pairs else "decompose"
    solver_status, timed_out = "", False
    model = compiled.model
    highs = get_backend("highs")
    lp = highs.solve(model.relaxed(), _limits(profile, clock.left()))
    clock.phase("lp relaxation", lp.solver_status)
    if lp.status is SolveStatus.INFEASIBLE:
        return SolveOutcome(None, SolveStatus.INFEASIBLE, None, None, clock.elapsed(), "highs", strategy,
                            lp.solver_status, tuple(clock.phases), tuple(clock.incumbents))
    lp_bound = lp.objective if lp.status is SolveStatus.OPTIMAL else None
    bound = lp_bound  # the best proven bound: raised by exact solves of the whole model or of blocks
    if lp.x is None:
        return SolveOutcome(None, SolveStatus.NO_SOLUTION, None, None, clock.elapsed(), "highs", strategy,
                            lp.solver_status, tuple(clock.phases), tuple(clock.incumbents))

    search = LocalSearch(compiled)
    backend = get_backend(profile.backend)
    chosen: np.ndarray | None = None
    try:
        if strategy == "greedy":
            chosen = regret_greedy(compiled)
            clock.phase("greedy construction")
            chosen, solver_status, timed_out = _repair(compiled, chosen, backend, profile, clock)
        if chosen is None:  # decompose, the warm start of mip, and the fallback of greedy
            chosen, solver_status, timed_out = _decompose(compiled, lp, backend, profile, clock)
    except ProvenInfeasible as proof:
        return SolveOutcome(None, SolveStatus.INFEASIBLE, None, None, clock.elapsed(), backend.name, strategy,
                            str(proof), tuple(clock.phases), tuple(clock.incumbents))
    warm = compiled.solution_from(chosen) if chosen is not None else None
    if warm is not None and search.penalty(chosen) == 0:
        clock.incumbent(model.objective(warm))
    proven_by_decompose = warm is not None and (relative_gap(model.objective(warm), bound) or 1.0) <= profile.mip_gap
    if strategy == "mip" and clock.left() > 0 and not proven_by_decompose:
        result = backend.solve(model, _limits(profile, clock.left()), warm_start=warm)
        clock.phase(f"{backend.name} mip", result.solver_status)
        solver_status = result.solver_status
        if result.status is SolveStatus.INFEASIBLE:
            return SolveOutcome(None, SolveStatus.INFEASIBLE, None, bound, clock.elapsed(), backend.name,
                                strategy, solver_status, tuple(clock.phases), tuple(clock.incumbents))
        timed_out = result.status is SolveStatus.TIME_LIMIT
        if result.x is not None:
            candidate = compiled.choice_from(result.x)
            value = model.objective(compiled.solution_from(candidate))
            if chosen is None or value <= model.objective(warm) + 1e-9:
                chosen = candidate
                clock.incumbent(value)
        if result.bound is not None:
            bound = result.bound if bound is None else max(bound, result.bound)

    if chosen is None:
        return SolveOutcome(None, SolveStatus.NO_SOLUTION, None, bound, clock.elapsed(), backend.name,
                            strategy, solver_status, tuple(clock.phases), tuple(clock.incumbents))
    if strategy != "mip" and search.penalty(chosen) == 0:
        if profile.strategy == "auto" and bound is not None:
            chosen, bound = _improve_blocks(compiled, chosen, lp, bound, backend, profile, clock, search)
        elif profile.lns_rounds:
            chosen = _polish(compiled, chosen, bound, lp.x, backend, profile, clock)
    if profile.local_search and clock.left() > 0:
        chosen = search.improve(chosen, time.perf_counter() + max(LOCAL_SEARCH_SHARE * clock.left(), 0.2))
        clock.phase("local search")
    feasible = search.penalty(chosen) == 0 and not model.violations(compiled.solution_from(chosen))
    if not feasible:
        return SolveOutcome(None, SolveStatus.NO_SOLUTION, None, bound, clock.elapsed(), backend.name,
                            strategy, solver_status, tuple(clock.phases), tuple(clock.incumbents))
    objective = model.objective(compiled.solution_from(chosen))
    clock.incumbent(objective)
    if bound is not None:  # a plan's objective caps the optimum: a bound above it is rounding
        bound = min(bound, objective)
    gap = relative_gap(objective, bound)
    if gap is not None and gap <= profile.mip_gap + 1e-12:
        status = SolveStatus.OPTIMAL
    elif timed_out or clock.left() <= 0:
        status = SolveStatus.TIME_LIMIT
    else:
        status = SolveStatus.FEASIBLE
    return SolveOutcome(chosen, status, objective, bound, clock.elapsed(), backend.name, strategy,
                        solver_status, tuple(clock.phases), tuple(clock.incumbents),
                        lp_bound=None if lp_bound is None else min(lp_bound, objective))


def _solve_part(compiled: CompiledAssignment, base: np.ndarray, free: np.ndarray, backend: Backend,
                limits: SolveLimits, warm: bool = False) -> tuple[np.ndarray | None, BackendResult]:
    """Re-solve the accounts in `free` exactly, every other account held at its choice in `base`
    (`warm`: `base` is a plan, handed to the solver as its first incumbent).

    Only the free part goes to the solver: the held columns move into the row bounds."""
    pairs, model = compiled.pairs, compiled.model
    num_pairs, num_accounts = compiled.num_pairs, compiled.inputs.num_accounts
    free_cols = np.ones(model.num_cols, dtype=bool)
    free_cols[:num_pairs] = free[pairs.account]
    free_cols[num_pairs: num_pairs + num_accounts] = free
    values = compiled.solution_from(np.where(free, -1, base))
    values[num_pairs + np.flatnonzero(free)] = 0.0
    start = compiled.solution_from(base)[free_cols] if warm else None
    result = backend.solve(model.restricted(free_cols, values), limits, warm_start=start)
    if result.x is None:
        return None, result
    full = values.copy()
    full[free_cols] = result.x
    return compiled.choice_from(full), result


def _complete_by_mip(compiled: CompiledAssignment, base: np.ndarray, free: np.ndarray, backend: Backend,
                     profile: SolverProfile, clock: _Clock, label: str) -> tuple[np.ndarray | None, str, bool]:
    """Keep `base` outside `free` and solve the rest exactly; when that part cannot be completed,
    widen it to every account of the reps the free accounts could go to (then to everything), as long
    as the part stays within PART_PAIRS eligible pairs (a larger MIP would not finish in time)."""
    pairs = compiled.pairs
    status_word = ""
    for attempt in range(3):
        if clock.left() <= 0:
            return None, status_word, True
        if attempt and int(free[pairs.account].sum()) > PART_PAIRS:
            return None, status_word, False
        chosen, result = _solve_part(compiled, base, free, backend, _limits(profile, clock.left() * 0.7))
        status_word = result.solver_status
        clock.phase(f"{label} {attempt + 1}", f"{int(free.sum())} free accounts: {status_word}")
        if chosen is not None:
            return chosen, status_word, result.status is SolveStatus.TIME_LIMIT
        if free.all() and result.status is SolveStatus.INFEASIBLE:
            raise ProvenInfeasible(status_word)
        reps_involved = np.unique(pairs.rep[free[pairs.account]])
        current_rep = np.where(base >= 0, pairs.rep[np.maximum(base, 0)], -1)
        free = free | np.isin(current_rep, reps_involved) if attempt == 0 else np.ones_like(free)
    return None, status_word, clock.left() <= 0


def _largest_share(compiled: CompiledAssignment, x_lp: np.ndarray) -> np.ndarray:
    """Per account, the pair holding its largest LP share (-1: the account has no pair): the LP rounded."""
    pairs = compiled.pairs
    order = np.lexsort((-x_lp[: compiled.num_pairs], pairs.account))
    first = np.r_[True, pairs.account[order][1:] != pairs.account[order][:-1]]
    rounded = np.full(compiled.inputs.num_accounts, -1, dtype=np.int64)
    rounded[pairs.account[order][first]] = order[first]
    return rounded


def _rep_costs(compiled: CompiledAssignment, x: np.ndarray) -> np.ndarray:
    """Per rep, its share of the objective at `x`: its pairs' costs and its own columns (deviations,
    band slacks)."""
    model, num_reps = compiled.model, compiled.inputs.num_reps
    num_pairs = compiled.num_pairs
    costs = np.bincount(compiled.pairs.rep, model.cost[:num_pairs] * x[:num_pairs], minlength=num_reps)
    own = num_pairs + compiled.inputs.num_accounts  # then blocks of one column per rep
    weighted = (model.cost[own:] * x[own:]).reshape(-1, num_reps)
    return costs + weighted.sum(axis=0)


def _polish(compiled: CompiledAssignment, chosen: np.ndarray, bound: float | None, x_lp: np.ndarray,
            backend: Backend, profile: SolverProfile, clock: _Clock, seeds: np.ndarray | None = None
            ) -> np.ndarray:
    """Large-neighbourhood search: re-solve exactly the accounts of a few neighbouring reps at a time.

    Rounds seed at reps whose share of the objective lies furthest above their share of the LP
    relaxation (so a block already near its LP part gets few rounds); "auto" rounds are enough to
    visit every rep LNS_COVERAGE times. Seeds follow the profile's seed, so the result does not depend on the
    machine's speed unless the time limit cuts the rounds short. `seeds`: the reps rounds may seed at
    (default: every active rep)."""
    inputs, pairs, model = compiled.inputs, compiled.pairs, compiled.model
    rng = np.random.default_rng(profile.seed)
    active = np.flatnonzero((inputs.rep_capacity > 0) & (True if seeds is None else seeds))
    if active.size == 0:
        return chosen
    xyz = unit_vectors(inputs.rep_lat, inputs.rep_lon)
    best = model.objective(compiled.solution_from(chosen))
    lp_rep_cost = _rep_costs(compiled, x_lp)
    improved = 0
    rounds = profile.lns_rounds if profile.lns_rounds != "auto" else \
        int(np.ceil(LNS_COVERAGE * active.size / max(profile.lns_reps, 1)))
    for _ in range(rounds):
        gap = relative_gap(best, bound)
        if clock.left() < 1.0 or (gap is not None and gap <= profile.mip_gap):
            break
        current = np.where(chosen >= 0, pairs.rep[np.maximum(chosen, 0)], -1)
        weight = np.maximum(_rep_costs(compiled, compiled.solution_from(chosen)) - lp_rep_cost, 0.0)[active]
        weight += 1e-3 * max(float(weight.sum()), 1e-9) / active.size
        seed_rep = rng.choice(active, p=weight / weight.sum())
        free = _accounts_around(compiled, current, np.array([seed_rep]), profile.lns_reps, xyz)
        if not free.any():
            continue
        limits = replace(_limits(profile, min(10.0, clock.left())), mip_gap=min(profile.mip_gap, NEIGHBOURHOOD_GAP))
        candidate, _ = _solve_part(compiled, chosen, free, backend, limits)
        if candidate is None:
            continue
        value = model.objective(compiled.solution_from(candidate))
        if value < best - 1e-9:
            chosen, best, improved = candidate, value, improved + 1
            clock.incumbent(value)
    clock.phase("neighbourhood search", f"{improved} improving rounds")
    return chosen


def _improve_blocks(compiled: CompiledAssignment, chosen: np.ndarray, lp: BackendResult, lp_bound: float,
                    backend: Backend, profile: SolverProfile, clock: _Clock, search: LocalSearch
                    ) -> tuple[np.ndarray, float]:
    """Spend the time left on the model's independent blocks (rows link no two of them: e.g. segments
    when eligibility keeps to the segment and no cap on moves spans them), each by its share of the
    plan's distance to the LP: a block of at most `mip_max_pairs` pairs goes whole to the backend for
    half its share, warm-started from the plan; then neighbourhood search in every block not proven
    optimal. The LP optimum is the sum of the blocks' LP optima, so a block's proven bound above its
    LP part raises the whole plan's bound. Local search (moves, swaps, ejection chains across reps)
    follows each exact block: it mends in a fraction of a second what a time-limited solve leaves (on
    the 10,000 × 100 benchmark, 131.15 → 130.91 in 0.4 s). Returns the plan and its bound."""
    model, pairs = compiled.model, compiled.pairs
    num_pairs, num_accounts = compiled.num_pairs, compiled.inputs.num_accounts
    assert lp.x is not None
    labels = model.blocks()
    count = int(labels.max()) + 1

    def block_costs(x: np.ndarray) -> np.ndarray:
        return np.bincount(labels, model.cost * x, minlength=count)

    lp_part = block_costs(lp.x)
    account_block = labels[num_pairs + np.arange(num_accounts)]
    movable = ~compiled.inputs.account_locked
    block_pairs = np.bincount(labels[:num_pairs], minlength=count)
    x = compiled.solution_from(chosen)
    best, plan_part = model.objective(x), block_costs(x)
    distance = np.maximum(plan_part - lp_part, 0.0)
    open_blocks = [b for b in np.argsort(-distance, kind="stable")
                   if distance[b] > NEIGHBOURHOOD_GAP * max(abs(best), 1.0) and (movable & (account_block == b)).any()]
    exact = [b for b in open_blocks if block_pairs[b] <= profile.mip_max_pairs]
    searched = [b for b in open_blocks if block_pairs[b] > profile.mip_max_pairs]
    raised = np.zeros(count)  # per block, how far its proven bound lies above its LP part
    remaining = float(distance[open_blocks].sum())

    def polish_locally(plan: np.ndarray) -> np.ndarray:
        """The plan after local search, where that lowers the objective."""
        if not profile.local_search:
            return plan
        before = model.objective(compiled.solution_from(plan))
        better = search.improve(plan, time.perf_counter() + LOCAL_SEARCH_SHARE * clock.left())
        value = model.objective(compiled.solution_from(better))
        clock.phase("local search", f"objective {before - value:.4g} lower")
        if search.penalty(better) > 0 or value >= before - 1e-9:
            return plan
        clock.incumbent(value)
        return better

    proven: list[int] = []
    for block in exact:
        if clock.left() < 1.0:
            break
        seconds = EXACT_BLOCK_SHARE * clock.left() * distance[block] / max(remaining, 1e-12)
        remaining -= distance[block]
        free = (account_block == block) & movable
        limits = replace(_limits(profile, seconds), mip_gap=min(profile.mip_gap, NEIGHBOURHOOD_GAP))
        started = clock.elapsed()
        candidate, result = _solve_part(compiled, chosen, free, backend, limits, warm=True)
        elsewhere = best - plan_part[block]  # the part's objective holds the rest of the plan as it stands
        if result.bound is not None:
            raised[block] = max(result.bound - elsewhere - lp_part[block], 0.0)
        if result.status is SolveStatus.OPTIMAL:
            proven.append(block)
        found = ""
        if candidate is not None:
            value = model.objective(compiled.solution_from(candidate))
            if value < best - 1e-9:
                for seconds_in, better in result.improvements:  # the part's objective is the plan's
                    clock.incumbent(better, started + seconds_in)
                chosen, found = candidate, ", better plan"
                clock.incumbent(value)
        clock.phase(f"block mip {block + 1}", f"{int(free.sum())} accounts, {int(block_pairs[block])} pairs: "
                                               f"{result.solver_status}{found}")
        chosen = polish_locally(chosen)
        x = compiled.solution_from(chosen)
        best, plan_part = model.objective(x), block_costs(x)
    searched += [b for b in exact if b not in proven]
    if searched and profile.lns_rounds and clock.left() >= 1.0:
        seeds = np.zeros(compiled.inputs.num_reps, dtype=bool)
        seeds[pairs.rep[np.isin(labels[:num_pairs], searched)]] = True
        chosen = _polish(compiled, chosen, lp_bound + raised.sum(), lp.x, backend, profile, clock, seeds=seeds)
    return chosen, lp_bound + float(raised.sum())


def _decompose(compiled: CompiledAssignment, lp: BackendResult, backend: Backend, profile: SolverProfile,
               clock: _Clock) -> tuple[np.ndarray | None, str, bool]:
    """Fix what the LP assigns whole, solve the rest as a MIP; round and repair if that fails."""
    pairs = compiled.pairs
    num_pairs, num_accounts = compiled.num_pairs, compiled.inputs.num_accounts
    x_lp = lp.x
    assert x_lp is not None
    whole_pair = np.flatnonzero(x_lp[:num_pairs] >= INTEGRAL)
    lp_choice = np.full(num_accounts, -1, dtype=np.int64)
    lp_choice[pairs.account[whole_pair]] = whole_pair
    whole = np.zeros(num_accounts, dtype=bool)
    whole[pairs.account[whole_pair]] = True
    whole |= x_lp[num_pairs: num_pairs + num_accounts] >= INTEGRAL
    chosen, word, timed_out = _complete_by_mip(compiled, lp_choice, ~whole, backend, profile, clock,
                                               "residual mip")
    if chosen is not None:
        return chosen, word, timed_out
    return _repair(compiled, _largest_share(compiled, x_lp), backend, profile, clock)


def _accounts_around(compiled: CompiledAssignment, current: np.ndarray, seeds: np.ndarray, size: int,
                     xyz: np.ndarray) -> np.ndarray:
    """Unlocked accounts held or owned by the `size` reps nearest each seed rep (same group, active)."""
    inputs = compiled.inputs
    active = np.flatnonzero(inputs.rep_capacity > 0)
    chosen_reps = []
    for seed_rep in seeds:
        group = active[inputs.rep_group[active] == inputs.rep_group[seed_rep]]
        order = np.argsort(((xyz[group] - xyz[seed_rep]) ** 2).sum(axis=1), kind="stable")
        chosen_reps.append(group[order[:size]])
    reps = np.unique(np.concatenate(chosen_reps)) if chosen_reps else np.zeros(0, dtype=np.int64)
    return (np.isin(current, reps) | np.isin(inputs.account_owner, reps)) & ~inputs.account_locked


def _repair(compiled: CompiledAssignment, chosen: np.ndarray, backend: Backend, profile: SolverProfile,
            clock: _Clock) -> tuple[np.ndarray | None, str, bool]:
    """Local search, then exact re-solves of the accounts of the reps around those still out of bounds,
    the neighbourhood doubling while a re-solve finds no way (and the part stays under PART_PAIRS)."""
    search = LocalSearch(compiled)
    chosen = search.improve(chosen, time.perf_counter() + LOCAL_SEARCH_SHARE * clock.left())
    clock.phase("local search")
    pairs = compiled.pairs
    xyz = unit_vectors(compiled.inputs.rep_lat, compiled.inputs.rep_lon)
    size, word, last_free = max(profile.lns_reps, 2), "", -1
    while search.penalty(chosen) > 0 and clock.left() > 0:
        current = np.where(chosen >= 0, pairs.rep[np.maximum(chosen, 0)], -1)
        broken = search.broken_reps(chosen)
        while True:  # broken reps side by side share neighbours: double until the part outgrows the failed one
            free = _accounts_around(compiled, current, broken, size, xyz)
            if search.moves_over_cap(chosen):
                free |= (compiled.owner_pair >= 0) & (chosen != compiled.owner_pair) & \
                    ~compiled.inputs.account_locked
            if int(free.sum()) > last_free or size >= compiled.inputs.num_reps:
                break
            size *= 2
        if int(free[pairs.account].sum()) > PART_PAIRS or int(free.sum()) <= last_free:
            break  # too large for an exact re-solve, or no larger than the one that just failed
        candidate, result = _solve_part(compiled, chosen, free, backend, _limits(profile, clock.left() * 0.5))
        word = result.solver_status
        clock.phase("repair mip", f"{int(free.sum())} free accounts around {size} reps each: {word}")
        if candidate is None:
            last_free, size = int(free.sum()), size * 2
            continue
        last_free = -1
        before = search.penalty(chosen)
        chosen = search.improve(candidate, time.perf_counter() + LOCAL_SEARCH_SHARE * clock.left())
        if search.penalty(chosen) >= before:  # no progress at this size: look wider
            size *= 2
    if search.penalty(chosen) > 0:
        return None, word, clock.left() <= 0
    return chosen, word, clock.left() <= 0
