"""The checker's vectorised nearness rule against a brute-force one, the `reached` exemption, and speed."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

import tercap
from tercap.assign.check import check_assignment
from tercap.scenario.capacity import period_capacity_hours
from tercap.scenario.generate import generate_scenario

from .instances import tiny_scenario

NEAR = "nearest eligible reps"


def _generated(folder: Path, accounts: int, reps: int, seed: int) -> tercap.Scenario:
    return tercap.load(generate_scenario(folder, accounts=accounts, reps=reps, seed=seed))


def _km(lat1: float, lon1: float, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    phi1, phi2 = math.radians(lat1), np.radians(lat2)
    h = (np.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _team(scenario: tercap.Scenario) -> pd.DataFrame:
    team = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    team["capacity"] = period_capacity_hours(scenario.settings, team).to_numpy()
    return team.set_index("rep_id")


def brute_force_nearness(scenario: tercap.Scenario, table: pd.DataFrame, widening: int = 0) -> list[str]:
    """The nearness messages, one account at a time, in account order."""
    rules = scenario.settings.assignment.eligibility
    k, fill_factor = rules.nearest_reps * 2**widening, 2.0 * 2**widening
    accounts = scenario.accounts
    top = np.zeros(len(accounts), dtype=bool)
    top[np.argsort(-accounts["potential"].to_numpy(), kind="stable")[:math.ceil(rules.top_potential_share
                                                                                 * len(accounts))]] = True
    need = np.maximum(np.where(accounts["buying_process"] == "complex", rules.complex_min_experience, 0),
                      np.where(top, rules.top_min_experience, 0))
    segment = accounts["segment"].to_numpy(dtype=object)
    lat, lon = accounts["lat"].to_numpy(), accounts["lon"].to_numpy()
    owner = accounts["current_owner"].fillna("").to_numpy(dtype=object)
    team = _team(scenario)
    rep_segment, experience = team["segment"].to_numpy(dtype=object), team["experience_years"].to_numpy()
    rep_lat, rep_lon, active = team["lat"].to_numpy(), team["lon"].to_numpy(), team["capacity"].to_numpy() > 0
    rep_of = table.set_index("account_id")["rep_id"].reindex(accounts["account_id"]).to_numpy(dtype=object)
    messages = []
    for a, account in enumerate(accounts["account_id"]):
        rep = rep_of[a]
        if pd.isna(rep) or accounts["locked"].iat[a] or rep == owner[a]:
            continue
        r = team.index.get_loc(rep)
        in_pool = active & (experience >= need[a] - 1e-6) & ((rep_segment == segment[a]) | (not rules.segment_match))
        in_class = (need == need[a]) & ((segment == segment[a]) | (not rules.segment_match))
        if in_pool.sum() <= k:
            continue
        distance = _km(lat[a], lon[a], rep_lat[r:r + 1], rep_lon[r:r + 1])[0]
        if (_km(lat[a], lon[a], rep_lat[in_pool], rep_lon[in_pool]) < distance - 1e-9).sum() < k:
            continue
        fill = min(in_class.sum(), math.ceil(fill_factor * in_class.sum() / in_pool.sum()))
        if (_km(rep_lat[r], rep_lon[r], lat[in_class], lon[in_class]) < distance - 1e-9).sum() >= fill:
            messages.append(f"eligibility: {rep} is not among the {k} nearest eligible reps of {account}, nor "
                            f"{account} among the {fill} nearest accounts of {rep}")
    return messages


def _plan_like(scenario: tercap.Scenario, rng: np.random.Generator, nearest: int, stray_share: float) -> pd.DataFrame:
    """Each account to one of its `nearest` nearest active reps of its segment; a few to any rep at all."""
    accounts = scenario.accounts
    team = _team(scenario)
    active = team[team["capacity"] > 0]
    rep = np.empty(len(accounts), dtype=object)
    for segment, members in accounts.groupby("segment").indices.items():
        pool = active[active["segment"] == segment]
        xyz = [np.column_stack([np.cos(np.radians(t["lat"])) * np.cos(np.radians(t["lon"])),
                                np.cos(np.radians(t["lat"])) * np.sin(np.radians(t["lon"])),
                                np.sin(np.radians(t["lat"]))]) for t in (pool, accounts.iloc[members])]
        count = min(nearest, len(pool))
        _, index = cKDTree(xyz[0]).query(xyz[1], k=count)
        index = np.asarray(index).reshape(len(members), count)
        rep[members] = pool.index.to_numpy()[index[np.arange(len(members)), rng.integers(0, count, len(members))]]
    strays = rng.random(len(accounts)) < stray_share
    rep[strays] = rng.choice(team.index.to_numpy(), strays.sum())
    return pd.DataFrame({"account_id": accounts["account_id"].to_numpy(), "rep_id": rep})


RULES = [
    {"nearest_reps": 2},
    {"nearest_reps": 1, "segment_match": False},
    {"nearest_reps": 2, "complex_min_experience": 4, "top_potential_share": 0.1, "top_min_experience": 6},
]


@pytest.mark.parametrize("seed", range(2))
def test_nearness_agrees_with_brute_force(tmp_path, seed):
    base = _generated(tmp_path, accounts=400, reps=30, seed=seed)
    rng = np.random.default_rng(seed)
    counts = []
    for rules in RULES:
        scenario = base.replace(assignment={"eligibility": rules})
        for widening in (0, 1):
            k = rules["nearest_reps"] * 2**widening
            for nearest, stray_share in ((k, 0.01), (k + 1, 0.0), (k, 0.2)):
                table = _plan_like(scenario, rng, nearest, stray_share)
                expected = brute_force_nearness(scenario, table, widening)
                got = [m for m in check_assignment(scenario, table, widening) if NEAR in m]
                assert got == expected[:10], (rules, widening, nearest, stray_share)
                counts.append(len(expected))
    assert min(counts) < 10 < max(counts)  # both a full list and a capped one were compared


def test_reached_clears_exactly_its_pair(tmp_path):
    scenario = _generated(tmp_path, accounts=400, reps=30, seed=7).replace(
        assignment={"eligibility": {"nearest_reps": 1}})
    owners = scenario.accounts[["account_id", "current_owner"]].rename(columns={"current_owner": "rep_id"})
    team = _team(scenario)
    account = scenario.accounts[~scenario.accounts["locked"]].iloc[0]
    rivals = team[(team["segment"] == account["segment"]) & (team["capacity"] > 0)]
    far = rivals.index[np.argmax(_km(account["lat"], account["lon"], rivals["lat"].to_numpy(),
                                     rivals["lon"].to_numpy()))]
    table = owners.assign(rep_id=owners["rep_id"].mask(owners["account_id"] == account["account_id"], far))

    before = check_assignment(scenario, table)
    broken = [m for m in before if NEAR in m]
    assert broken == brute_force_nearness(scenario, table)
    assert len(broken) == 1 and account["account_id"] in broken[0]
    other = rivals.index[rivals.index != far][0]
    assert check_assignment(scenario, table, reached=pd.DataFrame(
        {"account_id": [account["account_id"]], "rep_id": [other]})) == before
    after = check_assignment(scenario, table, reached=pd.DataFrame(
        {"account_id": [account["account_id"]], "rep_id": [far]}))
    assert after == [m for m in before if m != broken[0]]


def test_pairs_table_forces_and_forbids():
    """A pair the table allows is spared the rules; a pair it refuses is reported."""
    scenario = tiny_scenario(3, accounts=8, reps=3, assignment={"eligibility": {"complex_min_experience": 50}})
    accounts = scenario.accounts.assign(current_owner=None)  # no owner, so that no pair is exempt
    scenario = scenario.replace(accounts=accounts)
    needy = accounts.loc[accounts["buying_process"] == "complex", "account_id"].iloc[0]
    plain = accounts.loc[accounts["buying_process"] != "complex", "account_id"].iloc[0]
    table = pd.DataFrame({"account_id": accounts["account_id"], "rep_id": "R0"})
    assert any(f"{needy} needs 50 years" in m for m in check_assignment(scenario, table))

    pairs = pd.DataFrame({"account_id": [needy, plain], "rep_id": ["R0", "R0"], "eligible": [True, False]})
    problems = check_assignment(scenario.replace(pairs=pairs), table)
    assert not any(f"{needy} needs" in m for m in problems)
    assert f"eligibility: the pairs table forbids {plain} → R0" in problems


def test_large_check_is_fast(tmp_path):
    scenario = _generated(tmp_path, accounts=20_000, reps=200, seed=3)
    table = _plan_like(scenario, np.random.default_rng(0), nearest=3, stray_share=0.01)
    began = time.perf_counter()
    problems = check_assignment(scenario, table)
    elapsed = time.perf_counter() - began
    assert len([m for m in problems if NEAR in m]) == 10  # the strays break it; ten are told
    assert elapsed < 3.0, f"check_assignment took {elapsed:.1f} s on 20,000 × 200"
