"""An independent checker of every hard constraint of an assignment.

It reads only the Scenario and the plan's (account_id → rep_id) table and recomputes everything
itself, with pandas, numpy and its own k-d trees, sharing no code with compilation or search; so a
bug there cannot hide here. Each violation is a sentence that names the constraint and the subject.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from tercap.assign.inputs import TerritoryGroups
from tercap.scenario import Scenario
from tercap.scenario.capacity import period_capacity_hours

TOLERANCE = 1e-6
WIDEST = 3  # beyond this many doublings the engine drops the k-nearest rule
CHUNK = 10_000  # accounts per k-d tree query, to bound memory
MAX_MESSAGES = 10  # per rule
EARTH_KM = 6371.0088


def _km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    a = np.sin(np.radians(lat2 - lat1) / 2) ** 2 + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * \
        np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere: nearer in chord distance is nearer on the globe."""
    phi, lmb = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lmb), np.cos(phi) * np.sin(lmb), np.sin(phi)])


def _pair_positions(table: pd.DataFrame, accounts: pd.Index, reps: np.ndarray) -> np.ndarray:
    """Row of `table` (account_id, rep_id) holding each (account, rep) pair; -1 where none does."""
    table = table.drop_duplicates(["account_id", "rep_id"], keep="last")
    keys = pd.MultiIndex.from_arrays([table["account_id"].astype(object), table["rep_id"].astype(object)])
    wanted = pd.MultiIndex.from_arrays([np.asarray(accounts, dtype=object), np.asarray(reps, dtype=object)])
    return keys.get_indexer(wanted)


