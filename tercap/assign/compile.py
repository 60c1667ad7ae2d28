"""Compile a Scenario's assignment question into a solver-neutral LinearModel, vectorised.

Columns: x (one per eligible pair, binary), u (one per account: left unassigned), and per rep the
deviation of workload and potential from target (and band slacks when balance is soft). Every row
has a family name so that diagnosis and the checker can name what binds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from tercap.assign.eligibility import Pairs, eligible_pairs, pairs_of, required_experience
from tercap.assign.inputs import AssignmentInputs, TerritoryGroups, read_inputs
from tercap.model import INF, LinearModel, RowBuilder
from tercap.scenario import Scenario

PERCENT = 100.0

# Constraint families, in the words a diagnosis uses.
FAMILY_TEXT = {
    "assign": "every account to exactly one rep",
    "capacity": "rep capacity (workload ≤ capacity)",
    "max_accounts": "most accounts a rep can carry",
    "workload_balance": "workload balance band",
    "potential_balance": "potential balance band",
    "moved_share": "cap on the share of accounts moved",
    "moved_potential_share": "cap on the share of potential moved",
    "definition": "definitions",
}


@dataclass(frozen=True, eq=False)
class CompiledAssignment:
    """The model, and what maps its columns back to accounts and reps."""

    inputs: AssignmentInputs
    pairs: Pairs
    model: LinearModel
    mode: str
    target_workload: np.ndarray  # per rep, hours over the period
    workload_band: tuple[np.ndarray, np.ndarray]
    target_potential: np.ndarray
    potential_band: tuple[np.ndarray, np.ndarray]
    hard_balance: bool
    moved_cap: tuple[float | None, float | None]  # (count, potential) most that may move
    pair_start: np.ndarray  # pairs of account a are pair_start[a]:pair_start[a + 1]
    widening: int = 0  # how often the k-nearest neighbourhoods were doubled
    reach: tuple[np.ndarray, np.ndarray] | None = None  # (account, rep) pairs added beyond the nearest reps

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    @property
    def owner_pair(self) -> np.ndarray:
        """Per account, the pair index of its current owner, or -1."""
        owner = self.inputs.account_owner
        found = np.full(self.inputs.num_accounts, -1, dtype=np.int64)
        is_owner = self.pairs.rep == owner[self.pairs.account]
        found[self.pairs.account[is_owner]] = np.flatnonzero(is_owner)
        return found

    @property
    def workload_ceiling(self) -> np.ndarray:
        """Per rep, the most workload a plan may give it: capacity, or the hard band's top if lower."""
        capacity = self.inputs.rep_capacity
        if self.mode != "balanced" or not self.hard_balance:
            return capacity.copy()
        return np.where(self.target_workload > 0, np.minimum(capacity, self.workload_band[1]), capacity)

    def choice_from(self, x: np.ndarray) -> np.ndarray:
        """Per account, the chosen pair index (or -1: unassigned), from an integral solution."""
        chosen = np.full(self.inputs.num_accounts, -1, dtype=np.int64)
        picked = np.flatnonzero(x[: self.num_pairs] > 0.5)
        chosen[self.pairs.account[picked]] = picked
        return chosen

    def solution_from(self, chosen: np.ndarray) -> np.ndarray:
        """The full column vector of the assignment `chosen` (pair index per account, -1 none)."""
        p, a, r = self.num_pairs, self.inputs.num_accounts, self.inputs.num_reps
        x = np.zeros(self.model.num_cols)
        taken = chosen[chosen >= 0]
        x[taken] = 1.0
        x[p + np.flatnonzero(chosen < 0)] = 1.0
        if self.mode == "cost":
            return x
        workload = np.bincount(self.pairs.rep[taken], self.pairs.workload[taken], minlength=r)
        potential = np.bincount(self.pairs.rep[taken], self.inputs.account_potential[self.pairs.account[taken]],
                                minlength=r)
        base = p + a
        x[base: base + r] = np.abs(workload - self.target_workload)
        x[base + r: base + 2 * r] = np.abs(potential - self.target_potential)
        if not self.hard_balance:
            (w_lo, w_hi), (p_lo, p_hi) = self.workload_band, self.potential_band
            slack = base + 2 * r
            x[slack: slack + r] = np.maximum(w_lo - workload, 0)
            x[slack + r: slack + 2 * r] = np.maximum(workload - w_hi, 0)
            x[slack + 2 * r: slack + 3 * r] = np.maximum(p_lo - potential, 0)
            x[slack + 3 * r: slack + 4 * r] = np.maximum(potential - p_hi, 0)
        return x


