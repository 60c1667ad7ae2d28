"""Territory design on a scenario: a 12 × 12 grid of units with one account each, four reps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.cli import main
from tercap.territory import design_territories, rebalance_territories

SIDE = 12
YAML = """\
name: grid
period: {{start: 2027-01-01, months: 12}}
tables: {{reps: reps.csv, accounts: accounts.csv, geo_units: geo_units.csv, adjacency: adjacency.csv}}
quota: {{company_target: 1000000}}
territory: {{balance: {{workload: {tolerance}}}, keep_home_units: true}}
"""


def write_grid(folder: Path, tolerance: float = 0.03, seed: int = 2, side: int = SIDE) -> Path:
    """Units 0.1° apart; workloads 20–60 h; today the west half (columns 0–4, not 0–5) is R1's and R2's,
    the east R3's and R4's: R3 and R4 carry too much."""
    rng = np.random.default_rng(seed)
    units, accounts, edges = [], [], []
    for i in range(side):
        for j in range(side):
            unit = f"U{i:02d}{j:02d}"
            units.append((unit, 40 + 0.1 * i, -90 + 0.1 * j))
            owner = ("R1" if i < side // 2 else "R2") if j < 5 else ("R3" if i < side // 2 else "R4")
            accounts.append((f"A{i:02d}{j:02d}", unit, "smb", 10000, round(float(rng.uniform(20, 60)), 1), owner))
            if j + 1 < side:
                edges.append((unit, f"U{i:02d}{j + 1:02d}"))
            if i + 1 < side:
                edges.append((unit, f"U{i + 1:02d}{j:02d}"))
    pd.DataFrame(units, columns=["unit_id", "lat", "lon"]).to_csv(folder / "geo_units.csv", index=False)
    pd.DataFrame(edges, columns=["unit_a", "unit_b"]).to_csv(folder / "adjacency.csv", index=False)
    pd.DataFrame(accounts, columns=["account_id", "geo_unit", "segment", "potential", "workload_hours",
                                    "current_owner"]).to_csv(folder / "accounts.csv", index=False)
    homes = [("R1", 40.2, -89.8), ("R2", 40.9, -89.8), ("R3", 40.2, -89.0), ("R4", 40.9, -89.0)]
    pd.DataFrame([(r, lat, lon, "smb") for r, lat, lon in homes],
                 columns=["rep_id", "lat", "lon", "segment"]).to_csv(folder / "reps.csv", index=False)
    (folder / "scenario.yaml").write_text(YAML.format(tolerance=tolerance), encoding="utf-8")
    return folder / "scenario.yaml"


@pytest.fixture()
def grid(tmp_path: Path) -> tercap.Scenario:
    return tercap.load(write_grid(tmp_path))


def test_design_gives_each_rep_a_contiguous_balanced_territory_around_home(grid):
    plan = design_territories(grid, time_limit=20)
    assert plan.violations == () and plan.balanced
    assert plan.territories["contiguous"].all() and plan.worst_deviation() <= 0.03 + 1e-9
    assert list(plan.territories["territory_id"]) == ["R1", "R2", "R3", "R4"]
    units = plan.units.set_index("unit_id")
    assert units.loc["U0202", "territory_id"] == "R1" and units.loc["U0902", "territory_id"] == "R2"  # homes
    assert plan.territories["units"].sum() == SIDE * SIDE


def test_rebalancing_moves_no_more_than_carving_from_scratch(grid):
    rebalanced = rebalance_territories(grid, time_limit=20)
    scratch = design_territories(grid, time_limit=20)
    assert rebalanced.balanced and rebalanced.territories["contiguous"].all()
    assert 0 < rebalanced.units["moved"].sum() <= scratch.units["moved"].sum()
    curve = rebalanced.trade_off
    assert curve["units_moved"].iloc[0] == 0 and curve["units_moved"].iloc[-1] == rebalanced.units["moved"].sum()
    assert curve.iloc[-1, 1] <= 0.03 + 1e-9 < curve.iloc[0, 1]  # the imbalance of today, and the end


def test_cli_territories_writes_the_tables_and_the_map(tmp_path: Path, capsys):
    path = write_grid(tmp_path)
    code = main(["territories", str(path), "--out", str(tmp_path / "run"), "--time-limit", "20"])
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "run" / "territory"
    units = pd.read_csv(folder / "units.csv")
    assert list(units.columns) == ["unit_id", "territory_id", "rep_id", "moved", "segment"]
    territories = pd.read_csv(folder / "territories.csv")
    assert list(territories.columns) == ["territory_id", "rep_id", "units", "workload", "potential", "accounts",
                                         "compactness", "contiguous", "target_share", "segment"]
    assert (folder / "map.png").stat().st_size > 10_000
    assert "all contiguous" in capsys.readouterr().out


def test_a_small_map_is_carved_exactly_around_the_homes(tmp_path: Path):
    scenario = tercap.load(write_grid(tmp_path, tolerance=0.05, side=6))
    plan = design_territories(scenario, time_limit=60)  # 36 units: the exact model
    assert plan.method == "exact" and plan.balanced
    assert plan.objective == pytest.approx(plan.bound, rel=1e-6)  # proven optimal
    units = plan.units.set_index("unit_id")
    assert [units.loc[u, "rep_id"] for u in ("U0202", "U0502", "U0205", "U0505")] == ["R1", "R2", "R3", "R4"]
    heuristic = design_territories(scenario, time_limit=20, method="heuristic")
    assert heuristic.method == "heuristic" and heuristic.territories["contiguous"].all()


def write_two_segments(folder: Path) -> Path:
    """The grid with an enterprise account beside every SMB account (heavier in the north-east) and two
    enterprise reps besides the four SMB reps."""
    path = write_grid(folder)
    accounts = pd.read_csv(folder / "accounts.csv")
    i, j = accounts["geo_unit"].str[1:3].astype(int), accounts["geo_unit"].str[3:5].astype(int)
    enterprise = accounts.assign(account_id="E" + accounts["account_id"].str[1:], segment="enterprise",
                                 workload_hours=(40 + 10 * i + 5 * j).astype(float), potential=90000,
                                 current_owner=np.where(j < 6, "E1", "E2"))
    pd.concat([accounts, enterprise]).to_csv(folder / "accounts.csv", index=False)
    reps = pd.read_csv(folder / "reps.csv")
    extra = pd.DataFrame([("E1", 40.5, -89.7, "enterprise"), ("E2", 40.5, -89.1, "enterprise")],
                         columns=["rep_id", "lat", "lon", "segment"])
    pd.concat([reps, extra]).to_csv(folder / "reps.csv", index=False)
    return path


def test_each_segment_is_carved_for_its_own_reps_from_its_own_accounts(tmp_path: Path):
    from tercap.territory import account_owners

    scenario = tercap.load(write_two_segments(tmp_path))
    plan = design_territories(scenario, time_limit=20, method="heuristic")
    assert plan.segments == ["enterprise", "smb"] and plan.balanced
    territories = plan.territories.set_index("territory_id")
    assert territories.loc[["E1", "E2"], "segment"].eq("enterprise").all()
    assert territories.loc[["R1", "R2", "R3", "R4"], "segment"].eq("smb").all()
    accounts = scenario.accounts
    for segment, reps in (("enterprise", ["E1", "E2"]), ("smb", ["R1", "R2", "R3", "R4"])):
        units = plan.units[plan.units["segment"] == segment]
        assert len(units) == SIDE * SIDE and set(units["rep_id"]) == set(reps)
        load = accounts[accounts["segment"] == segment].groupby(
            accounts["geo_unit"].map(units.set_index("unit_id")["territory_id"]))["workload_hours"].sum()
        assert np.allclose(load.to_numpy(), territories.loc[load.index, "workload"].to_numpy())
        assert (load / load.mean() - 1).abs().max() <= 0.03 + 1e-9  # against the segment's own mean
    owners = account_owners(plan, scenario)
    segment_of_rep = plan.territories.set_index("rep_id")["segment"]
    assert owners.notna().all()
    assert (owners.map(segment_of_rep).to_numpy() == accounts.set_index("account_id").loc[owners.index,
                                                                                          "segment"]).all()
    assert design_territories(scenario.replace(territory={"by_segment": False}), time_limit=20,
                              method="heuristic").segments == ["all"]


def test_a_rep_who_starts_late_gets_a_territory_sized_to_the_capacity(tmp_path: Path):
    path = write_grid(tmp_path, tolerance=0.04)
    reps = pd.read_csv(tmp_path / "reps.csv").assign(start_date=["", "", "", "2027-07-01"])
    reps.to_csv(tmp_path / "reps.csv", index=False)  # R4 starts half-way through the year
    scenario = tercap.load(path)
    plan = design_territories(scenario, time_limit=20, method="heuristic")
    territories = plan.territories.set_index("territory_id")
    shares = territories["target_share"]
    assert shares["R4"] < 0.6 * shares["R1"] and shares.sum() == pytest.approx(1.0)
    assert plan.balanced and plan.worst_deviation() <= 0.04 + 1e-9
    workload = territories["workload"]
    assert np.allclose(workload / (workload.sum() * shares), 1.0, atol=0.04 + 1e-9)  # each against its own share
    equal = design_territories(scenario.replace(territory={"shares": "equal"}), time_limit=20, method="heuristic")
    assert equal.territories["target_share"].eq(0.25).all() and equal.balanced


def test_a_planning_run_with_territories_lets_accounts_follow_their_unit(tmp_path: Path):
    from tercap.report import RUN_FILES, TERRITORY_FILES, write_run
    from tercap.run import run_plan

    scenario = tercap.load(write_two_segments(tmp_path))
    run = run_plan(scenario, trials=200, seed=1)
    assert run.territories is not None and run.complete
    assert [step for step, _ in run.steps] == ["territories", "assignment", "simulation", "quotas"]
    units = run.territories.units.set_index(["segment", "unit_id"])["rep_id"]
    accounts = scenario.accounts.set_index("account_id")
    given = run.plan.assignments.set_index("account_id")["rep_id"]
    expected = units.reindex(pd.MultiIndex.from_arrays([accounts["segment"], accounts["geo_unit"]])).to_numpy()
    assert (given.loc[accounts.index].to_numpy() == expected).all()
    assert run.plan.stats.strategy == "territories" and run.plan.stats.bound is None
    assert run.headline()["territories"] == 6
    report = write_run(run, tmp_path / "run")
    assert all((tmp_path / "run" / name).is_file() for name in (*RUN_FILES, *TERRITORY_FILES))
    assert "<h2>Territories</h2>" in report.read_text(encoding="utf-8")
    from openpyxl import load_workbook

    assert {"Territories", "Units"} <= set(load_workbook(tmp_path / "run" / "plan.xlsx").sheetnames)


def test_account_level_assigns_each_account_among_its_territorys_reps(tmp_path: Path):
    from tercap.errors import TercapError
    from tercap.run import run_plan
    from tercap.territory import territory_members

    path = write_grid(tmp_path)
    reps = pd.read_csv(tmp_path / "reps.csv")
    pd.concat([reps, reps.assign(rep_id=reps["rep_id"] + "b", lat=reps["lat"] + 0.05)]).to_csv(
        tmp_path / "reps.csv", index=False)  # eight reps, two at each home
    scenario = tercap.load(path).replace(territory={"count": 2, "account_level": True, "by_segment": False},
                                         assignment={"balance": {"workload_tolerance": 0.15}})
    run = run_plan(scenario, trials=100, seed=1)
    assert run.territories is not None and run.plan.violations == () and run.plan.status.has_plan
    rep_lists = run.territories.territories["rep_id"].str.split(";")
    assert rep_lists.map(len).tolist() == [4, 4]
    by_account, by_rep = territory_members(run.territories, scenario)
    given = run.plan.assignments.set_index("account_id")["rep_id"]
    assert (given.map(by_rep).to_numpy() == by_account.loc[given.index].to_numpy()).all()  # inside territory
    from tercap.report import write_run

    report = write_run(run, tmp_path / "run").read_text(encoding="utf-8")
    assert "assigned among their territory&#x27;s reps" in report or "assigned among their territory's reps" in report
    with pytest.raises(TercapError, match="account_level"):
        run_plan(scenario.replace(territory={"account_level": False}), trials=100, seed=1)
    from tercap.assign import TerritoryGroups
    from tercap.assign.check import check_assignment

    wrong = run.plan.assignments[["account_id", "rep_id"]].copy()
    first = wrong["account_id"].iloc[0]
    other = by_rep[by_rep != by_account[first]].index[0]
    wrong.loc[wrong["account_id"] == first, "rep_id"] = other
    problems = check_assignment(scenario, wrong, territories=TerritoryGroups(by_account, by_rep))
    assert any(p.startswith(f"territory: {first} ") for p in problems)


def test_the_senior_rep_gets_the_territory_with_more_potential_and_complex_buying(tmp_path: Path):
    path = write_grid(tmp_path)
    accounts = pd.read_csv(tmp_path / "accounts.csv")
    corner = (accounts["geo_unit"].str[1:3].astype(int) < 4) & (accounts["geo_unit"].str[3:5].astype(int) < 4)
    accounts.assign(potential=np.where(corner, 200000, 10000), current_owner="",
                    buying_process=np.where(corner, "complex", "transactional")).to_csv(tmp_path / "accounts.csv",
                                                                                     index=False)
    pd.DataFrame([("R1", 40.55, -89.45, "smb", 0.5), ("R2", 40.55, -89.45, "smb", 10.0)],  # the same home
                 columns=["rep_id", "lat", "lon", "segment", "experience_years"]).to_csv(tmp_path / "reps.csv",
                                                                                          index=False)
    scenario = tercap.load(path).replace(territory={"keep_home_units": False})
    plan = design_territories(scenario, time_limit=20, method="heuristic")
    richer = plan.territories.sort_values("potential").iloc[-1]
    assert plan.balanced and richer["potential"] > 1.5 * plan.territories["potential"].min()
    assert richer["rep_id"] == "R2"  # the senior one


def test_a_planning_run_can_rebalance_todays_territories(tmp_path: Path):
    from tercap.report import write_run
    from tercap.run import run_plan

    scenario = tercap.load(write_grid(tmp_path)).replace(territory={"rebalance": True})
    run = run_plan(scenario, trials=100, seed=1)
    assert run.territories is not None and run.territories.trade_off is not None and run.territories.balanced
    assert 0 < run.territories.units["moved"].sum() < SIDE * SIDE / 2  # today's territories, moved a little
    write_run(run, tmp_path / "run")
    assert (tmp_path / "run" / "territory" / "trade_off.csv").is_file()


def test_homes_far_from_the_work_are_named_with_their_catchment_against_their_share():
    """Six units in a row, the work all in the east; homes on units 0 and 1 (equal shares): the home on
    unit 1 is nearest every unit but one, so its catchment holds all the work, unit 0's none."""
    from tercap.territory import _home_catchments
    from tercap.territory.carve import CarveSettings
    from tercap.territory.units import UnitGraph

    workload = np.array([0.0, 0.0, 10.0, 10.0, 10.0, 10.0])
    edges = np.array([(a, a + 1) for a in range(5)])
    graph = UnitGraph(np.array([f"U{a}" for a in range(6)], dtype=object), np.full(6, 40.0),
                      -90 + 0.1 * np.arange(6), {"workload": workload}, edges, np.ones(5), derived=False)
    settings = CarveSettings(count=2, tolerances={"workload": 0.05})
    [note] = _home_catchments(graph, settings, {0: 0, 1: 1}, ["WEST", "EAST"])
    assert "most above: EAST 100.0% against 50.0%" in note and "most below: WEST 0.0% against 50.0%" in note
    assert _home_catchments(graph, settings, {2: 0, 5: 1}, ["WEST", "EAST"]) == []  # units 0-3 | 4-5: 50% each
