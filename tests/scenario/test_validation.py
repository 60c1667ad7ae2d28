"""Every kind of bad input gets its own message naming file, row and column."""

from __future__ import annotations

import pytest

import tercap
from tercap.errors import Problem, ScenarioError


def load_errors(path) -> tuple[Problem, ...]:
    with pytest.raises(ScenarioError) as caught:
        tercap.load(path)
    return caught.value.errors


def only(errors: tuple[Problem, ...], **expected: object) -> Problem:
    """The single error of `errors`, checked against `expected` attributes."""
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    for name, value in expected.items():
        if name == "message":
            assert value in error.message, error
        else:
            assert getattr(error, name) == value, error
    return error


def test_tiny_scenario_is_valid(tiny):
    scenario = tercap.load(tiny.path)
    assert len(scenario.accounts) == 4
    assert [str(w) for w in scenario.warnings] == []


# (file, old text, new text, expected file, row, column, words in the message)
CELL_CASES = {
    "missing required column": ("reps.csv", "rep_id,name,lat,lon,region,segment",
                                "rep_id,name,lat,lon,region,role", "reps.csv", 1, "segment",
                                "required column is missing"),
    "not a number": ("reps.csv", "Bob Park,41.88,-87.63,Central,smb,1",
                     "Bob Park,41.88,-87.63,Central,smb,lots", "reps.csv", 3, "experience_years",
                     "expected a number, got 'lots'"),
    "negative hours": ("accounts.csv", "smb,80000,20,", "smb,80000,-20,", "accounts.csv", 3,
                       "workload_hours", "≥ 0"),
    "negative amount": ("pipeline.csv", "propose,12000,", "propose,-12000,", "pipeline.csv", 2,
                        "amount", "≥ 0"),
    "duplicate id": ("accounts.csv", "A2,Beta", "A1,Beta", "accounts.csv", 3, "account_id",
                     "duplicate account_id 'A1' (first used in row 2)"),
    "owner not a rep": ("accounts.csv", "complex,R2,false", "complex,R7,false", "accounts.csv", 3,
                        "current_owner", "'R7' is unknown: no such rep_id in reps.csv"),
    "pipeline on unknown account": ("pipeline.csv", "O2,A4", "O2,A99", "pipeline.csv", 3, "account_id",
                                    "'A99' is unknown: no such account_id in accounts.csv"),
    "pipeline owner not a rep": ("pipeline.csv", "O1,A1,R1", "O1,A1,R8", "pipeline.csv", 2, "owner",
                                 "'R8' is unknown: no such rep_id"),
    "history on unknown account": ("history.csv", "H2,A2", "H2,A77", "history.csv", 3, "account_id",
                                   "'A77' is unknown: no such account_id"),
    "latitude out of range": ("reps.csv", "R3,Cy Diaz,34.05", "R3,Cy Diaz,134.05", "reps.csv", 4, "lat",
                              "≤ 90"),
    "longitude out of range": ("geo_units.csv", "U2,Chicago,41.88,-87.63", "U2,Chicago,41.88,-287.63",
                               "geo_units.csv", 3, "lon", "≥ -180"),
    "adjacency unknown unit": ("adjacency.csv", "U2,U3,3", "U2,U9,3", "adjacency.csv", 3, "unit_b",
                               "'U9' is unknown: no such unit_id in geo_units.csv"),
    "adjacency self loop": ("adjacency.csv", "U2,U3,3", "U2,U2,3", "adjacency.csv", 3, "unit_b",
                            "adjacent to itself"),
    "adjacency duplicate either way": ("adjacency.csv", "U2,U3,3", "U3,U1,3", "adjacency.csv", 3, "unit_b",
                                       "duplicate pair"),
    "unknown column": ("reps.csv", "capacity_hours,max_accounts", "capacity_hour,max_accounts", "reps.csv",
                       1, "capacity_hour", "did you mean 'capacity_hours'"),
    "bad date": ("history.csv", "2025-06-01,2025-07-01", "2025-06-01,07/01/2025", "history.csv", 3,
                 "closed", "a date as YYYY-MM-DD"),
    "closed before created": ("history.csv", "2025-06-01,2025-07-01", "2025-06-01,2025-05-01",
                              "history.csv", 3, "closed", "before created"),
    "bad boolean": ("accounts.csv", "complex,R2,false", "complex,R2,maybe", "accounts.csv", 3, "locked",
                    "true or false"),
    "bad choice": ("accounts.csv", ",transactional,R1", ",impulsive,R1", "accounts.csv", 2, "buying_process",
                   "one of transactional, consultative, complex"),
    "unknown stage": ("pipeline.csv", "R1,propose", "R1,demo", "pipeline.csv", 2, "stage",
                      "unknown stage"),
    "empty required cell": ("reps.csv", "R2,Bob Park,41.88", ",Bob Park,41.88", "reps.csv", 3, "rep_id",
                            "the cell is empty"),
    "not an integer": ("reps.csv", "120,10", "120,10.5", "reps.csv", 4, "max_accounts", "whole number"),
    "locked without owner": ("accounts.csv", "A3,Gamma,,,U3,retail,smb,1000,,,,",
                             "A3,Gamma,,,U3,retail,smb,1000,,,,yes", "accounts.csv", 4, "locked",
                             "needs a current_owner"),
    "half a rep's home": ("reps.csv", "R3,Cy Diaz,34.05", "R3,Cy Diaz,", "reps.csv", 4, "lat",
                          "give both lat and lon, or neither"),
    "half a location": ("accounts.csv", "A4,Delta,34.10,-118.30", "A4,Delta,34.10,", "accounts.csv", 5,
                        "lon", "both lat and lon"),
    "unknown ramp curve": ("reps.csv", "rep_id,name,lat,lon,region,segment,experience_years,industries,"
                           "capacity_hours,max_accounts\nR1,Ann Lee,40.71,-74.00,East,smb,5,"
                           "retail;healthcare,100,50",
                           "rep_id,name,lat,lon,region,segment,experience_years,industries,"
                           "capacity_hours,max_accounts,ramp_profile\nR1,Ann Lee,40.71,-74.00,East,smb,5,"
                           "retail;healthcare,100,50,slowburn", "reps.csv", 2, "ramp_profile",
                           "unknown ramp curve"),
}


