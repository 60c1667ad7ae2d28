"""Eligible (account, rep) pairs: the only pairs that get a variable. Sparse and vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from tercap.assign.inputs import AssignmentInputs, haversine_km, unit_vectors
from tercap.scenario.schema import Eligibility

REVERSE_FILL = 2.0  # each rep sees enough of its nearest accounts to fill its fair share this many times
MAX_WIDENING = 3  # widening w multiplies k and the fill by 2**w; one more step drops nearness altogether


def nearness(rules: Eligibility, widening: int) -> tuple[int | None, float]:
    """(k nearest reps per account or None for all, reverse fill factor) after `widening` steps."""
    if rules.nearest_reps is None or widening > MAX_WIDENING:
        return None, REVERSE_FILL
    return rules.nearest_reps * 2**widening, REVERSE_FILL * 2**widening


@dataclass(frozen=True, eq=False)
class Pairs:
    """Eligible pairs, sorted by account then rep."""

    account: np.ndarray
    rep: np.ndarray
    workload: np.ndarray  # hours over the period (the account's, or the pairs table's)
    distance_km: np.ndarray
    travel: np.ndarray  # km-equivalent: the pairs table's cost, else the distance
    reached: np.ndarray  # bool: allowed only by reach (beyond the nearest reps, where the bands need it)

    def __len__(self) -> int:
        return len(self.account)

    def key(self, num_reps: int) -> np.ndarray:
        return self.account * num_reps + self.rep


def required_experience(inputs: AssignmentInputs, rules: Eligibility) -> np.ndarray:
    """Minimum experience each account asks of its rep."""
    return np.maximum(np.where(inputs.account_complex, rules.complex_min_experience, 0.0),
                      np.where(inputs.account_top, rules.top_min_experience, 0.0))


def _nearest(points: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Indices (len(targets) × k) of the k points nearest each target."""
    _, index = cKDTree(points).query(targets, k=k)
    return np.asarray(index).reshape(len(targets), k)