def compile_assignment(scenario: Scenario, widening: int = 0,
                       reach: tuple[np.ndarray, np.ndarray] | None = None,
                       owners: pd.Series | None = None, territories: TerritoryGroups | None = None
                       ) -> CompiledAssignment:
    """Compile `scenario` (mode balanced or cost) into a LinearModel; `widening` enlarges the
    k-nearest neighbourhoods (see eligibility.nearness); `reach` adds (account, rep) pairs beyond them.
    `owners` (rep_id by account_id) replaces eligibility with one given pair per account (none where
    the owner is missing or not an active rep): the model of a plan made elsewhere, e.g. by territories.
    `territories`: accounts go to reps of their own territory, balanced within it."""
    settings = scenario.settings.assignment
    inputs = read_inputs(scenario, territories)
    if owners is None:
        pairs = eligible_pairs(inputs, settings.eligibility, scenario.pairs, widening, reach)
    else:
        rep = pd.Index(inputs.rep_ids).get_indexer(owners.reindex(inputs.account_ids).astype(object))
        given = np.flatnonzero(rep >= 0)
        pairs = pairs_of(inputs, given * inputs.num_reps + rep[given], scenario.pairs)
    if settings.mode == "cost":
        compiled = _compile_cost(inputs, pairs, settings.weights.unassigned_penalty)
    else:
        compiled = _compile_balanced(scenario, inputs, pairs)
    return replace(compiled, widening=widening, reach=reach)


def _pair_start(pairs: Pairs, num_accounts: int) -> np.ndarray:
    return np.searchsorted(pairs.account, np.arange(num_accounts + 1))


def _core_rows(rows: RowBuilder, inputs: AssignmentInputs, pairs: Pairs) -> None:
    """Rows both modes share: one rep per account (or unassigned), capacity, most accounts."""
    p, a = len(pairs), inputs.num_accounts
    rows.add("assign", np.concatenate([pairs.account, np.arange(a)]),
             np.concatenate([np.arange(p), p + np.arange(a)]), np.ones(p + a),
             np.ones(a), np.ones(a), np.arange(a))
    r = inputs.num_reps
    rows.add("capacity", pairs.rep, np.arange(p), pairs.workload, np.full(r, -INF), inputs.rep_capacity,
             np.arange(r))
    limited = np.flatnonzero(inputs.rep_max_accounts >= 0)
    position = np.full(r, -1)
    position[limited] = np.arange(limited.size)
    in_limit = position[pairs.rep] >= 0
    rows.add("max_accounts", position[pairs.rep[in_limit]], np.flatnonzero(in_limit), np.ones(in_limit.sum()),
             np.full(limited.size, -INF), inputs.rep_max_accounts[limited].astype(float), limited)


def _bounds(inputs: AssignmentInputs, pairs: Pairs, extra_cols: int) -> tuple[np.ndarray, np.ndarray]:
    p, a = len(pairs), inputs.num_accounts
    lower = np.zeros(p + a + extra_cols)
    upper = np.concatenate([np.ones(p + a), np.full(extra_cols, INF)])
    locked = inputs.account_locked[pairs.account] & (pairs.rep == inputs.account_owner[pairs.account])
    lower[np.flatnonzero(locked)] = 1.0
    return lower, upper


def _compile_cost(inputs: AssignmentInputs, pairs: Pairs, penalty: float) -> CompiledAssignment:
    p, a, r = len(pairs), inputs.num_accounts, inputs.num_reps
    rows = RowBuilder(p + a)
    _core_rows(rows, inputs, pairs)
    matrix, row_lower, row_upper, family, owner = rows.build()
    col_lower, col_upper = _bounds(inputs, pairs, 0)
    terms = {"cost": (np.concatenate([pairs.travel, np.zeros(a)]), 0.0),
             "unassigned": (np.concatenate([np.zeros(p), np.ones(a)]), 0.0)}
    weights = {"cost": 1.0, "unassigned": penalty}
    model = LinearModel(cost=_weighted(terms, weights, p + a), matrix=matrix, row_lower=row_lower,
                        row_upper=row_upper, col_lower=col_lower, col_upper=col_upper,
                        integral=np.concatenate([np.ones(p + a, dtype=bool)]), row_family=family,
                        row_owner=owner, terms=terms, weights=weights)
    zeros = np.zeros(r)
    return CompiledAssignment(inputs, pairs, model, "cost", zeros, (zeros, zeros), zeros, (zeros, zeros),
                              True, (None, None), _pair_start(pairs, a))


def _weighted(terms: dict[str, tuple[np.ndarray, float]], weights: dict[str, float], n: int) -> np.ndarray:
    cost = np.zeros(n)
    for name, (vector, _) in terms.items():
        cost += weights[name] * vector
    return cost


