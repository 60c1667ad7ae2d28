"""An independent checker of every hard constraint of an assignment.

It reads only the Scenario and the plan's (account_id → rep_id) table and recomputes everything
itself, with pandas and brute-force distances, sharing no code with compilation or search; so a
bug there cannot hide here. Each violation is a sentence that names the constraint and the subject.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tercap.scenario import Scenario
from tercap.scenario.capacity import period_capacity_hours

TOLERANCE = 1e-6
WIDEST = 3  # beyond this many doublings the engine drops the k-nearest rule
CHUNK = 2_000
EARTH_KM = 6371.0088


def _km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    a = np.sin(np.radians(lat2 - lat1) / 2) ** 2 + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * \
        np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def check_assignment(scenario: Scenario, assignments: pd.DataFrame, widening: int = 0) -> list[str]:
    """Every hard constraint that `assignments` (account_id, rep_id) breaks, in words; `widening` is
    how often the engine doubled the k-nearest neighbourhoods (k × 2^w reps, fill × 2^w accounts)."""
    settings = scenario.settings
    rules = settings.assignment.eligibility
    share = settings.period.months / 12
    problems: list[str] = []

    accounts = scenario.accounts.set_index("account_id")
    team = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    team["capacity"] = period_capacity_hours(settings, team).to_numpy()
    team = team.set_index("rep_id")

    given = assignments.set_index("account_id")["rep_id"]
    if given.index.duplicated().any():
        twice = list(given.index[given.index.duplicated()][:5])
        problems.append(f"assign: account(s) assigned more than once: {twice}")
    missing = accounts.index.difference(given.index)
    if len(missing):
        problems.append(f"assign: {len(missing)} account(s) missing from the plan, e.g. {list(missing[:5])}")
    unknown = given.dropna()[~given.dropna().isin(team.index)]
    if len(unknown):
        problems.append(f"assign: unknown rep(s) {sorted(set(unknown))[:5]}")
    if problems:
        return problems

    frame = accounts.assign(rep=given.reindex(accounts.index))
    assigned = frame[frame["rep"].notna()].copy()
    reps_of = team.loc[assigned["rep"]]
    owner = frame["current_owner"]

    locked = frame[frame["locked"] & (frame["rep"] != owner).fillna(True).to_numpy(dtype=bool)]
    for account in locked.index[:10]:
        problems.append(f"lock: account {account} is locked to {owner[account]} but goes to {frame.at[account, 'rep']}")

    pairs = scenario.pairs
    forced: set[tuple[str, str]] = set()
    banned: set[tuple[str, str]] = set()
    hours_override: dict[tuple[str, str], float] = {}
    if pairs is not None:
        for row in pairs.itertuples(index=False):
            key = (row.account_id, row.rep_id)
            if row.eligible is True:
                forced.add(key)
            elif row.eligible is False:
                banned.add(key)
            if not pd.isna(row.workload_hours):
                hours_override[key] = float(row.workload_hours)

    keys = list(zip(assigned.index, assigned["rep"], strict=True))
    is_owner = (assigned["rep"] == owner.reindex(assigned.index)).fillna(False).to_numpy(dtype=bool)
    is_forced = np.array([k in forced for k in keys], dtype=bool)
    exempt = is_owner | is_forced
    for (account, rep), bad in zip(keys, [k in banned for k in keys], strict=True):
        if bad and not frame.at[account, "locked"]:
            problems.append(f"eligibility: the pairs table forbids {account} → {rep}")

    top = pd.Series(False, index=frame.index)
    if rules.top_potential_share > 0:
        count = int(np.ceil(rules.top_potential_share * len(frame)))
        top.iloc[np.argsort(-frame["potential"].to_numpy(), kind="stable")[:count]] = True
    complex_process = frame["buying_process"].eq("complex").to_numpy(dtype=bool)
    frame["need"] = np.maximum(np.where(complex_process, rules.complex_min_experience, 0.0),
                               np.where(top, rules.top_min_experience, 0.0))
    assigned["need"] = frame["need"].reindex(assigned.index)
    need = assigned["need"].to_numpy()
    rule_checked = ~exempt & ~assigned["locked"].to_numpy()
    short = rule_checked & (reps_of["experience_years"].to_numpy() < need - TOLERANCE)
    for account in assigned.index[short][:10]:
        rep = assigned.at[account, "rep"]
        problems.append(f"eligibility: {account} needs {assigned.at[account, 'need']:g} years of experience; "
                        f"{rep} has {team.at[rep, 'experience_years']:g}")
    if rules.segment_match:
        wrong = rule_checked & (reps_of["segment"].to_numpy() != assigned["segment"].to_numpy())
        for account in assigned.index[wrong][:10]:
            rep = assigned.at[account, "rep"]
            problems.append(f"eligibility: {account} ({assigned.at[account, 'segment']}) goes to {rep}, who sells "
                            f"to {team.at[rep, 'segment']}")
    distance = _km(assigned["lat"].to_numpy(dtype=float), assigned["lon"].to_numpy(dtype=float),
                   reps_of["lat"].to_numpy(dtype=float), reps_of["lon"].to_numpy(dtype=float))
    if rules.max_distance_km is not None:
        far = rule_checked & (distance > rules.max_distance_km * (1 + TOLERANCE))
        for account in assigned.index[far][:10]:
            problems.append(f"eligibility: {account} is {distance[assigned.index.get_loc(account)]:,.0f} km from "
                            f"{assigned.at[account, 'rep']} (limit {rules.max_distance_km:g} km)")
    if rules.nearest_reps is not None and widening <= WIDEST:
        problems += _check_nearness(frame, team, assigned, rule_checked, need, distance, rules,
                                    rules.nearest_reps * 2**widening, 2.0 * 2**widening)

    workload = assigned["workload_hours"].to_numpy() * share
    overrides = np.array([hours_override.get(k, np.nan) for k in keys]) * share
    workload = np.where(np.isnan(overrides), workload, overrides)
    load = pd.Series(workload, index=assigned.index).groupby(assigned["rep"]).sum().reindex(team.index,
                                                                                            fill_value=0.0)
    over = load > team["capacity"] * (1 + TOLERANCE) + TOLERANCE
    for rep in load.index[over][:10]:
        problems.append(f"capacity: {rep} carries {load[rep]:,.1f} h > capacity {team.at[rep, 'capacity']:,.1f} h")
    counts = assigned.groupby("rep").size().reindex(team.index, fill_value=0)
    limit = pd.to_numeric(team["max_accounts"], errors="coerce")
    for rep in counts.index[limit.notna() & (counts > limit)][:10]:
        problems.append(f"max_accounts: {rep} carries {counts[rep]} accounts > {int(limit[rep])}")

    if settings.assignment.mode == "balanced" and settings.assignment.balance.hard:
        problems += _check_bands(scenario, frame, team, assigned, load)
    problems += _check_moves(scenario, frame)
    return problems


def _check_nearness(frame: pd.DataFrame, team: pd.DataFrame, assigned: pd.DataFrame, checked: np.ndarray,
                    need: np.ndarray, distance: np.ndarray, rules: object, k: int, fill_factor: float) -> list[str]:
    """The rep is among the account's k nearest eligible reps, or the account among the rep's nearest."""
    problems = []
    active = team[team["capacity"] > 0]
    segment_match = rules.segment_match  # type: ignore[attr-defined]
    for position in np.flatnonzero(checked):
        account = assigned.index[position]
        pool = active if not segment_match else active[active["segment"] == assigned.at[account, "segment"]]
        pool = pool[pool["experience_years"] >= need[position] - TOLERANCE]
        if len(pool) <= k:
            continue
        to_pool = _km(np.full(len(pool), assigned.at[account, "lat"]), np.full(len(pool), assigned.at[account, "lon"]),
                      pool["lat"].to_numpy(), pool["lon"].to_numpy())
        rank = int((to_pool < distance[position] - 1e-9).sum())
        if rank < k:
            continue
        # Otherwise the account must be among the rep's nearest accounts of its class.
        rep = assigned.at[account, "rep"]
        same_class = frame if not segment_match else frame[frame["segment"] == assigned.at[account, "segment"]]
        same_class = same_class[same_class["need"] == need[position]]
        fill = int(min(len(same_class), np.ceil(fill_factor * len(same_class) / len(pool))))
        from_rep = _km(np.full(len(same_class), team.at[rep, "lat"]), np.full(len(same_class), team.at[rep, "lon"]),
                       same_class["lat"].to_numpy(), same_class["lon"].to_numpy())
        if int((from_rep < distance[position] - 1e-9).sum()) >= fill:
            problems.append(f"eligibility: {rep} is not among the {k} nearest eligible reps of {account}, nor "
                            f"{account} among the {fill} nearest accounts of {rep}")
        if len(problems) >= 10:
            break
    return problems


def _check_bands(scenario: Scenario, frame: pd.DataFrame, team: pd.DataFrame, assigned: pd.DataFrame,
                 load: pd.Series) -> list[str]:
    settings = scenario.settings
    balance = settings.assignment.balance
    share = settings.period.months / 12
    group_of = (lambda s: s) if settings.assignment.eligibility.segment_match else (lambda s: "all")
    active = team[team["capacity"] > 0]
    rep_group = active["segment"].map(group_of)
    account_group = frame["segment"].map(group_of)
    assignable = account_group.isin(set(rep_group)) | frame["rep"].notna()
    work = (frame.loc[assignable, "workload_hours"] * share).groupby(account_group[assignable]).sum()
    capacity = active["capacity"].groupby(rep_group).sum()
    utilisation = (work / capacity).clip(upper=1.0)
    potential = (frame.loc[assignable, "potential"] * share).groupby(account_group[assignable]).sum()
    weight = active["capacity"] * (1 + balance.experience_weight * active["experience_years"].clip(upper=10) / 10)
    expected = weight / weight.groupby(rep_group).transform("sum") * rep_group.map(potential).fillna(0.0)
    carried = (frame.loc[frame["rep"].notna(), "potential"] * share).groupby(frame["rep"].dropna()).sum()
    problems = []
    for rep in active.index:
        target = utilisation.get(rep_group[rep], 0.0) * active.at[rep, "capacity"]
        if target <= 0:
            continue
        lo, hi = (1 - balance.workload_tolerance) * target, min((1 + balance.workload_tolerance) * target,
                                                               active.at[rep, "capacity"])
        if not lo * (1 - TOLERANCE) - TOLERANCE <= load[rep] <= hi * (1 + TOLERANCE) + TOLERANCE:
            problems.append(f"workload_balance: {rep} carries {load[rep]:,.1f} h, outside {lo:,.1f}–{hi:,.1f} h")
        e = expected[rep]
        p = carried.get(rep, 0.0)
        p_lo, p_hi = (1 - balance.potential_tolerance) * e, (1 + balance.potential_tolerance) * e
        if not p_lo * (1 - TOLERANCE) - TOLERANCE <= p <= p_hi * (1 + TOLERANCE) + TOLERANCE:
            problems.append(f"potential_balance: {rep} carries potential {p:,.0f}, outside {p_lo:,.0f}–{p_hi:,.0f}")
    return problems


def _check_moves(scenario: Scenario, frame: pd.DataFrame) -> list[str]:
    continuity = scenario.settings.assignment.continuity
    owned = frame[frame["current_owner"].notna()]
    moved = owned[(owned["rep"] != owned["current_owner"]).fillna(True).to_numpy(dtype=bool)]
    problems = []
    if continuity.max_moved_share is not None:
        cap = np.floor(continuity.max_moved_share * len(owned) + 1e-9)
        if len(moved) > cap:
            problems.append(f"moved_share: {len(moved)} accounts change owner > cap {cap:.0f}")
    if continuity.max_moved_potential_share is not None:
        cap = continuity.max_moved_potential_share * owned["potential"].sum()
        if moved["potential"].sum() > cap * (1 + TOLERANCE):
            problems.append(f"moved_potential_share: {moved['potential'].sum():,.0f} of potential moves > cap "
                            f"{cap:,.0f}")
    return problems
