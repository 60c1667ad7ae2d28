"""Construction and local search on an assignment: regret greedy, then improving moves.

Both work on `chosen` (per account, the index of its chosen pair, or -1 for unassigned) and score a
plan as the model's objective plus a large penalty per unit of any hard constraint it breaks, so the
same search repairs an infeasible start and improves a feasible one. Deltas of every candidate move
are computed at once with numpy; each pass applies the best improving moves that touch distinct reps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tercap.assign.compile import CompiledAssignment

PENALTY = 1e5  # per % of a rep's target (or per account) by which a hard constraint is broken
RELATIVE_SLACK = 1e-9  # sums of floats may pass a bound by this much without breaking it


def _excess(value: np.ndarray, bound: np.ndarray | float) -> np.ndarray:
    """How far `value` is above `bound`, ignoring float noise."""
    return np.maximum(value - bound - RELATIVE_SLACK * (1.0 + np.abs(bound)), 0.0)


@dataclass
class _State:
    chosen: np.ndarray
    workload: np.ndarray
    potential: np.ndarray
    count: np.ndarray
    moved: int
    moved_potential: float


class LocalSearch:
    """Move-based local search under the hard constraints of a compiled assignment."""

    def __init__(self, compiled: CompiledAssignment) -> None:
        self.c = compiled
        inputs, pairs = compiled.inputs, compiled.pairs
        model = compiled.model
        self.p = len(pairs)
        self.num_reps = inputs.num_reps
        self.pair_cost = model.cost[: self.p]
        self.unassigned_cost = model.cost[self.p: self.p + inputs.num_accounts]
        self.pair_potential = inputs.account_potential[pairs.account]
        self.is_owner_pair = pairs.rep == inputs.account_owner[pairs.account]
        self.owner_pair = compiled.owner_pair
        self.locked = inputs.account_locked
        r = self.num_reps
        if compiled.mode == "balanced":
            dev = model.cost[self.p + inputs.num_accounts:]
            self.dev_w_cost, self.dev_p_cost = dev[:r], dev[r: 2 * r]
            self.soft_cost = dev[2 * r: 6 * r].reshape(4, r) if not compiled.hard_balance else None
        else:
            self.dev_w_cost = self.dev_p_cost = np.zeros(r)
            self.soft_cost = None
        target_w, target_p = compiled.target_workload, compiled.target_potential
        self.target_w, self.target_p = target_w, target_p
        self.w_lo, self.w_hi = compiled.workload_band
        self.p_lo, self.p_hi = compiled.potential_band
        self.banded = target_w > 0
        self.w_unit = np.where(target_w > 0, 100.0 / np.maximum(target_w, 1e-9), 100.0 / np.maximum(
            inputs.rep_capacity, 1.0))
        self.p_unit = np.where(target_p > 0, 100.0 / np.maximum(target_p, 1e-9), 0.0)
        self.capacity = inputs.rep_capacity
        self.max_accounts = np.where(inputs.rep_max_accounts >= 0, inputs.rep_max_accounts, np.inf)
        self.count_cap, self.potential_cap = compiled.moved_cap
        self.account_potential = inputs.account_potential
        self.hard_bands = compiled.mode == "balanced" and compiled.hard_balance

    # -- scoring --------------------------------------------------------------------------------

    def _rep_cost(self, workload: np.ndarray, potential: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Objective terms that depend on a rep's loads: deviation from target, soft band misses."""
        cost = (self.dev_w_cost[reps] * np.abs(workload - self.target_w[reps])
                + self.dev_p_cost[reps] * np.abs(potential - self.target_p[reps]))
        if self.soft_cost is not None:
            soft = self.soft_cost[:, reps]
            cost = cost + (soft[0] * np.maximum(self.w_lo[reps] - workload, 0)
                           + soft[1] * np.maximum(workload - self.w_hi[reps], 0)
                           + soft[2] * np.maximum(self.p_lo[reps] - potential, 0)
                           + soft[3] * np.maximum(potential - self.p_hi[reps], 0))
        return cost

    def _rep_penalty(self, workload: np.ndarray, potential: np.ndarray, count: np.ndarray,
                     reps: np.ndarray) -> np.ndarray:
        """PENALTY × how far a rep's loads break capacity, most accounts and hard bands."""
        broken = (_excess(workload, self.capacity[reps]) * self.w_unit[reps]
                  + np.maximum(count - self.max_accounts[reps], 0))
        if self.hard_bands:
            band = self.banded[reps]
            outside_w = _excess(self.w_lo[reps], workload) + _excess(workload, self.w_hi[reps])
            outside_p = _excess(self.p_lo[reps], potential) + _excess(potential, self.p_hi[reps])
            broken = broken + np.where(band, outside_w * self.w_unit[reps] + outside_p * self.p_unit[reps], 0)
        return PENALTY * broken

    def _moved_penalty(self, moved: np.ndarray | float, moved_potential: np.ndarray | float) -> np.ndarray:
        """PENALTY × how far the moved count and moved potential exceed their caps."""
        broken = np.zeros_like(np.asarray(moved, dtype=float))
        if self.count_cap is not None:
            broken = broken + _excess(np.asarray(moved, dtype=float), self.count_cap)
        if self.potential_cap is not None:
            broken = broken + _excess(np.asarray(moved_potential, dtype=float), self.potential_cap) * 100.0 / max(
                self.potential_cap, 1.0)
        return PENALTY * broken

    def state(self, chosen: np.ndarray) -> _State:
        taken = chosen[chosen >= 0]
        reps = self.c.pairs.rep[taken]
        r = self.num_reps
        moved_mask = (self.owner_pair >= 0) & (chosen != self.owner_pair)
        return _State(chosen.copy(), np.bincount(reps, self.c.pairs.workload[taken], minlength=r),
                      np.bincount(reps, self.pair_potential[taken], minlength=r),
                      np.bincount(reps, minlength=r).astype(float), int(moved_mask.sum()),
                      float(self.account_potential[moved_mask].sum()))

    def penalty(self, chosen: np.ndarray) -> float:
        """How far `chosen` breaks the hard constraints (0: it meets them all)."""
        s = self.state(chosen)
        reps = np.arange(self.num_reps)
        return float(self._rep_penalty(s.workload, s.potential, s.count, reps).sum()
                     + self._moved_penalty(s.moved, s.moved_potential))

    def broken_reps(self, chosen: np.ndarray) -> np.ndarray:
        """Reps whose loads break capacity, most accounts or a hard band."""
        s = self.state(chosen)
        reps = np.arange(self.num_reps)
        return np.flatnonzero(self._rep_penalty(s.workload, s.potential, s.count, reps) > 0)

    def moves_over_cap(self, chosen: np.ndarray) -> bool:
        s = self.state(chosen)
        return bool(self._moved_penalty(s.moved, s.moved_potential) > 0)

    def score(self, chosen: np.ndarray) -> float:
        """Objective (without its constant) plus the penalty for broken hard constraints."""
        s = self.state(chosen)
        linear = self.pair_cost[chosen[chosen >= 0]].sum() + self.unassigned_cost[chosen < 0].sum()
        reps = np.arange(self.num_reps)
        return float(linear + self._rep_cost(s.workload, s.potential, reps).sum() + self.penalty(chosen))

    def _rep_delta(self, s: _State, reps: np.ndarray, d_work: np.ndarray, d_pot: np.ndarray,
                   d_count: np.ndarray) -> np.ndarray:
        """Change of cost + penalty of `reps` when their loads change by the given amounts."""
        w, pt, n = s.workload[reps], s.potential[reps], s.count[reps]
        return (self._rep_cost(w + d_work, pt + d_pot, reps) + self._rep_penalty(w + d_work, pt + d_pot,
                                                                                  n + d_count, reps)
                - self._rep_cost(w, pt, reps) - self._rep_penalty(w, pt, n, reps))

    # -- search ---------------------------------------------------------------------------------

    def improve(self, chosen: np.ndarray, deadline: float, max_passes: int = 10_000) -> np.ndarray:
        """Apply improving moves until none is left, the deadline passes or max_passes is reached.

        Each pass scores every (account → other eligible rep) move at once, then applies the best
        improving moves that touch distinct reps, re-checking the global move caps as it goes.
        """
        s = self.state(chosen)
        pairs = self.c.pairs
        movable = ~self.locked[pairs.account]
        for _ in range(max_passes):
            if time.perf_counter() > deadline:
                break
            current = s.chosen[pairs.account]  # per pair: its account's current pair (-1 unassigned)
            idx = np.flatnonzero(movable & (current != np.arange(self.p)))
            if idx.size == 0:
                break
            a, old = pairs.account[idx], current[idx]
            has_old = old >= 0
            safe_old = np.maximum(old, 0)
            old_rep = np.where(has_old, pairs.rep[safe_old], 0)
            new_rep = pairs.rep[idx]
            w_new, w_old = pairs.workload[idx], np.where(has_old, pairs.workload[safe_old], 0.0)
            pot = self.pair_potential[idx]
            linear = self.pair_cost[idx] - np.where(has_old, self.pair_cost[safe_old], self.unassigned_cost[a])
            gain_new = self._rep_delta(s, new_rep, w_new, pot, np.ones_like(w_new))
            gain_old = np.where(has_old, self._rep_delta(s, old_rep, -w_old, -pot, -np.ones_like(w_old)), 0.0)
            owner = self.owner_pair[a]
            moved_delta = np.where(owner >= 0, (idx != owner).astype(int) - (old != owner).astype(int), 0)
            account_pot = self.account_potential[a]
            moved_change = (self._moved_penalty(s.moved + moved_delta, s.moved_potential + moved_delta * account_pot)
                            - self._moved_penalty(s.moved, s.moved_potential))
            delta = linear + gain_new + gain_old + moved_change
            improving = np.flatnonzero(delta < -1e-9)
            if improving.size == 0:
                break
            touched = np.zeros(self.num_reps, dtype=bool)
            done = np.zeros(len(s.chosen), dtype=bool)
            applied = 0
            for k in improving[np.argsort(delta[improving], kind="stable")]:
                r_new, r_old, account = new_rep[k], old_rep[k], a[k]
                if touched[r_new] or (has_old[k] and touched[r_old]) or done[account]:
                    continue
                if moved_delta[k] > 0:  # caps are global: re-check against the state as it is now
                    now = self._moved_penalty(s.moved + 1, s.moved_potential + account_pot[k]) - \
                        self._moved_penalty(s.moved, s.moved_potential)
                    if delta[k] - moved_change[k] + now >= -1e-9:
                        continue
                touched[r_new] = done[account] = True
                if has_old[k]:
                    touched[r_old] = True
                    s.workload[r_old] -= w_old[k]
                    s.potential[r_old] -= pot[k]
                    s.count[r_old] -= 1
                s.workload[r_new] += w_new[k]
                s.potential[r_new] += pot[k]
                s.count[r_new] += 1
                s.moved += int(moved_delta[k])
                s.moved_potential += moved_delta[k] * account_pot[k]
                s.chosen[account] = idx[k]
                applied += 1
            if applied == 0:
                break
        return s.chosen


