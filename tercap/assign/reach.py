"""Reach: the few pairs beyond each account's nearest reps that the balance bands need.

When no plan exists among each account's k nearest reps (a metro with more work than its reps may
carry, while reps elsewhere fall short of their band), doubling k for every account multiplies the
model. Instead, a small transport LP moves clusters of accounts (same class, same nearest rep) to the
reps of their class, pricing work sent outside the current pairs far above distance; pairs are added
only where that LP sends work outside: the accounts of that cluster × that rep.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from tercap.assign.compile import CompiledAssignment
from tercap.assign.eligibility import required_experience
from tercap.assign.inputs import haversine_km, unit_vectors
from tercap.backends import SolveLimits, get_backend
from tercap.model import INF, LinearModel, RowBuilder
from tercap.scenario.schema import Eligibility
from tercap.status import SolveStatus

CANDIDATE_REPS = 64  # reps of its class each cluster may send work to (its nearest), besides current pairs
OUTSIDE_PRICE = 100.0  # per share of all workload sent outside the current pairs (distance costs at most 1)
UNPLACED_PRICE = 10_000.0  # per share of all workload left without a rep
HALF_EARTH_KM = 20_016.0
FLOW_EPSILON = 1e-6
REACH_MARGIN = 0.5  # of each band's width (at most one mean account) asked of the transport LP beyond the floor


def reach_pairs(compiled: CompiledAssignment, rules: Eligibility, seconds: float = 60.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """(account, rep) arrays of pairs to add so that the balance bands can be met, or empty arrays
    when the transport LP needs nothing outside the current pairs (or finds no way at all)."""
    inputs, pairs = compiled.inputs, compiled.pairs
    num_reps = inputs.num_reps
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = compiled.pair_start
    movable = (np.diff(start) > 0) & ~inputs.account_locked
    if not movable.any():
        return empty
    nearest_pair = np.lexsort((pairs.distance_km, pairs.account))[start[:-1][movable]]
    need = required_experience(inputs, rules)
    accounts = np.flatnonzero(movable)
    _, class_of = np.unique(np.column_stack([inputs.account_group[accounts], need[accounts]]), axis=0,
                            return_inverse=True)
    class_of = class_of.ravel()
    cluster_key = class_of * num_reps + pairs.rep[nearest_pair]
    cluster_keys, cluster_of = np.unique(cluster_key, return_inverse=True)
    cluster_of = cluster_of.ravel()
    num_clusters = cluster_keys.size
    cluster_class = cluster_keys // num_reps

    full_cluster = np.full(inputs.num_accounts, -1, dtype=np.int64)
    full_cluster[accounts] = cluster_of
    in_model = full_cluster[pairs.account] >= 0
    pair_keys = full_cluster[pairs.account[in_model]] * num_reps + pairs.rep[in_model]  # (cluster, rep) of pairs
    centre = _centres(inputs.account_lat[accounts], inputs.account_lon[accounts], cluster_of, num_clusters)
    columns_cluster, columns_rep = _candidate_columns(compiled, accounts, cluster_of, cluster_class, need, pair_keys,
                                                      centre)
    total_work = max(float(inputs.account_workload[accounts].sum()), 1e-9)
    work = np.bincount(cluster_of, inputs.account_workload[accounts], minlength=num_clusters)
    potential = np.bincount(cluster_of, inputs.account_potential[accounts], minlength=num_clusters)
    count = np.bincount(cluster_of, minlength=num_clusters).astype(float)

    # a column is inside when every account of its cluster already has the pair
    held_keys, accounts_with = np.unique(pair_keys, return_counts=True)
    inside_keys = held_keys[accounts_with == count[held_keys // num_reps]]
    outside = ~np.isin(columns_cluster * num_reps + columns_rep, inside_keys)
    distance = haversine_km(centre[columns_cluster, 0], centre[columns_cluster, 1], inputs.rep_lat[columns_rep],
                            inputs.rep_lon[columns_rep])
    share = work[columns_cluster] / total_work
    cost = np.concatenate([share * (distance / HALF_EARTH_KM + OUTSIDE_PRICE * outside),
                           UNPLACED_PRICE * work / total_work])

    for margin in (REACH_MARGIN, 0.0):  # room for whole accounts first; the bare bands if that finds no way
        model = _transport_model(compiled, columns_cluster, columns_rep, work, potential, count, cost, margin)
        result = get_backend("highs").solve(model, SolveLimits(time_limit=max(seconds, 1.0)))
        if result.status is SolveStatus.OPTIMAL and result.x is not None:
            break
    else:
        return empty
    needed = np.flatnonzero(outside & (result.x[: columns_cluster.size] > FLOW_EPSILON))
    if needed.size == 0:
        return empty
    by_cluster = np.argsort(cluster_of, kind="stable")
    cluster_start = np.searchsorted(cluster_of[by_cluster], np.arange(num_clusters + 1))
    sizes = cluster_start[columns_cluster[needed] + 1] - cluster_start[columns_cluster[needed]]
    members = np.concatenate([by_cluster[cluster_start[c]: cluster_start[c + 1]] for c in columns_cluster[needed]])
    return accounts[members], np.repeat(columns_rep[needed], sizes)


def _transport_model(compiled: CompiledAssignment, columns_cluster: np.ndarray, columns_rep: np.ndarray,
                     work: np.ndarray, potential: np.ndarray, count: np.ndarray, cost: np.ndarray,
                     margin: float) -> LinearModel:
    """Clusters → reps as a transport LP: flows, then one "unplaced" column per cluster. Each rep's
    floors are raised by `margin` of its band's width (at most its group's mean account): fractions of
    clusters meet a floor exactly where whole accounts may not, and the LP reaches no farther than that."""
    inputs = compiled.inputs
    num_reps, num_clusters = inputs.num_reps, work.size
    num_cols = columns_cluster.size + num_clusters
    rows = RowBuilder(num_cols)
    flow = np.arange(columns_cluster.size)
    rows.add("assign", np.concatenate([columns_cluster, np.arange(num_clusters)]),
             np.concatenate([flow, columns_cluster.size + np.arange(num_clusters)]), np.ones(num_cols),
             np.ones(num_clusters), np.ones(num_clusters), np.arange(num_clusters))
    locked = np.flatnonzero(inputs.account_locked)
    owners = inputs.account_owner[locked]
    fixed_work = np.bincount(owners, inputs.account_workload[locked], minlength=num_reps)
    fixed_potential = np.bincount(owners, inputs.account_potential[locked], minlength=num_reps)
    fixed_count = np.bincount(owners, minlength=num_reps).astype(float)
    reps = np.arange(num_reps)
    hard = compiled.mode == "balanced" and compiled.hard_balance
    banded = hard & (compiled.target_workload > 0)
    groups = len(inputs.group_names)
    per_group = np.maximum(np.bincount(inputs.account_group, minlength=groups), 1)
    mean_work = (np.bincount(inputs.account_group, inputs.account_workload, minlength=groups) / per_group)
    mean_potential = (np.bincount(inputs.account_group, inputs.account_potential, minlength=groups) / per_group)
    w_lo, ceiling = compiled.workload_band[0], compiled.workload_ceiling
    lift = np.clip(np.minimum(margin * (ceiling - w_lo), mean_work[inputs.rep_group]), 0.0, None)
    work_lower = np.where(banded, w_lo + lift, -INF) - fixed_work
    rows.add("capacity", columns_rep, flow, work[columns_cluster], work_lower, ceiling - fixed_work, reps)
    if hard:
        p_lo, p_hi = compiled.potential_band
        p_lift = np.clip(np.minimum(margin * (p_hi - p_lo), mean_potential[inputs.rep_group]), 0.0, None)
        unit = np.maximum(compiled.target_potential, 1.0)  # money in units of the rep's target
        rows.add("potential_balance", columns_rep, flow, potential[columns_cluster] / unit[columns_rep],
                 np.where(banded, p_lo + p_lift, -INF) / unit - fixed_potential / unit,
                 np.where(banded, p_hi, INF) / unit - fixed_potential / unit, reps)
    limit = np.where(inputs.rep_max_accounts >= 0, inputs.rep_max_accounts - fixed_count, INF)
    rows.add("max_accounts", columns_rep, flow, count[columns_cluster], np.full(num_reps, -INF), limit, reps)
    matrix, row_lower, row_upper, family, owner = rows.build()
    return LinearModel(cost=cost, matrix=matrix, row_lower=row_lower, row_upper=row_upper,
                       col_lower=np.zeros(num_cols), col_upper=np.ones(num_cols),
                       integral=np.zeros(num_cols, dtype=bool), row_family=family, row_owner=owner)


def _candidate_columns(compiled: CompiledAssignment, accounts: np.ndarray, cluster_of: np.ndarray,
                       cluster_class: np.ndarray, need: np.ndarray, pair_keys: np.ndarray, centre: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(cluster, rep) columns: each cluster's current reps (`pair_keys`, cluster × reps + rep) and the
    nearest reps of its class to its `centre`."""
    inputs = compiled.inputs
    num_reps, num_clusters = inputs.num_reps, cluster_class.size
    keys = [pair_keys]
    centre_xyz = unit_vectors(centre[:, 0], centre[:, 1])
    rep_xyz = unit_vectors(inputs.rep_lat, inputs.rep_lon)
    active = inputs.rep_capacity > 0
    first_account = np.zeros(num_clusters, dtype=np.int64)
    first_account[cluster_of[::-1]] = accounts[::-1]
    for klass in np.unique(cluster_class):
        clusters = np.flatnonzero(cluster_class == klass)
        sample = first_account[clusters[0]]
        reps = np.flatnonzero(active & (inputs.rep_group == inputs.account_group[sample])
                              & (inputs.rep_experience >= need[sample]))
        if reps.size == 0:
            continue
        take = min(CANDIDATE_REPS, reps.size)
        _, nearest = cKDTree(rep_xyz[reps]).query(centre_xyz[clusters], k=take)
        keys.append(np.repeat(clusters, take) * num_reps + reps[np.asarray(nearest).ravel()])
    unique = np.unique(np.concatenate(keys))
    return unique // num_reps, unique % num_reps


def _centres(lat: np.ndarray, lon: np.ndarray, cluster_of: np.ndarray, num_clusters: int) -> np.ndarray:
    """(lat, lon) of each cluster's centre on the sphere."""
    xyz = unit_vectors(lat, lon)
    summed = np.column_stack([np.bincount(cluster_of, xyz[:, i], minlength=num_clusters) for i in range(3)])
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    return np.column_stack([np.degrees(np.arcsin(np.clip(summed[:, 2], -1, 1))),
                            np.degrees(np.arctan2(summed[:, 1], summed[:, 0]))])