@pytest.mark.parametrize("case", CELL_CASES, ids=list(CELL_CASES))
def test_bad_cell_names_file_row_and_column(tiny, case):
    file, old, new, where, row, column, words = CELL_CASES[case]
    tiny.edit(file, old, new)
    errors = load_errors(tiny.path)
    if case == "missing required column":  # the renamed column is also reported as unknown
        errors = tuple(e for e in errors if e.column != "role")
    if case == "duplicate id":  # and history names A2, which the duplicate replaced
        errors = tuple(e for e in errors if not e.file.endswith("history.csv"))
    only(errors, file=_name(tiny, where), row=row, column=column, message=words)


def test_coordinates_are_needed_only_by_the_steps_that_measure_distances(tiny):
    from tercap.assign.inputs import read_inputs
    from tercap.errors import TercapError

    tiny.edit("accounts.csv", "A3,Gamma,,,U3", "A3,Gamma,,,")
    scenario = tercap.load(tiny.path)  # an account without a location loads
    assert scenario.accounts.set_index("account_id")["lat"].isna()["A3"]
    with pytest.raises(TercapError, match=r"assignment measures distances, so it needs coordinates: 1 of the .* "
                                          r"accounts have no lat and lon \(A3\)"):
        read_inputs(scenario)


def _name(tiny, file: str) -> str:
    from tercap.scenario.reading import display_name

    return display_name(tiny.root / file)


def test_all_errors_are_collected_not_only_the_first(tiny):
    tiny.edit("reps.csv", "Bob Park,41.88,-87.63,Central,smb,1", "Bob Park,91,-87.63,Central,smb,x")
    tiny.edit("accounts.csv", "complex,R2,false", "complex,R7,false")
    tiny.edit("scenario.yaml", "months: 12", "months: twelve")
    errors = load_errors(tiny.path)
    columns = {(e.file.rsplit("/", 1)[-1], e.column or e.key) for e in errors}
    expected = {("reps.csv", "lat"), ("reps.csv", "experience_years"), ("scenario.yaml", "period.months")}
    assert expected <= columns
    # the reference check runs only once the tables themselves are sound
    tiny.edit("reps.csv", "Bob Park,91,-87.63,Central,smb,x", "Bob Park,41.88,-87.63,Central,smb,1")
    tiny.edit("scenario.yaml", "months: twelve", "months: 12")
    only(load_errors(tiny.path), column="current_owner")


def test_a_row_with_too_many_cells(tiny):
    tiny.edit("accounts.csv", "A2,Beta,", "A2,Beta, Inc.,")
    only(load_errors(tiny.path), row=3, message="the row has 13 cells but the header has 12 columns")