def regret_greedy(compiled: CompiledAssignment) -> np.ndarray:
    """A construction: locked accounts first, then by regret (second-cheapest minus cheapest pair),
    each to its cheapest rep that still has room under capacity, band top and most accounts."""
    inputs, pairs = compiled.inputs, compiled.pairs
    p = len(pairs)
    cost = compiled.model.cost[:p]
    start = compiled.pair_start
    room = compiled.workload_ceiling.astype(float)
    slots = np.where(inputs.rep_max_accounts >= 0, inputs.rep_max_accounts, np.iinfo(np.int64).max).astype(float)
    chosen = np.full(inputs.num_accounts, -1, dtype=np.int64)

    best = np.full(inputs.num_accounts, np.inf)
    second = np.full(inputs.num_accounts, np.inf)
    counts = np.diff(start)
    has = counts > 0
    order_in = np.lexsort((cost, pairs.account))
    first_index = start[:-1][has]
    best[has] = cost[order_in[first_index]]
    two = counts >= 2
    second[two] = cost[order_in[start[:-1][two] + 1]]
    regret = np.where(np.isfinite(second), second - best, np.inf)
    order = np.lexsort((-inputs.account_workload, -regret, ~inputs.account_locked))
    for account in order:
        lo, hi = start[account], start[account + 1]
        if lo == hi:
            continue
        candidates = np.arange(lo, hi)
        reps = pairs.rep[candidates]
        fits = (pairs.workload[candidates] <= room[reps] + 1e-9) & (slots[reps] >= 1)
        if inputs.account_locked[account]:
            fits = np.ones_like(fits)
        if not fits.any():
            continue
        pick = candidates[fits][np.argmin(cost[candidates[fits]])]
        chosen[account] = pick
        room[pairs.rep[pick]] -= pairs.workload[pick]
        slots[pairs.rep[pick]] -= 1
    return chosen
