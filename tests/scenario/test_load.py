"""Loading: extends, CSV and Parquet, derived values, immutability and replace()."""

from __future__ import annotations

import pandas as pd
import pytest

import tercap
from tercap.errors import ScenarioError
from tercap.scenario.docs import render
from tercap.scenario.schema import TABLE_SPECS

from ..conftest import REPO


def test_derived_values_follow_the_documented_defaults(tiny):
    scenario = tercap.load(tiny.path)
    accounts = scenario.accounts.set_index("account_id")
    # A1: smb 4 h × transactional 0.7; A3: smb 4 h × consultative (the default process) 1.0
    assert accounts.loc["A1", "workload_hours"] == pytest.approx(2.8)
    assert accounts.loc["A3", "workload_hours"] == pytest.approx(4.0)
    assert accounts.loc["A3", "buying_process"] == "consultative"
    # A3 has no coordinates: it sits at its geo unit's centroid
    assert (accounts.loc["A3", "lat"], accounts.loc["A3", "lon"]) == (40.44, -79.99)
    reps = scenario.reps.set_index("rep_id")
    assert reps.loc["R2", "capacity_hours"] == 100.0  # capacity.hours_per_month
    assert reps.loc["R1", "industries"] == ("retail", "healthcare")
    assert reps.loc["R2", "industries"] == ()
    assert reps.loc["R3", "ramp_profile"] == "enterprise"
    pipeline = scenario.pipeline.set_index("opp_id")
    assert pipeline.loc["O2", "owner"] == "R3"  # the account's owner
    assert list(scenario.accounts.columns) == [c.name for c in TABLE_SPECS["accounts"].columns]


def test_extends_merges_section_by_section(tiny):
    tiny.write("base.yaml", tiny.files["scenario.yaml"] + "assignment:\n  balance: {workload_tolerance: 0.2, "
               "potential_tolerance: 0.3}\n  weights: {travel: 2}\nsimulation:\n  trials: 500\n")
    tiny.write("what_if.yaml", """\
        extends: base.yaml
        name: tighter
        assignment:
          balance: {workload_tolerance: 0.05}
        simulation: {trials: null}
        capacity:
          hires:
            - {count: 2, segment: smb, start_month: 4}
        """)
    scenario = tercap.load(tiny.root / "what_if.yaml")
    balance = scenario.settings.assignment.balance
    assert balance.workload_tolerance == 0.05  # overridden
    assert balance.potential_tolerance == 0.3  # kept from the base
    assert scenario.settings.assignment.weights.travel == 2  # sibling section kept
    assert scenario.settings.simulation.trials == 10_000  # null resets to the default
    assert scenario.name == "tighter"
    assert scenario.settings.quota.company_target == 1_000_000
    assert list(scenario.planned_hires["rep_id"]) == ["HIRE-01", "HIRE-02"]
    assert str(scenario.planned_hires["start_date"].iloc[0].date()) == "2027-04-01"
    assert [p.name for p in scenario.files[:2]] == ["what_if.yaml", "base.yaml"]


def test_extends_resolves_tables_relative_to_the_file_that_names_them(tiny):
    (tiny.root / "whatifs").mkdir()
    tiny.write("whatifs/fewer_reps.csv", "\n".join(tiny.files["reps.csv"].splitlines()[:3]) + "\n")
    tiny.edit("accounts.csv", "A4,Delta,34.10,-118.30,,technology,enterprise", "A4,Delta,34.10,-118.30,,"
              "technology,smb")
    tiny.edit("accounts.csv", "complex,R3,false", "complex,R2,false")
    tiny.edit("pipeline.csv", "O2,A4,,", "O2,A4,R2,")
    tiny.write("whatifs/two_reps.yaml", "extends: ../scenario.yaml\ntables:\n  reps: fewer_reps.csv\n"
               "  history: null\n")
    scenario = tercap.load(tiny.root / "whatifs" / "two_reps.yaml")
    assert list(scenario.reps["rep_id"]) == ["R1", "R2"]
    assert scenario.history is None
    assert len(scenario.accounts) == 4  # from the base folder


def test_extends_cycle_is_named(tiny):
    tiny.write("a.yaml", "extends: b.yaml\n")
    tiny.write("b.yaml", "extends: a.yaml\nperiod: {start: 2027-01-01}\n")
    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.root / "a.yaml")
    (error,) = caught.value.errors
    assert "cycle" in error.message and "a.yaml → b.yaml → a.yaml" in error.message
    assert error.file.endswith("b.yaml") and error.line == 1