def test_a_bad_column_of_many_rows_stays_readable(tiny):
    rows = "".join(f"B{i},Bulk {i},40.0,-75.0,,retail,smb,-5,,,,\n" for i in range(500))
    tiny.write("accounts.csv", tiny.files["accounts.csv"] + rows)
    errors = load_errors(tiny.path)
    assert len(errors) <= 12
    assert errors[0].row == 6 and errors[0].column == "potential"
    assert "490 more row(s)" in errors[-1].message


def test_table_path_that_does_not_exist(tiny):
    tiny.edit("scenario.yaml", "history: history.csv", "history: old/history.csv")
    error = only(load_errors(tiny.path), key="tables.history", message="does not exist")
    assert error.file.endswith("scenario.yaml") and error.line == 9


@pytest.mark.parametrize("content", ["", "opp_id,account_id,owner,amount,created,closed,won,last_stage\n"])
def test_empty_table(tiny, content):
    tiny.write("history.csv", content)
    only(load_errors(tiny.path), message="empty" if not content else "no rows")


def test_missing_required_table(tiny):
    tiny.edit("scenario.yaml", "  reps: reps.csv\n", "")
    only(load_errors(tiny.path), key="tables.reps", message="has no 'reps' table")


def test_unknown_section_key_suggests_the_right_one(tiny):
    tiny.edit("scenario.yaml", "quota: {company_target: 1000000}",
              "quota: {company_targt: 1000000}")
    only(load_errors(tiny.path), key="quota.company_targt", line=10,
         message="unknown key (did you mean 'company_target'?)")


def test_wrong_type_in_yaml_names_line_and_key(tiny):
    tiny.edit("scenario.yaml", "months: 12", "months: twelve")
    only(load_errors(tiny.path), key="period.months", line=2, message="'twelve'")


def test_unknown_table_name(tiny):
    tiny.edit("scenario.yaml", "  history: history.csv", "  histroy: history.csv")
    only(load_errors(tiny.path), key="tables.histroy", message="unknown table")


def test_hire_after_the_period(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] +
               "capacity:\n  hires:\n    - {segment: smb, start_month: 13}\n")
    only(load_errors(tiny.path), key="capacity.hires.0.start_month", message="after the period")


def test_unsafe_yaml_is_refused_not_executed(tiny, tmp_path):
    marker = tmp_path / "pwned"
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] +
               f"description: !!python/object/apply:os.system ['touch {marker}']\n")
    only(load_errors(tiny.path), message="refused YAML tag", line=11)
    assert not marker.exists()


def test_invalid_yaml_syntax(tiny):
    tiny.write("scenario.yaml", "period: {start: 2027-01-01\nname: [\n")
    only(load_errors(tiny.path), message="not valid YAML")


def test_top_level_must_be_a_mapping(tiny):
    tiny.write("scenario.yaml", "- just\n- a list\n")
    only(load_errors(tiny.path), message="expected a mapping")


def test_warnings_for_the_legal_but_suspicious(tiny):
    tiny.edit("accounts.csv", "smb,1000,", "smb,0,")
    tiny.edit("reps.csv", "retail;healthcare,100,50", "retail;healthcare,0,50")
    tiny.edit("reps.csv", "Central,smb,1,,,", "Central,smb,1,,0,")
    tiny.edit("accounts.csv", "900000,150,", "900000,5000,")
    scenario = tercap.load(tiny.path)
    messages = [str(w) for w in scenario.warnings]
    assert any("zero potential (1 row(s): 4)" in m for m in messages), messages
    assert any("zero capacity (2 row(s): 2, 3)" in m for m in messages), messages
    assert any("enterprise workload 5,000 h exceeds enterprise capacity 1,440 h" in m for m in messages)
    assert any("total workload" in m for m in messages), messages


def test_segment_no_rep_sells_to_is_a_warning(tiny):
    tiny.edit("accounts.csv", "A3,Gamma,,,U3,retail,smb", "A3,Gamma,,,U3,retail,public_sector")
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] +
               "assignment:\n  workload_model:\n    hours_by_segment: {smb: 12, enterprise: 120, "
               "public_sector: 60}\n")
    scenario = tercap.load(tiny.path)
    assert any("no rep sells to segment 'public_sector'" in str(w) for w in scenario.warnings)


def test_segment_without_workload_model_needs_hours(tiny):
    tiny.edit("accounts.csv", "A3,Gamma,,,U3,retail,smb", "A3,Gamma,,,U3,retail,public_sector")
    only(load_errors(tiny.path), row=4, column="workload_hours", message="no workload_hours")