def _pair_overrides(scenario: Scenario, accounts: pd.Index, reps: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """Per (account, rep): whether the pairs table allows it despite the rules, forbids it, and its
    workload override in hours a year (NaN: none)."""
    forced = np.zeros(len(accounts), dtype=bool)
    banned = np.zeros(len(accounts), dtype=bool)
    hours = np.full(len(accounts), np.nan)
    if scenario.pairs is not None and len(scenario.pairs):
        table = scenario.pairs.drop_duplicates(["account_id", "rep_id"], keep="last")
        row = _pair_positions(table, accounts, reps)
        found = row >= 0
        eligible = table["eligible"]
        forced[found] = eligible.eq(True).fillna(False).to_numpy(dtype=bool)[row[found]]
        banned[found] = eligible.eq(False).fillna(False).to_numpy(dtype=bool)[row[found]]
        hours[found] = table["workload_hours"].to_numpy(dtype=float)[row[found]]
    return forced, banned, hours


def check_assignment(scenario: Scenario, assignments: pd.DataFrame, widening: int = 0, *,
                     reached: pd.DataFrame | None = None, territories: TerritoryGroups | None = None) -> list[str]:
    """Every hard constraint that `assignments` (account_id, rep_id) breaks, in words.

    `widening` is how often the engine doubled the k-nearest neighbourhoods (k × 2^w reps, fill × 2^w
    accounts). `reached` (account_id, rep_id) lists pairs the engine declares it gave beyond the nearness
    rule, to keep the balance bands feasible: an account assigned to such a pair is spared the nearness
    rule, and only that rule. `territories`: every account must go to a rep of its own territory, and
    the nearness rule and balance bands hold among each territory's reps.
    """
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
    # the pools reps share balance bands and nearness in: segments (or everyone), inside territories
    frame["pool"] = frame["segment"].astype(str) if rules.segment_match else "all"
    team["pool"] = team["segment"].astype(str) if rules.segment_match else "all"
    if territories is not None:
        frame["pool"] += " in " + frame.index.to_series().map(territories.accounts).fillna("no territory")
        team["pool"] += " in " + team.index.to_series().map(territories.reps).fillna("no territory")
    assigned = frame[frame["rep"].notna()].copy()
    reps_of = team.loc[assigned["rep"]]
    owner = frame["current_owner"]

    locked = frame[frame["locked"] & (frame["rep"] != owner).fillna(True).to_numpy(dtype=bool)]
    for account in locked.index[:MAX_MESSAGES]:
        problems.append(f"lock: account {account} is locked to {owner[account]} but goes to {frame.at[account, 'rep']}")

    accounts_given, reps_given = assigned.index, assigned["rep"].to_numpy(dtype=object)
    is_forced, is_banned, hours_override = _pair_overrides(scenario, accounts_given, reps_given)

    is_owner = (assigned["rep"] == owner.reindex(assigned.index)).fillna(False).to_numpy(dtype=bool)
    exempt = is_owner | is_forced
    refused = is_banned & ~assigned["locked"].to_numpy(dtype=bool)
    for account, rep in zip(accounts_given[refused], reps_given[refused], strict=True):
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
    for account in assigned.index[short][:MAX_MESSAGES]:
        rep = assigned.at[account, "rep"]
        problems.append(f"eligibility: {account} needs {assigned.at[account, 'need']:g} years of experience; "
                        f"{rep} has {team.at[rep, 'experience_years']:g}")
    if territories is not None:
        mine = assigned.index.to_series().map(territories.accounts).to_numpy(dtype=object)
        theirs = assigned["rep"].map(territories.reps).to_numpy(dtype=object)
        outside = ~assigned["locked"].to_numpy(dtype=bool) & (mine != theirs)
        for account in assigned.index[outside][:MAX_MESSAGES]:
            rep = assigned.at[account, "rep"]
            problems.append(f"territory: {account} (territory {territories.accounts.get(account)}) goes to {rep} "
                            f"of territory {territories.reps.get(rep)}")
    if rules.segment_match:
        wrong = rule_checked & (reps_of["segment"].to_numpy() != assigned["segment"].to_numpy())
        for account in assigned.index[wrong][:MAX_MESSAGES]:
            rep = assigned.at[account, "rep"]
            problems.append(f"eligibility: {account} ({assigned.at[account, 'segment']}) goes to {rep}, who sells "
                            f"to {team.at[rep, 'segment']}")
    distance = _km(assigned["lat"].to_numpy(dtype=float), assigned["lon"].to_numpy(dtype=float),
                   reps_of["lat"].to_numpy(dtype=float), reps_of["lon"].to_numpy(dtype=float))
    if rules.max_distance_km is not None:
        far = rule_checked & (distance > rules.max_distance_km * (1 + TOLERANCE))
        for account in assigned.index[far][:MAX_MESSAGES]:
            problems.append(f"eligibility: {account} is {distance[assigned.index.get_loc(account)]:,.0f} km from "
                            f"{assigned.at[account, 'rep']} (limit {rules.max_distance_km:g} km)")
    if rules.nearest_reps is not None and widening <= WIDEST:
        near_checked = rule_checked
        if reached is not None and len(reached):
            near_checked = rule_checked & (_pair_positions(reached, accounts_given, reps_given) < 0)
        problems += _check_nearness(frame, team, assigned, near_checked, need, distance,
                                    rules.nearest_reps * 2**widening, 2.0 * 2**widening)

    workload = assigned["workload_hours"].to_numpy() * share
    workload = np.where(np.isnan(hours_override), workload, hours_override * share)
    load = pd.Series(workload, index=assigned.index).groupby(assigned["rep"]).sum().reindex(team.index,
                                                                                            fill_value=0.0)
    over = load > team["capacity"] * (1 + TOLERANCE) + TOLERANCE
    for rep in load.index[over][:MAX_MESSAGES]:
        problems.append(f"capacity: {rep} carries {load[rep]:,.1f} h > capacity {team.at[rep, 'capacity']:,.1f} h")
    counts = assigned.groupby("rep").size().reindex(team.index, fill_value=0)
    limit = pd.to_numeric(team["max_accounts"], errors="coerce")
    for rep in counts.index[limit.notna() & (counts > limit)][:MAX_MESSAGES]:
        problems.append(f"max_accounts: {rep} carries {counts[rep]} accounts > {int(limit[rep])}")

    if settings.assignment.mode == "balanced" and settings.assignment.balance.hard:
        def can_carry_one(rep: str, top_hours: float) -> bool:
            return _can_carry_one(scenario, frame, team, rep, top_hours, widening, territories is not None)
        problems += _check_bands(scenario, frame, team, assigned, load, can_carry_one)
    problems += _check_moves(scenario, frame)
    return problems


def _check_nearness(frame: pd.DataFrame, team: pd.DataFrame, assigned: pd.DataFrame, checked: np.ndarray,
                    need: np.ndarray, distance: np.ndarray, k: int, fill_factor: float) -> list[str]:
    """The rep is among the account's k nearest eligible reps, or the account among the rep's nearest.

    Accounts are taken a class (pool, need) at a time: an account fails the first test when the k-th
    nearest rep of its pool is nearer than its own rep, and the second when the rep's fill-th nearest
    account of the class is nearer than this one.
    """
    class_of = frame.groupby([frame["pool"], frame["need"]], dropna=False, sort=False).ngroup().to_numpy()
    position = frame.index.get_indexer(assigned.index)
    assigned_class = class_of[position]
    rep_position = team.index.get_indexer(assigned["rep"])
    active = team[team["capacity"] > 0]
    lat, lon = frame["lat"].to_numpy(dtype=float), frame["lon"].to_numpy(dtype=float)
    rep_lat, rep_lon = team["lat"].to_numpy(dtype=float), team["lon"].to_numpy(dtype=float)
    fill_of = np.zeros(len(assigned), dtype=np.int64)
    failed = np.zeros(len(assigned), dtype=bool)
    todo = checked & np.isfinite(distance)  # an account or rep without a place is never nearer than another
    for group in np.unique(assigned_class[todo]):
        rows = np.flatnonzero(todo & (assigned_class == group))
        members = np.flatnonzero(class_of == group)
        pool = active[active["experience_years"] >= need[rows[0]] - TOLERANCE]
        pool = pool[pool["pool"] == frame["pool"].iloc[members[0]]]
        if len(pool) <= k:
            continue
        kth_rep = _kth_nearest_km(pool["lat"].to_numpy(dtype=float), pool["lon"].to_numpy(dtype=float),
                                  lat[position[rows]], lon[position[rows]], k)
        rows = rows[kth_rep < distance[rows] - 1e-9]
        if not len(rows):
            continue
        fill = int(min(len(members), np.ceil(fill_factor * len(members) / len(pool))))
        reps, which = np.unique(rep_position[rows], return_inverse=True)
        kth_account = _kth_nearest_km(lat[members], lon[members], rep_lat[reps], rep_lon[reps], fill)
        fill_of[rows] = fill
        failed[rows] = kth_account[which] < distance[rows] - 1e-9
    problems = []
    for row in np.flatnonzero(failed)[:MAX_MESSAGES]:
        account, rep, fill = assigned.index[row], assigned["rep"].iat[row], fill_of[row]
        problems.append(f"eligibility: {rep} is not among the {k} nearest eligible reps of {account}, nor "
                        f"{account} among the {fill} nearest accounts of {rep}")
    return problems


def _kth_nearest_km(lat: np.ndarray, lon: np.ndarray, target_lat: np.ndarray, target_lon: np.ndarray,
                    k: int) -> np.ndarray:
    """Km from each target to its k-th nearest point; inf where fewer than k points have a place."""
    placed = np.isfinite(lat) & np.isfinite(lon)
    lat, lon = lat[placed], lon[placed]
    result = np.full(len(target_lat), np.inf)
    if len(lat) < k:
        return result
    tree = cKDTree(_unit_vectors(lat, lon))
    for start in range(0, len(target_lat), CHUNK):
        part = slice(start, start + CHUNK)
        _, index = tree.query(_unit_vectors(target_lat[part], target_lon[part]), k=k)
        index = np.asarray(index).reshape(-1, k)
        # The largest of the k haversine distances: the k-th even where rounding reorders near-ties.
        result[part] = _km(target_lat[part, None], target_lon[part, None], lat[index], lon[index]).max(axis=1)
    return result


def _can_carry_one(scenario: Scenario, frame: pd.DataFrame, team: pd.DataFrame, rep: str, top_hours: float,
                   widening: int, by_territory: bool = False) -> bool:
    """Whether some account that `rep` may take has at most `top_hours` of work in the period.

    `frame` holds every account with its experience `need`; eligibility is judged by this module's own
    rules (owner, pairs table, lock, segment and territory, experience, distance, nearness).
    """
    settings = scenario.settings
    rules = settings.assignment.eligibility
    share = settings.period.months / 12
    forced, banned, override = _pair_overrides(scenario, frame.index, np.full(len(frame), rep, dtype=object))
    hours = np.where(np.isnan(override), frame["workload_hours"].to_numpy(dtype=float), override) * share
    owner = frame["current_owner"]
    is_owner = owner.eq(rep).fillna(False).to_numpy(dtype=bool)
    if by_territory:  # inside territories, today's owner keeps only the accounts of the rep's territory
        is_owner &= frame["pool"].to_numpy() == team.at[rep, "pool"]
    locked_away = frame["locked"].to_numpy(dtype=bool) & ~is_owner
    fits = (hours <= top_hours * (1 + TOLERANCE) + TOLERANCE) & ~locked_away & ~(banned & ~is_owner)
    if (fits & (is_owner | forced)).any():
        return True
    ruled = fits & ~is_owner & ~forced
    ruled &= frame["need"].to_numpy() <= team.at[rep, "experience_years"] + TOLERANCE
    ruled &= frame["pool"].to_numpy() == team.at[rep, "pool"]  # segment (and territory) of the rep
    lat, lon = frame["lat"].to_numpy(dtype=float), frame["lon"].to_numpy(dtype=float)
    distance = _km(lat, lon, float(team.at[rep, "lat"]), float(team.at[rep, "lon"]))
    if rules.max_distance_km is not None:
        ruled &= ~(distance > rules.max_distance_km * (1 + TOLERANCE))
    if not ruled.any() or rules.nearest_reps is None or widening > WIDEST:
        return bool(ruled.any())
    # nearness, as _check_nearness judges it: rep among the account's k nearest of its pool, or the account
    # among the rep's fill nearest of its class
    k, fill_factor = rules.nearest_reps * 2**widening, 2.0 * 2**widening
    class_of = frame.groupby([frame["pool"], frame["need"]], dropna=False, sort=False).ngroup().to_numpy()
    active = team[team["capacity"] > 0]
    for group in np.unique(class_of[ruled]):
        rows = np.flatnonzero(ruled & (class_of == group))
        members = np.flatnonzero(class_of == group)
        pool = active[active["experience_years"] >= frame["need"].iat[rows[0]] - TOLERANCE]
        pool = pool[pool["pool"] == frame["pool"].iat[rows[0]]]
        if len(pool) <= k or not np.isfinite(distance[rows]).all():
            return True
        kth_rep = _kth_nearest_km(pool["lat"].to_numpy(dtype=float), pool["lon"].to_numpy(dtype=float),
                                  lat[rows], lon[rows], k)
        if (distance[rows] <= kth_rep + 1e-9).any():
            return True
        fill = int(min(len(members), np.ceil(fill_factor * len(members) / len(pool))))
        kth_account = _kth_nearest_km(lat[members], lon[members], np.array([float(team.at[rep, "lat"])]),
                                      np.array([float(team.at[rep, "lon"])]), fill)
        if (distance[rows] <= kth_account[0] + 1e-9).any():
            return True
    return False


def _check_bands(scenario: Scenario, frame: pd.DataFrame, team: pd.DataFrame, assigned: pd.DataFrame,
                 load: pd.Series, can_carry_one: Callable[[str, float], bool]) -> list[str]:
    settings = scenario.settings
    balance = settings.assignment.balance
    share = settings.period.months / 12
    active = team[team["capacity"] > 0]
    rep_group = active["pool"]
    account_group = frame["pool"]
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
        # a rep who carries nothing, and may take no account that fits under its band top, has no floor
        floor = load[rep] > 0 or can_carry_one(rep, hi)
        lo = lo if floor else 0.0
        if not lo * (1 - TOLERANCE) - TOLERANCE <= load[rep] <= hi * (1 + TOLERANCE) + TOLERANCE:
            problems.append(f"workload_balance: {rep} carries {load[rep]:,.1f} h, outside {lo:,.1f}–{hi:,.1f} h")
        e = expected[rep]
        p = carried.get(rep, 0.0)
        p_lo, p_hi = (1 - balance.potential_tolerance) * e if floor else 0.0, (1 + balance.potential_tolerance) * e
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
