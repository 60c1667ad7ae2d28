"""The synthetic scenario generator: determinism, schema conformance, realism, formats and speed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import yaml

from tercap.scenario.generate import generate_scenario
from tercap.scenario.schema import TABLE_SPECS, Kind, Settings, Simulation, TableSpec, WorkloadModel

TABLES = ("reps", "accounts", "geo_units", "adjacency", "pipeline", "history")
PERIOD_START = pd.Timestamp("2027-01-01")


def read_tables(yaml_path: Path) -> dict[str, pd.DataFrame]:
    """Every table a generated scenario names, read with pandas as the file holds it."""
    document = yaml.safe_load(yaml_path.read_text())
    tables = {}
    for name, file in document["tables"].items():
        path = yaml_path.parent / file
        tables[name] = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return tables


def normalised(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Cells by their schema kind, so that CSV and Parquet readings compare equal."""
    columns = {}
    for name in frame.columns:
        kind = spec.column_index[name].kind
        if kind is Kind.DATE:
            columns[name] = pd.to_datetime(frame[name].astype("string"))
        elif kind in (Kind.FLOAT, Kind.INT):
            columns[name] = frame[name].astype(float)
        elif kind is Kind.BOOL:
            columns[name] = frame[name].astype(bool)
        else:
            columns[name] = frame[name].astype("string")
    return pd.DataFrame(columns)


def workload_hours(accounts: pd.DataFrame) -> pd.Series:
    """Given workload, or the schema's derived one where the cell is empty."""
    model = WorkloadModel()
    derived = accounts["segment"].map(model.hours_by_segment) * accounts["buying_process"].map(
        model.process_multiplier)
    return accounts["workload_hours"].fillna(derived)


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scenario(tmp_path_factory.mktemp("csv"), accounts=4000, reps=40, seed=7)


@pytest.fixture(scope="module")
def tables(scenario_path: Path) -> dict[str, pd.DataFrame]:
    return read_tables(scenario_path)


# ----------------------------------------------------------------------------------------------
# Determinism and files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table_format", ["csv", "parquet"])
def test_same_seed_gives_identical_files(tmp_path: Path, table_format: str) -> None:
    runs = [generate_scenario(tmp_path / folder, accounts=800, reps=12, seed=seed, table_format=table_format)
            for folder, seed in (("a", 3), ("b", 3), ("c", 4))]
    files = sorted(path.name for path in runs[0].parent.iterdir())
    assert files == sorted(path.name for path in runs[1].parent.iterdir())
    for name in files:
        assert (runs[0].parent / name).read_bytes() == (runs[1].parent / name).read_bytes(), name
    changed = [name for name in files if name != "scenario.yaml"
               and (runs[0].parent / name).read_bytes() != (runs[2].parent / name).read_bytes()]
    assert len(changed) == len(files) - 1


def test_yaml_names_the_tables_and_is_a_valid_scenario(scenario_path: Path) -> None:
    document = yaml.safe_load(scenario_path.read_text())
    assert document["tables"] == {name: f"{name}.csv" for name in TABLES}
    assert all((scenario_path.parent / file).is_file() for file in document["tables"].values())
    settings = Settings.model_validate({k: v for k, v in document.items() if k != "tables"})
    assert settings.period.start == dt.date(2027, 1, 1)
    assert settings.period.months == 12
    assert settings.simulation.seed == 7
    target = settings.quota.company_target
    assert target is not None and target > 0
    assert float(f"{target:.3g}") == target  # three significant digits


def test_loads_without_errors_or_warnings(scenario_path: Path) -> None:
    from tercap.scenario import load

    scenario = load(scenario_path)
    assert len(scenario.accounts) == 4000
    assert not scenario.warnings


