"""Construction and local search on an assignment: regret greedy, then moves, swaps and ejection chains.

Both work on `chosen` (per account, the index of its chosen pair, or -1 for unassigned) and score a
plan as the model's objective plus a large penalty per unit of any hard constraint it breaks, so the
same search repairs an infeasible start and improves a feasible one. Every candidate of a neighbourhood
is scored at once with numpy; each pass applies the best improving candidates that touch distinct reps.
Swaps and chains are built from a bounded pool of moves per pair of reps, so a pass stays O(pairs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tercap.assign.compile import CompiledAssignment

PENALTY = 1e5  # per % of a rep's target (or per account) by which a hard constraint is broken
RELATIVE_SLACK = 1e-9  # sums of floats may pass a bound by this much without breaking it
IMPROVEMENT = 1e-9  # a step must lower the score by more than this
POOL_BEST = 8  # per directed pair of reps: the moves that lower the objective most enter swaps and chains
POOL_SAMPLED = 4  # ... and this many more drawn at random, for variety
CHAIN_WIDTH = 12  # per rep: incoming and outgoing pool moves combined into chains through it
PICK_DEPTH = 8  # a pass looks at a rep's best this many candidates only
SEED = 0


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


@dataclass(frozen=True)
class _Moves:
    """The single-account moves open from a state: `account` from its pair at `from_rep` (-1: it is
    unassigned) to `pair` at `to_rep`."""

    pair: np.ndarray
    account: np.ndarray
    from_rep: np.ndarray
    to_rep: np.ndarray
    w_in: np.ndarray  # workload the move adds at to_rep
    w_out: np.ndarray  # workload it takes from from_rep (0 when unassigned)
    potential: np.ndarray
    linear: np.ndarray  # change of the pair costs (and of the unassigned penalty)
    moved: np.ndarray  # change of the number of accounts away from their owner: -1, 0 or 1
    arrive_cost: np.ndarray  # change of to_rep's cost when this move alone is made
    arrive_penalty: np.ndarray
    leave_cost: np.ndarray  # change of from_rep's cost (0 when unassigned)
    leave_penalty: np.ndarray

    def __len__(self) -> int:
        return self.pair.size


@dataclass(frozen=True)
class _Candidates:
    """Improving compound steps: up to 3 moves each (-1: none) and the reps they touch (-1: none)."""

    moves: np.ndarray  # n × 3 indices into _Moves
    reps: np.ndarray  # n × 4
    change: np.ndarray  # of the score
    penalty_change: np.ndarray  # the part of the change from hard constraints (≤ 0)
    moved_change: np.ndarray  # the part from the caps on moves, which later steps of a pass may alter

    @staticmethod
    def join(*found: _Candidates) -> _Candidates:
        return _Candidates(*(np.concatenate([getattr(f, name) for f in found])
                             for name in ("moves", "reps", "change", "penalty_change", "moved_change")))


class LocalSearch:
    """Local search by moves, swaps and ejection chains under the hard constraints of a compiled assignment."""

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
        # the bounds as _excess reads them (float slack folded in), ±inf where a rep has no hard band
        hard = self.hard_bands & self.banded
        self.capacity_top = self.capacity + RELATIVE_SLACK * (1 + np.abs(self.capacity))
        self.w_top = np.where(hard, self.w_hi + RELATIVE_SLACK * (1 + np.abs(self.w_hi)), np.inf)
        self.p_top = np.where(hard, self.p_hi + RELATIVE_SLACK * (1 + np.abs(self.p_hi)), np.inf)
        self.w_floor = np.where(hard, self.w_lo - RELATIVE_SLACK, -np.inf)
        self.p_floor = np.where(hard, self.p_lo - RELATIVE_SLACK, -np.inf)

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
        """PENALTY × how far a rep's loads break capacity, most accounts and hard bands.

        As _excess, written out for speed: below a floor by more than RELATIVE_SLACK × (1 + load), loads ≥ 0."""
        stretch = 1.0 + RELATIVE_SLACK
        outside_w = (np.maximum(workload - self.capacity_top[reps], 0) + np.maximum(workload - self.w_top[reps], 0)
                     + np.maximum(self.w_floor[reps] - stretch * workload, 0))
        outside_p = (np.maximum(potential - self.p_top[reps], 0)
                     + np.maximum(self.p_floor[reps] - stretch * potential, 0))
        return PENALTY * (outside_w * self.w_unit[reps] + outside_p * self.p_unit[reps]
                          + np.maximum(count - self.max_accounts[reps], 0))

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
                   d_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(change of cost, change of penalty) of `reps` when their loads change by the given amounts."""
        every = np.arange(self.num_reps)
        cost_now = self._rep_cost(s.workload, s.potential, every)
        penalty_now = self._rep_penalty(s.workload, s.potential, s.count, every)
        w, pt, n = s.workload[reps] + d_work, s.potential[reps] + d_pot, s.count[reps] + d_count
        return (self._rep_cost(w, pt, reps) - cost_now[reps],
                self._rep_penalty(w, pt, n, reps) - penalty_now[reps])

    # -- neighbourhoods -------------------------------------------------------------------------

    def _moves(self, s: _State, movable: np.ndarray) -> _Moves:
        """Every move of a movable account from its current pair to another of its pairs."""
        pairs = self.c.pairs
        current = s.chosen[pairs.account]  # per pair: its account's current pair (-1 unassigned)
        idx = np.flatnonzero(movable & (current != np.arange(self.p)))
        account, old = pairs.account[idx], current[idx]
        has_old = old >= 0
        safe_old = np.maximum(old, 0)
        owner = self.owner_pair[account]
        to_rep, from_rep = pairs.rep[idx], pairs.rep[safe_old]
        w_in, w_out = pairs.workload[idx], np.where(has_old, pairs.workload[safe_old], 0.0)
        potential, one = self.pair_potential[idx], np.ones(idx.size)
        arrive_cost, arrive_penalty = self._rep_delta(s, to_rep, w_in, potential, one)
        leave_cost, leave_penalty = self._rep_delta(s, from_rep, -w_out, -potential, -one)
        return _Moves(
            pair=idx, account=account, from_rep=np.where(has_old, from_rep, -1), to_rep=to_rep, w_in=w_in, w_out=w_out,
            potential=potential,
            linear=self.pair_cost[idx] - np.where(has_old, self.pair_cost[safe_old], self.unassigned_cost[account]),
            moved=np.where(owner >= 0, (idx != owner).astype(int) - (old != owner).astype(int), 0),
            arrive_cost=arrive_cost, arrive_penalty=arrive_penalty, leave_cost=np.where(has_old, leave_cost, 0.0),
            leave_penalty=np.where(has_old, leave_penalty, 0.0))

    def _edge(self, m: _Moves, moves: np.ndarray, reverse: bool = False) -> np.ndarray:
        """Per move, a number for its directed rep pair (from, to), or (to, from) when `reverse`."""
        source = np.where(m.from_rep[moves] >= 0, m.from_rep[moves], self.num_reps)  # num_reps: unassigned
        if reverse:
            return m.to_rep[moves].astype(np.int64) * (self.num_reps + 1) + source
        return source.astype(np.int64) * (self.num_reps + 1) + m.to_rep[moves]

    def _pool(self, m: _Moves, rng: np.random.Generator) -> np.ndarray:
        """The moves that make up swaps and chains, so a pass stays O(pairs): per directed pair of reps,
        the POOL_BEST that lower the objective most on their own and POOL_SAMPLED of the rest at random."""
        edge = self._edge(m, np.arange(len(m)))
        order = np.lexsort((m.linear + m.arrive_cost + m.leave_cost, edge))  # stable
        start, size = _groups(edge[order])
        rest = np.maximum(size - POOL_BEST, 0)
        draw = (rng.random((start.size, POOL_SAMPLED)) * rest[:, None]).astype(np.int64)
        sampled = (start + POOL_BEST)[:, None] + draw
        best = start[:, None] + np.arange(POOL_BEST)
        picked = np.concatenate([best[np.arange(POOL_BEST) < size[:, None]], sampled[rest > 0].ravel()])
        return np.unique(order[picked])

    def _swaps(self, m: _Moves, pool: np.ndarray) -> list[np.ndarray]:
        """Swaps as [a's move r1 → r2, b's move r2 → r1], every pair of pool moves between two reps."""
        pool = pool[m.from_rep[pool] >= 0]
        edge = self._edge(m, pool)
        order = np.argsort(edge, kind="stable")
        by_edge, edge_sorted = pool[order], edge[order]
        first = pool[m.from_rep[pool] < m.to_rep[pool]]  # each unordered rep pair once
        back = self._edge(m, first, reverse=True)
        owner, position = _expand(np.searchsorted(edge_sorted, back, "left"),
                                  np.searchsorted(edge_sorted, back, "right"))
        return [first[owner], by_edge[position]]

    def _chains(self, m: _Moves, pool: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Ejection chains through each rep r2: paths [a: r1 → r2, b: r2 → r3] and cycles that close
        them with [c: r3 → r1]. Per rep, CHAIN_WIDTH incoming and outgoing pool moves meet, ranked by
        their cost away from r2 (leaving r1, arriving at r3)."""
        assigned = m.from_rep[pool] >= 0
        leave = m.linear[pool] + m.leave_cost[pool] + m.leave_penalty[pool]
        arrive = m.linear[pool] + m.arrive_cost[pool] + m.arrive_penalty[pool]
        incoming = pool[_least_per_group(m.to_rep[pool], leave, CHAIN_WIDTH)]
        outgoing = pool[assigned][_least_per_group(m.from_rep[pool][assigned], arrive[assigned], CHAIN_WIDTH)]
        outgoing = outgoing[np.argsort(m.from_rep[outgoing], kind="stable")]
        out_from = m.from_rep[outgoing]
        owner, position = _expand(np.searchsorted(out_from, m.to_rep[incoming], "left"),
                                  np.searchsorted(out_from, m.to_rep[incoming], "right"))
        first, second = incoming[owner], outgoing[position]
        keep = m.to_rep[second] != m.from_rep[first]  # r3 = r1 is a swap
        first, second = first[keep], second[keep]

        closable = m.from_rep[first] >= 0
        first_c, second_c = first[closable], second[closable]
        closing = pool[assigned]
        edge = self._edge(m, closing)
        order = np.argsort(edge, kind="stable")
        closing, edge = closing[order], edge[order]
        wanted = m.to_rep[second_c].astype(np.int64) * (self.num_reps + 1) + m.from_rep[first_c]
        owner, position = _expand(np.searchsorted(edge, wanted, "left"), np.searchsorted(edge, wanted, "right"))
        return [first, second], [first_c[owner], second_c[owner], closing[position]]

    # -- scoring and applying compound moves ----------------------------------------------------

    def _score(self, s: _State, m: _Moves, parts: list[np.ndarray], closed: bool) -> _Candidates:
        """The improving chains among `parts` (part j moves an account away from the rep that part j-1
        moved one to; `closed`: the last rep sends one back to the first) that break no hard constraint
        more than now. A single move is an open chain of one part, a swap a closed chain of two."""
        zero = np.zeros(len(parts[0]))
        change = sum((m.linear[k] for k in parts), zero)
        penalty_change = zero
        if not closed:  # the ends change as they would by their own move
            first, last = parts[0], parts[-1]
            penalty_change = m.leave_penalty[first] + m.arrive_penalty[last]
            change = change + m.leave_cost[first] + m.arrive_cost[last] + penalty_change
        for j, k in enumerate(parts if closed else parts[:-1]):
            after = parts[(j + 1) % len(parts)]  # it takes an account from the rep k moved one to
            cost, penalty = self._rep_delta(s, m.to_rep[k], m.w_in[k] - m.w_out[after],
                                            m.potential[k] - m.potential[after], zero)
            change, penalty_change = change + cost + penalty, penalty_change + penalty
        moved = sum((m.moved[k] for k in parts), zero)
        moved_potential = sum((m.moved[k] * m.potential[k] for k in parts), zero)
        moved_change = (self._moved_penalty(s.moved + moved, s.moved_potential + moved_potential)
                        - self._moved_penalty(s.moved, s.moved_potential))
        change, penalty_change = change + moved_change, penalty_change + moved_change
        good = np.flatnonzero((change < -IMPROVEMENT) & (penalty_change <= 0))
        moves = np.full((good.size, 3), -1, dtype=np.int64)
        reps = np.full((good.size, 4), -1, dtype=np.int64)
        for j, k in enumerate(parts):
            moves[:, j] = k[good]
            reps[:, j] = m.to_rep[k[good]]
        if not closed:
            reps[:, len(parts)] = m.from_rep[parts[0][good]]
        return _Candidates(moves, reps, change[good], penalty_change[good], moved_change[good])

    def _apply(self, s: _State, m: _Moves, found: _Candidates) -> int:
        """Apply the best candidates that touch distinct reps and accounts; return how many."""
        touched = np.zeros(self.num_reps, dtype=bool)
        done = np.zeros(len(s.chosen), dtype=bool)
        applied = 0
        for i in _likely_picks(found.change, found.reps):
            moves = found.moves[i][found.moves[i] >= 0]
            reps = found.reps[i][found.reps[i] >= 0]
            accounts = m.account[moves]
            if touched[reps].any() or done[accounts].any():
                continue
            moved = int(m.moved[moves].sum())
            if moved or found.moved_change[i]:  # the caps are global: re-check against the state as it is now
                moved_potential = float((m.moved[moves] * m.potential[moves]).sum())
                now = float(self._moved_penalty(s.moved + moved, s.moved_potential + moved_potential)
                            - self._moved_penalty(s.moved, s.moved_potential))
                if (found.change[i] - found.moved_change[i] + now >= -IMPROVEMENT
                        or found.penalty_change[i] - found.moved_change[i] + now > 0):
                    continue
            touched[reps] = done[accounts] = True
            for k in moves:
                self._move(s, m, k)
            applied += 1
        return applied

    def _move(self, s: _State, m: _Moves, k: int) -> None:
        if m.from_rep[k] >= 0:
            s.workload[m.from_rep[k]] -= m.w_out[k]
            s.potential[m.from_rep[k]] -= m.potential[k]
            s.count[m.from_rep[k]] -= 1
        s.workload[m.to_rep[k]] += m.w_in[k]
        s.potential[m.to_rep[k]] += m.potential[k]
        s.count[m.to_rep[k]] += 1
        s.moved += int(m.moved[k])
        s.moved_potential += float(m.moved[k] * m.potential[k])
        s.chosen[m.account[k]] = m.pair[k]

    # -- search ---------------------------------------------------------------------------------

    def improve(self, chosen: np.ndarray, deadline: float, max_passes: int = 10_000) -> np.ndarray:
        """Apply improving moves, swaps and ejection chains until none is left, the deadline passes or
        max_passes is reached.

        Each pass scores every single move (account → another eligible rep) at once and applies the
        best ones on distinct reps. When none improves, it tries swaps of two accounts between two reps,
        then chains a: r1 → r2, b: r2 → r3 (closed by c: r3 → r1 or not), which shift load past reps
        held at a band's edge. A step never adds to the breach of a hard constraint, so a plan that meets
        them keeps meeting them. The sampling in the pools is seeded: the result depends on the machine's
        speed only through the deadline.
        """
        s = self.state(chosen)
        movable = ~self.locked[self.c.pairs.account]
        rng = np.random.default_rng(SEED)
        for _ in range(max_passes):
            if time.perf_counter() > deadline:
                break
            m = self._moves(s, movable)
            if len(m) == 0:
                break
            if self._apply(s, m, self._score(s, m, [np.arange(len(m))], closed=False)):
                continue
            if time.perf_counter() > deadline:
                break
            pool = self._pool(m, rng)
            if self._apply(s, m, self._score(s, m, self._swaps(m, pool), closed=True)):
                continue
            if time.perf_counter() > deadline:
                break
            paths, cycles = self._chains(m, pool)
            found = _Candidates.join(self._score(s, m, paths, closed=False), self._score(s, m, cycles, closed=True))
            if not self._apply(s, m, found):
                break
        return s.chosen


def _groups(grouped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and size of each run of equal values in a sorted array."""
    start = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    return start, np.diff(np.r_[start, grouped.size])


def _rank_in_group(grouped: np.ndarray) -> np.ndarray:
    """Per entry of a sorted array, its position within its run of equal values."""
    start, size = _groups(grouped)
    return np.arange(grouped.size) - np.repeat(start, size)


def _least_per_group(group: np.ndarray, key: np.ndarray, count: int) -> np.ndarray:
    """Sorted indices of the `count` entries of least `key` in each group (ties: lower index first)."""
    order = np.lexsort((key, group))  # stable
    return np.sort(order[_rank_in_group(group[order]) < count])


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges lo[i]:hi[i], every (i, position in the range), in order."""
    counts = hi - lo
    owner = np.repeat(np.arange(lo.size), counts)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, lo[owner] + offset


def _likely_picks(change: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """Candidates in order of change, leaving out those ranked PICK_DEPTH or worse at one of their reps:
    a pass takes one per rep, so deeper ones are almost never reached and would only cost time."""
    n, width = reps.shape
    owner = np.repeat(np.arange(n), width)
    flat = reps.ravel()
    real = flat >= 0
    owner, flat = owner[real], flat[real]
    order = np.lexsort((owner, change[owner], flat))
    rank = _rank_in_group(flat[order])
    worst = np.zeros(n, dtype=np.int64)
    np.maximum.at(worst, owner[order], rank)
    keep = np.flatnonzero(worst < PICK_DEPTH)
    return keep[np.argsort(change[keep], kind="stable")]


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