def test_extends_missing_file(tiny):
    tiny.write("child.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.root / "child.yaml")
    (error,) = caught.value.errors
    assert "does not exist" in error.message and error.key == "extends"


def test_csv_and_parquet_read_the_same(tiny):
    csv_scenario = tercap.load(tiny.path)
    yaml_text = tiny.files["scenario.yaml"]
    for name in ("reps", "accounts", "geo_units", "adjacency", "pipeline", "history"):
        raw = pd.read_csv(tiny.root / f"{name}.csv", dtype=str, keep_default_na=False)
        typed = raw.replace("", None)
        for column in typed:  # a Parquet writer keeps real types: numbers, booleans, dates
            if column in ("potential", "workload_hours", "lat", "lon", "amount", "capacity_hours", "area",
                          "length", "experience_years"):
                typed[column] = pd.to_numeric(typed[column])
            elif column in ("created", "closed", "expected_close"):
                typed[column] = pd.to_datetime(typed[column])
            elif column in ("won",):
                typed[column] = typed[column].eq("true")
        typed.to_parquet(tiny.root / f"{name}.parquet")
        yaml_text = yaml_text.replace(f"{name}.csv", f"{name}.parquet")
    tiny.write("scenario.yaml", yaml_text)
    parquet_scenario = tercap.load(tiny.path)
    for name in ("reps", "accounts", "geo_units", "adjacency", "pipeline", "history"):
        pd.testing.assert_frame_equal(csv_scenario.table(name), parquet_scenario.table(name),
                                      check_dtype=False)


def test_parquet_errors_name_row_and_column(tiny):
    frame = pd.read_csv(tiny.root / "reps.csv")
    frame.loc[1, "experience_years"] = -2
    frame.to_parquet(tiny.root / "reps.parquet")
    tiny.edit("scenario.yaml", "reps.csv", "reps.parquet")
    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.path)
    (error,) = caught.value.errors
    assert (error.row, error.column) == (3, "experience_years")


def test_scenario_is_immutable(tiny):
    scenario = tercap.load(tiny.path)
    accounts = scenario.accounts
    accounts.loc[0, "potential"] = 1.0
    accounts["extra"] = 1
    assert scenario.accounts.loc[0, "potential"] == 50_000
    assert "extra" not in scenario.accounts
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error or dataclass's
        scenario.settings.quota.company_target = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        scenario.settings = None  # type: ignore[misc]


def test_replace_returns_a_new_validated_scenario(tiny):
    scenario = tercap.load(tiny.path)
    richer = scenario.replace(quota={"company_target": 2_000_000},
                              capacity={"hires": [{"segment": "smb", "count": 3, "start_month": 7}]})
    assert richer.settings.quota.company_target == 2_000_000
    assert richer.settings.quota.over_assignment == scenario.settings.quota.over_assignment
    assert len(richer.planned_hires) == 3 and scenario.planned_hires.empty
    assert scenario.settings.quota.company_target == 1_000_000

    reps = scenario.reps
    reps.loc[reps["rep_id"] == "R2", "capacity_hours"] = 150.0
    changed = scenario.replace(reps=reps)
    assert changed.reps.set_index("rep_id").loc["R2", "capacity_hours"] == 150.0

    reps.loc[0, "lat"] = 123.0
    with pytest.raises(ScenarioError) as caught:
        scenario.replace(reps=reps)
    assert caught.value.errors[0].column == "lat" and caught.value.errors[0].row == 2
    with pytest.raises(TypeError, match="unknown name 'quotas'"):
        scenario.replace(quotas={})


def test_capacity_is_ramp_and_date_adjusted(tiny):
    tiny.edit("reps.csv", "capacity_hours,max_accounts", "capacity_hours,max_accounts,start_date,end_date")
    tiny.edit("reps.csv", "R2,Bob Park,41.88,-87.63,Central,smb,1,,,", "R2,Bob Park,41.88,-87.63,Central,"
              "smb,1,,,,2026-12-15,")
    tiny.edit("reps.csv", "technology,120,10", "technology,120,10,,2027-06-30")
    scenario = tercap.load(tiny.path)
    summary = scenario.segment_summary()
    # R1: 12 × 100 h. R2 starts mid-December: smb curve 0.33, 0.67, 1 → months 1.. of the period are
    # months 1, 2, 3 … since the start: 0.67 + 1 × 11 = 11.67 months of 100 h.
    assert summary.loc["smb", "capacity_h"] == pytest.approx(1200 + 100 * (0.67 + 11))
    # R3 leaves on 30 June: 6 months of 120 h.
    assert summary.loc["enterprise", "capacity_h"] == pytest.approx(720)


def test_html_repr_escapes_names(tiny):
    tiny.edit("scenario.yaml", "name: tiny", "name: '<script>alert(1)</script>'")
    html = tercap.load(tiny.path)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "smb" in html


def test_every_example_scenario_loads():
    examples = sorted((REPO / "scenarios").glob("*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        scenario = tercap.load(path)
        assert len(scenario.accounts) > 0, path


def test_format_reference_is_up_to_date():
    document = (REPO / "docs" / "scenario-format.md").read_text(encoding="utf-8")
    assert document == render(document), "run: python -m tercap.scenario.docs docs/scenario-format.md"


def test_format_example_is_a_valid_configuration():
    import yaml

    from tercap.scenario.schema import Settings

    document = (REPO / "docs" / "scenario-format.md").read_text(encoding="utf-8")
    example = document.split("## A complete example")[1].split("```yaml")[1].split("```")[0]
    data = yaml.safe_load(example)
    del data["tables"]
    settings = Settings.model_validate(data)
    assert settings.territory is not None and settings.capacity.hires[0].count == 2