def test_csv_and_parquet_hold_the_same_data(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> None:
    parquet = read_tables(generate_scenario(tmp_path, accounts=4000, reps=40, seed=7,
                                            table_format="parquet"))
    assert parquet.keys() == tables.keys()
    for name, frame in tables.items():
        spec = TABLE_SPECS[name]
        pd.testing.assert_frame_equal(normalised(frame, spec), normalised(parquet[name], spec),
                                      check_exact=True, obj=name)


def test_refuses_a_non_empty_folder_without_a_scenario(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_scenario(tmp_path, accounts=10, reps=2)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_overwrites_a_scenario_folder(tmp_path: Path) -> None:
    generate_scenario(tmp_path, accounts=50, reps=3, seed=1)
    path = generate_scenario(tmp_path, accounts=60, reps=3, seed=1)
    assert len(read_tables(path)["accounts"]) == 60
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("arguments", "message"), [
    ({"accounts": 0, "reps": 1}, "accounts"),
    ({"accounts": 1, "reps": 0}, "reps"),
    ({"accounts": 1, "reps": 1, "units": 2}, "units"),
    ({"accounts": 1, "reps": 1, "seed": -1}, "seed"),
    ({"accounts": 1, "reps": 1, "table_format": "xlsx"}, "table_format"),
])
def test_invalid_arguments_are_refused(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_scenario(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_tiny_scenario_leaves_out_empty_tables(tmp_path: Path) -> None:
    path = generate_scenario(tmp_path, accounts=1, reps=1, units=3)
    tables = read_tables(path)
    assert {"reps", "accounts", "geo_units", "adjacency"} <= tables.keys()
    assert all(len(frame) > 0 for frame in tables.values())


# ----------------------------------------------------------------------------------------------
# Structure
# ----------------------------------------------------------------------------------------------


def test_tables_have_exactly_schema_columns(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        spec = TABLE_SPECS[name]
        schema_order = [c.name for c in spec.columns if c.name in frame.columns]
        assert list(frame.columns) == schema_order, name
        required = {c.name for c in spec.columns if c.required}
        assert required <= set(frame.columns), name
        for column in spec.columns:
            if column.name in frame.columns and not column.nullable:
                assert frame[column.name].notna().all(), (name, column.name)


def test_identifiers_are_unique_and_references_hold(tables: dict[str, pd.DataFrame]) -> None:
    reps, accounts, units = tables["reps"], tables["accounts"], tables["geo_units"]
    pipeline, history = tables["pipeline"], tables["history"]
    assert reps["rep_id"].is_unique and accounts["account_id"].is_unique and units["unit_id"].is_unique
    assert pd.concat([pipeline["opp_id"], history["opp_id"]]).is_unique
    assert accounts["current_owner"].dropna().isin(reps["rep_id"]).all()
    assert pipeline["owner"].dropna().isin(reps["rep_id"]).all()
    assert accounts["geo_unit"].isin(units["unit_id"]).all()
    assert pipeline["account_id"].isin(accounts["account_id"]).all()
    assert history["account_id"].isin(accounts["account_id"]).all()
    # Pipeline deals belong to the account's owner; unowned accounts' deals have no owner.
    owner_of = accounts.set_index("account_id")["current_owner"]
    expected = owner_of.reindex(pipeline["account_id"]).to_numpy()
    assert (pipeline["owner"].fillna("") == pd.Series(expected).fillna("")).all()
    # Some closed deals belong to reps who have left since.
    former = ~history["owner"].isin(reps["rep_id"])
    assert 0.03 < former.mean() < 0.2
    assert history["owner"][former].str.match(r"R9\d+$").all()


def test_adjacency_is_connected_and_planar(tables: dict[str, pd.DataFrame]) -> None:
    units, adjacency = tables["geo_units"], tables["adjacency"]
    graph = nx.Graph()
    graph.add_nodes_from(units["unit_id"])
    graph.add_edges_from(zip(adjacency["unit_a"], adjacency["unit_b"], strict=True))
    assert nx.is_connected(graph)
    assert nx.check_planarity(graph)[0]
    assert len(adjacency) <= 3 * len(units)
    assert (adjacency["unit_a"] < adjacency["unit_b"]).all()
    assert not adjacency.duplicated(["unit_a", "unit_b"]).any()
    assert (adjacency["length"] > 0).all()


def test_deals_follow_the_stages_and_the_calendar(tables: dict[str, pd.DataFrame]) -> None:
    pipeline, history = tables["pipeline"], tables["history"]
    stages = Simulation().stage_names
    assert pipeline["stage"].isin(stages).all() and history["last_stage"].isin(stages).all()
    created, closed = pd.to_datetime(history["created"]), pd.to_datetime(history["closed"])
    assert (closed >= created).all()
    assert (closed < PERIOD_START).all()
    assert (closed >= PERIOD_START - pd.DateOffset(months=24)).all()
    assert (history.loc[history["won"], "last_stage"] == stages[-1]).all()
    assert (pd.to_datetime(pipeline["created"]) < PERIOD_START).all()
    expected_close = pd.to_datetime(pipeline["expected_close"])
    assert (expected_close >= pd.to_datetime(pipeline["created"])).all()
    overdue = (expected_close < PERIOD_START).mean()  # as in a CRM export: close dates not yet moved
    assert 0.02 < overdue < 0.5
    category = pipeline["stage"].map({stages[-1]: "commit", stages[-2]: "best_case"}).fillna("pipeline")
    assert (pipeline["forecast_category"] == category).all()
    # A funnel: fewer open deals in each later stage.
    per_stage = pipeline["stage"].value_counts().reindex(stages).to_numpy()
    assert (np.diff(per_stage) < 0).all()


def test_reps_have_hires_departures_and_last_year(tables: dict[str, pd.DataFrame]) -> None:
    reps = tables["reps"]
    start = pd.to_datetime(reps["start_date"])
    hired = start.notna()
    assert hired.any()
    assert (start[hired] > PERIOD_START - pd.DateOffset(months=12)).all()
    assert (start[hired] < PERIOD_START + pd.DateOffset(months=3)).all()
    # known hires around the start, and reps who joined 4-12 months before (still ramping)
    assert (start >= PERIOD_START - pd.DateOffset(months=4)).any()
    assert (start < PERIOD_START - pd.DateOffset(months=4)).any()
    end = pd.to_datetime(reps["end_date"]).dropna()
    assert ((end >= PERIOD_START) & (end < PERIOD_START + pd.DateOffset(months=12))).all()
    with_history = reps["last_year_quota"].notna()
    assert (hired == ~with_history).all()  # no last-year figures: joined within the year, so ramps
    assert with_history.mean() > 0.5
    assert reps.loc[with_history, "last_year_actual"].notna().all()
    assert (reps["capacity_hours"] % 5 == 0).all()
    industries = reps["industries"].str.split(";")
    assert industries.map(len).between(1, 3).all()
    assert industries.explode().isin(tables["accounts"]["industry"]).all()


# ----------------------------------------------------------------------------------------------
# Realism: properties that uniform noise would not have
# ----------------------------------------------------------------------------------------------


def test_segment_follows_company_size(tables: dict[str, pd.DataFrame]) -> None:
    accounts = tables["accounts"]
    mix = pd.crosstab(accounts["size_band"], accounts["segment"], normalize="index")
    assert mix.loc["1-99", "smb"] > 0.8
    assert mix.loc["100-999", "mid_market"] > 0.6
    assert mix.loc["1000+", "enterprise"] > 0.6
    process = pd.crosstab(accounts["segment"], accounts["buying_process"], normalize="index")
    assert process.loc["enterprise", "complex"] > 0.45
    assert process.loc["smb", "transactional"] > 0.55


def test_enterprise_potential_dwarfs_smb(tables: dict[str, pd.DataFrame]) -> None:
    median = tables["accounts"].groupby("segment")["potential"].median()
    assert median["enterprise"] > 5 * median["smb"]
    assert median["enterprise"] > median["mid_market"] > median["smb"]


def test_accounts_cluster_in_metros(tables: dict[str, pd.DataFrame]) -> None:
    accounts, units = tables["accounts"], tables["geo_units"]
    rural = units["name"].str.startswith("Rural")
    assert units.loc[rural, "area"].median() > 10 * units.loc[~rural, "area"].median()
    metro_area_share = units.loc[~rural, "area"].sum() / units["area"].sum()
    in_metro_units = accounts["geo_unit"].isin(units.loc[~rural, "unit_id"]).mean()
    assert in_metro_units > 0.75
    assert in_metro_units > 2.5 * metro_area_share  # accounts are denser in metro units
    assert accounts["industry"].nunique() >= 10
    shares = accounts["industry"].value_counts(normalize=True)
    assert shares.max() < 0.25 and shares.min() > 0.02


def test_starting_books_are_unbalanced(tables: dict[str, pd.DataFrame]) -> None:
    reps, accounts = tables["reps"], tables["accounts"]
    books = accounts["current_owner"].value_counts().reindex(reps["rep_id"], fill_value=0)
    for segment, members in reps.groupby("segment")["rep_id"]:
        present = members[pd.to_datetime(reps.loc[members.index, "start_date"]).fillna(PERIOD_START)
                          <= PERIOD_START]
        book = books[present]
        assert book.std() / book.mean() > 0.25, segment
    assert 0.03 < accounts["current_owner"].isna().mean() < 0.07
    assert accounts.loc[accounts["locked"], "current_owner"].notna().all()
    assert 0.3 < accounts["workload_hours"].notna().mean() < 0.7


def test_history_win_rate_matches_the_stages(tables: dict[str, pd.DataFrame]) -> None:
    assert tables["history"]["won"].mean() == pytest.approx(Simulation().win_rate, abs=0.04)


def test_workload_is_near_capacity(tables: dict[str, pd.DataFrame]) -> None:
    reps, accounts = tables["reps"], tables["accounts"]
    utilisation = workload_hours(accounts).sum() / (12 * reps["capacity_hours"].sum())
    assert 0.8 <= utilisation <= 1.0
    by_segment = (workload_hours(accounts).groupby(accounts["segment"]).sum()
                  / (12 * reps.groupby("segment")["capacity_hours"].sum()))
    assert by_segment.between(0.8, 1.0).all()


@pytest.mark.parametrize(("accounts", "reps", "busy"), [(3000, 2, True), (40, 30, False)])
def test_capacity_stays_realistic_when_the_ratio_does_not_fit(tmp_path: Path, accounts: int, reps: int,
                                                              busy: bool) -> None:
    tables = read_tables(generate_scenario(tmp_path, accounts=accounts, reps=reps, seed=3))
    hours = tables["reps"]["capacity_hours"]
    assert hours.between(90, 170).all()
    utilisation = workload_hours(tables["accounts"]).sum() / (12 * hours.sum())
    assert utilisation > 1.2 if busy else utilisation < 0.5


def test_capacity_hours_stay_in_the_band(tables: dict[str, pd.DataFrame]) -> None:
    assert tables["reps"]["capacity_hours"].between(90, 170).all()


def test_about_half_the_reps_made_last_years_quota(tmp_path: Path) -> None:
    reps = read_tables(generate_scenario(tmp_path, accounts=3000, reps=300, seed=2))["reps"]
    attainment = (reps["last_year_actual"] / reps["last_year_quota"]).dropna()
    assert 0.35 < (attainment >= 1).mean() < 0.65


# ----------------------------------------------------------------------------------------------
# Size
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hundred_thousand_accounts_in_under_thirty_seconds(tmp_path: Path) -> None:
    began = time.perf_counter()
    path = generate_scenario(tmp_path, accounts=100_000, reps=1_000, seed=11)
    elapsed = time.perf_counter() - began
    assert elapsed < 30, f"took {elapsed:.1f} s"
    document = yaml.safe_load(path.read_text())
    assert set(document["tables"]) == set(TABLES)
    with (tmp_path / "accounts.csv").open() as file:
        assert sum(1 for _ in file) == 100_001