def _targets(inputs: AssignmentInputs, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """Per rep: target workload (its group's utilisation × capacity) and expected potential."""
    assignable = np.zeros(inputs.num_accounts, dtype=bool)
    assignable[pairs.account] = True
    groups = len(inputs.group_names)
    active = inputs.rep_capacity > 0
    work = np.bincount(inputs.account_group[assignable], inputs.account_workload[assignable], minlength=groups)
    capacity = np.bincount(inputs.rep_group[active], inputs.rep_capacity[active], minlength=groups)
    utilisation = np.minimum(1.0, np.divide(work, capacity, out=np.zeros(groups), where=capacity > 0))
    target_workload = np.where(active, utilisation[inputs.rep_group] * inputs.rep_capacity, 0.0)
    potential = np.bincount(inputs.account_group[assignable], inputs.account_potential[assignable],
                            minlength=groups)
    weight = np.where(active, inputs.rep_share_weight, 0.0)
    weight_sum = np.bincount(inputs.rep_group, weight, minlength=groups)
    share = np.divide(weight, weight_sum[inputs.rep_group], out=np.zeros_like(weight),
                      where=weight_sum[inputs.rep_group] > 0)
    return target_workload, share * potential[inputs.rep_group]


def _compile_balanced(scenario: Scenario, inputs: AssignmentInputs, pairs: Pairs) -> CompiledAssignment:
    settings = scenario.settings.assignment
    balance, weights = settings.balance, settings.weights
    p, a, r = len(pairs), inputs.num_accounts, inputs.num_reps
    hard = balance.hard
    extra = 2 * r + (0 if hard else 4 * r)
    n = p + a + extra
    dev_w, dev_p = p + a + np.arange(r), p + a + r + np.arange(r)
    slack = p + a + 2 * r
    rows = RowBuilder(n)
    _core_rows(rows, inputs, pairs)

    target_w, target_p = _targets(inputs, pairs)
    w_lo, w_hi = (1 - balance.workload_tolerance) * target_w, np.minimum(
        (1 + balance.workload_tolerance) * target_w, inputs.rep_capacity)
    p_lo, p_hi = (1 - balance.potential_tolerance) * target_p, (1 + balance.potential_tolerance) * target_p
    # a rep whose band top is below the smallest account it may take (a hire there a few weeks of the
    # period, a rep among large accounts only) can carry no account at all: it keeps the top, no floor
    smallest = np.full(r, np.inf)
    np.minimum.at(smallest, pairs.rep, pairs.workload)
    no_floor = w_hi < smallest
    w_lo, p_lo = np.where(no_floor, 0.0, w_lo), np.where(no_floor, 0.0, p_lo)
    balanced = np.flatnonzero(target_w > 0)
    position = np.full(r, -1)
    position[balanced] = np.arange(balanced.size)
    in_band = position[pairs.rep] >= 0
    band_pairs = np.flatnonzero(in_band)
    band_rows = position[pairs.rep[in_band]]
    pair_potential = inputs.account_potential[pairs.account]
    for family, values, lo, hi, slack_lo, slack_hi in (
            ("workload_balance", pairs.workload, w_lo, w_hi, slack, slack + r),
            ("potential_balance", pair_potential, p_lo, p_hi, slack + 2 * r, slack + 3 * r)):
        if hard:
            rows.add(family, band_rows, band_pairs, values[in_band], lo[balanced], hi[balanced], balanced)
        else:  # lo ≤ Σ + s_lo and Σ − s_hi ≤ hi
            for bound_side, slack_col, sign in (("lower", slack_lo, 1.0), ("upper", slack_hi, -1.0)):
                cols = np.concatenate([band_pairs, slack_col + balanced])
                vals = np.concatenate([values[in_band], np.full(balanced.size, sign)])
                row_index = np.concatenate([band_rows, np.arange(balanced.size)])
                lower = lo[balanced] if bound_side == "lower" else np.full(balanced.size, -INF)
                upper = np.full(balanced.size, INF) if bound_side == "lower" else hi[balanced]
                rows.add(family, row_index, cols, vals, lower, upper, balanced)

    for values, target, dev in ((pairs.workload, target_w, dev_w), (pair_potential, target_p, dev_p)):
        for sign, lower, upper in ((-1.0, np.full(balanced.size, -INF), target[balanced]),
                                   (1.0, target[balanced], np.full(balanced.size, INF))):
            cols = np.concatenate([band_pairs, dev[balanced]])
            vals = np.concatenate([values[in_band], np.full(balanced.size, sign)])
            rows.add("definition", np.concatenate([band_rows, np.arange(balanced.size)]), cols, vals,
                     lower, upper, balanced)

    owner_pair = np.flatnonzero(pairs.rep == inputs.account_owner[pairs.account])
    owned = inputs.account_owner >= 0
    owned_potential = float(inputs.account_potential[owned].sum())
    continuity = settings.continuity
    count_cap = potential_cap = None
    if continuity.max_moved_share is not None and owned.any():
        count_cap = float(np.floor(continuity.max_moved_share * owned.sum() + 1e-9))
        rows.add("moved_share", np.zeros(owner_pair.size), owner_pair, np.ones(owner_pair.size),
                 np.array([owned.sum() - count_cap]), np.array([INF]), np.array([-1]))
    if continuity.max_moved_potential_share is not None and owned_potential > 0:
        potential_cap = continuity.max_moved_potential_share * owned_potential
        rows.add("moved_potential_share", np.zeros(owner_pair.size), owner_pair,
                 inputs.account_potential[pairs.account[owner_pair]],
                 np.array([owned_potential - potential_cap]), np.array([INF]), np.array([-1]))
    matrix, row_lower, row_upper, family, owner = rows.build()

    total_work = max(float(inputs.account_workload[np.unique(pairs.account)].sum()), 1e-9)
    industry = inputs.account_industry[pairs.account]
    mismatch = ((industry >= 0) & ~inputs.rep_knows[pairs.rep, np.maximum(industry, 0)]).astype(float) \
        if inputs.rep_knows.size else np.zeros(p)
    demanding = inputs.account_complex | inputs.account_top | (required_experience(
        inputs, settings.eligibility) > 0)
    demanding_work = float(inputs.account_workload[demanding].sum())
    shortfall = np.clip(1 - inputs.rep_experience[pairs.rep] / settings.experience_reference_years, 0, 1)
    dev_scale = np.zeros(r)
    dev_scale[balanced] = PERCENT / 2 / balanced.size if balanced.size else 0.0

    def vector(entries: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """A column vector with `values` at `cols` for each (cols, values)."""
        out = np.zeros(n)
        for cols, values in entries:
            out[cols] = values
        return out

    terms = {
        "travel": (vector([(np.arange(p), pairs.travel * pairs.workload / total_work)]), 0.0),
        "balance": (vector([(dev_w[balanced], dev_scale[balanced] / target_w[balanced]),
                            (dev_p[balanced], dev_scale[balanced] / np.maximum(target_p[balanced], 1e-9))]),
                    0.0),
        "industry_fit": (vector([(np.arange(p), PERCENT * pairs.workload * mismatch / total_work)]), 0.0),
        "experience_fit": (vector([(np.arange(p), PERCENT * pairs.workload * shortfall
                                    * demanding[pairs.account] / max(demanding_work, 1e-9))]), 0.0),
        "continuity": (vector([(owner_pair, -PERCENT * pair_potential[owner_pair] / max(owned_potential, 1e-9))]),
                       PERCENT if owned_potential > 0 else 0.0),
        "unassigned": (vector([(p + np.arange(a), np.ones(a))]), 0.0),
    }
    term_weights = {"travel": weights.travel, "balance": weights.balance, "industry_fit": weights.industry_fit,
                    "experience_fit": weights.experience_fit, "continuity": weights.continuity,
                    "unassigned": weights.unassigned_penalty}
    if not hard:
        scale = np.zeros(r)
        scale[balanced] = PERCENT / target_w[balanced]
        pot_scale = np.zeros(r)
        pot_scale[balanced] = PERCENT / np.maximum(target_p[balanced], 1e-9)
        terms["band_violation"] = (vector([(slack + np.arange(r), scale), (slack + r + np.arange(r), scale),
                                           (slack + 2 * r + np.arange(r), pot_scale),
                                           (slack + 3 * r + np.arange(r), pot_scale)]), 0.0)
        term_weights["band_violation"] = weights.band_violation
    col_lower, col_upper = _bounds(inputs, pairs, extra)
    integral = np.zeros(n, dtype=bool)
    integral[: p + a] = True
    offset = sum(term_weights[name] * off for name, (_, off) in terms.items())
    model = LinearModel(cost=_weighted(terms, term_weights, n), matrix=matrix, row_lower=row_lower,
                        row_upper=row_upper, col_lower=col_lower, col_upper=col_upper, integral=integral,
                        offset=offset, row_family=family, row_owner=owner, terms=terms, weights=term_weights)
    return CompiledAssignment(inputs, pairs, model, "balanced", target_w, (w_lo, w_hi), target_p, (p_lo, p_hi),
                              hard, (count_cap, potential_cap), _pair_start(pairs, a))