def _rule_pairs(inputs: AssignmentInputs, rules: Eligibility, widening: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs allowed by segment, experience and nearness, as (account, rep) arrays."""
    required = required_experience(inputs, rules)
    active = inputs.rep_capacity > 0
    account_xyz = unit_vectors(inputs.account_lat, inputs.account_lon)
    rep_xyz = unit_vectors(inputs.rep_lat, inputs.rep_lon)
    found_accounts: list[np.ndarray] = []
    found_reps: list[np.ndarray] = []
    for group in np.unique(inputs.account_group):
        in_group = np.flatnonzero(inputs.account_group == group)
        for need in np.unique(required[in_group]):
            accounts = in_group[required[in_group] == need]
            reps = np.flatnonzero(active & (inputs.rep_group == group) & (inputs.rep_experience >= need))
            if reps.size == 0:
                continue
            k, fill_factor = nearness(rules, widening)
            if k is None or reps.size <= k:  # every rep of the class
                found_accounts.append(np.repeat(accounts, reps.size))
                found_reps.append(np.tile(reps, accounts.size))
                continue
            near = _nearest(rep_xyz[reps], account_xyz[accounts], k)
            found_accounts.append(np.repeat(accounts, k))
            found_reps.append(reps[near.ravel()])
            fill = int(min(accounts.size, np.ceil(fill_factor * accounts.size / reps.size)))
            near_accounts = _nearest(account_xyz[accounts], rep_xyz[reps], fill)
            found_accounts.append(accounts[near_accounts.ravel()])
            found_reps.append(np.repeat(reps, fill))
    if not found_accounts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_accounts), np.concatenate(found_reps)


def _pairs_table_indices(inputs: AssignmentInputs, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    account = pd.Index(inputs.account_ids).get_indexer(table["account_id"])
    rep = pd.Index(inputs.rep_ids).get_indexer(table["rep_id"])
    return account.astype(np.int64), rep.astype(np.int64)


def _eligible_flags(pairs_table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the pairs table that allow, and that refuse, their pair (an empty cell does neither)."""
    eligible = pairs_table["eligible"]
    return (eligible.eq(True).fillna(False).to_numpy(dtype=bool),
            eligible.eq(False).fillna(False).to_numpy(dtype=bool))


def eligible_pairs(inputs: AssignmentInputs, rules: Eligibility, pairs_table: pd.DataFrame | None,
                   widening: int = 0, reach: tuple[np.ndarray, np.ndarray] | None = None) -> Pairs:
    """Every pair that may be chosen.

    Rules (segment, experience, k nearest both ways, widened `widening` times, distance limit), plus the
    `reach` pairs (account, rep) beyond the nearest reps (see reach.py; distance limit still applies), plus
    each account's current owner (while the owner has capacity in the period), plus the pairs table's
    `eligible=true` rows, minus its `eligible=false` rows; a locked account keeps only its owner.
    """
    num_reps = inputs.num_reps
    account, rep = _rule_pairs(inputs, rules, widening)
    by_rule = account.size
    if reach is not None:
        account, rep = np.concatenate([account, reach[0]]), np.concatenate([rep, reach[1]])
    from_reach = np.arange(account.size) >= by_rule
    if rules.max_distance_km is not None:
        near = haversine_km(inputs.account_lat[account], inputs.account_lon[account], inputs.rep_lat[rep],
                            inputs.rep_lon[rep]) <= rules.max_distance_km
        account, rep, from_reach = account[near], rep[near], from_reach[near]

    owned = np.flatnonzero(inputs.account_owner >= 0)
    keep_owner = owned[inputs.rep_capacity[inputs.account_owner[owned]] > 0]
    if inputs.by_territory:  # inside territories, today's owner stays eligible only within the territory
        keep_owner = keep_owner[inputs.rep_group[inputs.account_owner[keep_owner]] == inputs.account_group[keep_owner]]
    extra_accounts, extra_reps = [keep_owner], [inputs.account_owner[keep_owner]]
    banned = np.zeros(0, dtype=np.int64)
    if pairs_table is not None:
        table_account, table_rep = _pairs_table_indices(inputs, pairs_table)
        allowed, refused = _eligible_flags(pairs_table)
        extra_accounts.append(table_account[allowed])
        extra_reps.append(table_rep[allowed])
        banned = table_account[refused] * num_reps + table_rep[refused]

    ruled = np.concatenate([account[~from_reach] * num_reps + rep[~from_reach],
                            *[a * num_reps + r for a, r in zip(extra_accounts, extra_reps, strict=True)]])
    key = np.union1d(ruled, account[from_reach] * num_reps + rep[from_reach])
    key = key[~np.isin(key, banned)]
    locked = np.flatnonzero(inputs.account_locked)
    locked_key = locked * num_reps + inputs.account_owner[locked]
    key = np.union1d(key[~np.isin(key // num_reps, locked)], locked_key)

    return pairs_of(inputs, key, pairs_table, reached=~(np.isin(key, ruled) | np.isin(key, locked_key)))


def pairs_of(inputs: AssignmentInputs, key: np.ndarray, pairs_table: pd.DataFrame | None,
             reached: np.ndarray | None = None) -> Pairs:
    """The pairs of the sorted keys account × num_reps + rep, with their distance, workload and travel
    (the pairs table's overrides applied); `reached`: which came from reach (default: none)."""
    num_reps = inputs.num_reps
    account, rep = key // num_reps, key % num_reps
    distance = haversine_km(inputs.account_lat[account], inputs.account_lon[account], inputs.rep_lat[rep],
                            inputs.rep_lon[rep])
    workload = inputs.account_workload[account].copy()
    travel = distance.copy()
    if pairs_table is not None and len(key):
        table_account, table_rep = _pairs_table_indices(inputs, pairs_table)
        table_key = table_account * num_reps + table_rep
        position = np.minimum(np.searchsorted(key, table_key), len(key) - 1)
        present = key[position] == table_key
        hours = pairs_table["workload_hours"].to_numpy(dtype=float)
        cost = pairs_table["cost"].to_numpy(dtype=float)
        given_hours = present & ~np.isnan(hours)
        workload[position[given_hours]] = hours[given_hours] * inputs.period_share
        given_cost = present & ~np.isnan(cost)
        travel[position[given_cost]] = cost[given_cost]
    return Pairs(account=account, rep=rep, workload=workload, distance_km=distance, travel=travel,
                 reached=np.zeros(len(key), dtype=bool) if reached is None else reached)
