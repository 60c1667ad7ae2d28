"""Table cells and headers: dates, big numbers, commas, blank lines, headers, encodings, counts."""

from __future__ import annotations

import pandas as pd
import pytest

import tercap
from tercap.errors import ProblemLog, ScenarioError
from tercap.scenario.schema import HISTORY
from tercap.scenario.tables import convert_table

from .test_validation import _name, load_errors, only


def history_cell(tiny, column: str, value: str) -> None:
    """Put `value` in `column` of history row 3 (H2)."""
    header = tiny.files["history.csv"].splitlines()[0].split(",")
    cells = ["H2", "A2", "R9", "15000", "2025-06-01", "2025-07-01", "false", "discover"]
    cells[header.index(column)] = value
    tiny.edit("history.csv", "H2,A2,R9,15000,2025-06-01,2025-07-01,false,discover", ",".join(cells))


# -- B3: dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "words"), [
    ("2025", "a date as YYYY-MM-DD, got '2025'"),
    ("2025-07", "a date as YYYY-MM-DD"),
    ("07/01/2025", "a date as YYYY-MM-DD"),
    ("2025-07-01T10:00:00+02:00", "without a time zone"),
    ("2025-07-01T10:00:00Z", "without a time zone"),
    ("3000-07-01", "a date in the years 1900 to 2200"),
    ("1066-10-14", "a date in the years 1900 to 2200"),
    ("2025-02-30", "a date that exists"),
    ("2025-13-01", "a date that exists"),
    ("2025-07-01 25:00", "a date that exists"),
])
def test_bad_dates_name_file_row_and_column(tiny, value, words):
    history_cell(tiny, "closed", value)
    only(load_errors(tiny.path), file=_name(tiny, "history.csv"), row=3, column="closed", message=words)


def test_mixed_offsets_are_reported_per_cell(tiny):
    tiny.edit("history.csv", "2025-03-01,2025-05-20", "2025-03-01T09:00+01:00,2025-05-20")
    history_cell(tiny, "closed", "2025-07-01T10:00-05:00")
    errors = load_errors(tiny.path)
    assert {(e.row, e.column) for e in errors} == {(2, "created"), (3, "closed")}
    assert all("time zone" in e.message for e in errors)


def test_a_date_with_a_time_is_read_as_its_day(tiny):
    history_cell(tiny, "closed", "2025-07-01 17:45:10")
    closed = tercap.load(tiny.path).history.set_index("opp_id").loc["H2", "closed"]
    assert closed == pd.Timestamp("2025-07-01")


def _parquet_history(tiny, column: str, values: list) -> None:
    frame = pd.read_csv(tiny.root / "history.csv", dtype=str)
    frame[column] = values
    frame.to_parquet(tiny.root / "history.parquet")
    tiny.edit("scenario.yaml", "history.csv", "history.parquet")


def test_parquet_timestamps_with_a_time_zone_become_utc_dates(tiny):
    stamps = pd.to_datetime(["2025-05-20T23:30:00-05:00", "2025-07-01T08:00:00-05:00"]).tz_convert("America/New_York")
    _parquet_history(tiny, "closed", stamps)
    closed = tercap.load(tiny.path).history["closed"].tolist()
    assert closed == [pd.Timestamp("2025-05-21"), pd.Timestamp("2025-07-01")]  # the day in UTC


def test_parquet_timestamps_out_of_range_are_reported_per_cell(tiny):
    stamps = pd.Series(pd.to_datetime(["2025-05-20", "2025-07-01"])).astype("datetime64[s]")
    stamps.iloc[1] = pd.Timestamp("2500-01-01").as_unit("s")
    _parquet_history(tiny, "closed", stamps)
    only(load_errors(tiny.path), row=3, column="closed", message="years 1900 to 2200, got 2500-01-01")


# -- B4, B7: numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999", "1e30", "-1e16"])
def test_a_huge_integer_is_reported_per_cell(tiny, value):
    tiny.edit("reps.csv", "technology,120,10", f"technology,120,{value}")
    only(load_errors(tiny.path), row=4, column="max_accounts", message="a whole number of at most 15 digits")


def test_a_huge_integer_in_parquet(tiny):
    frame = pd.read_csv(tiny.root / "reps.csv")
    frame["max_accounts"] = pd.array([50, 2**62, None], dtype="Int64")
    frame.to_parquet(tiny.root / "reps.parquet")
    tiny.edit("scenario.yaml", "reps.csv", "reps.parquet")
    only(load_errors(tiny.path), row=3, column="max_accounts", message="at most 15 digits")


@pytest.mark.parametrize(("value", "expected"), [("\"1,250\"", 1250.0), ("\"1,250,000.5\"", 1_250_000.5),
                                                  ("\"-2,000\"", None)])
def test_thousands_separators(tiny, value, expected):
    tiny.edit("accounts.csv", "A2,Beta,41.80,-87.70,U2,healthcare,smb,80000,", f"A2,Beta,41.80,-87.70,U2,"
              f"healthcare,smb,{value},")
    if expected is None:  # read as a number, then refused by the rule of the column
        only(load_errors(tiny.path), row=3, column="potential", message="≥ 0")
    else:
        assert tercap.load(tiny.path).accounts.loc[1, "potential"] == expected


@pytest.mark.parametrize("value", ["1,5", "12,34", "1,2345", "1.250,5", "1,,250"])
def test_a_decimal_comma_is_not_a_thousands_separator(tiny, value):
    tiny.edit("accounts.csv", "A2,Beta,41.80,-87.70,U2,healthcare,smb,80000,", f"A2,Beta,41.80,-87.70,U2,"
              f"healthcare,smb,\"{value}\",")
    only(load_errors(tiny.path), row=3, column="potential", message=f"expected a number with '.' before the "
         f"decimals (',' only separates thousands, as in 1,250,000), got '{value}'")


def test_hours_in_a_month_are_bounded(tiny):
    tiny.edit("reps.csv", "retail;healthcare,100,50", "retail;healthcare,745,50")
    only(load_errors(tiny.path), row=2, column="capacity_hours", message="≤ 744")


# -- B8 and headers --------------------------------------------------------------------------------


def test_blank_lines_keep_the_spreadsheet_row_numbers(tiny):
    text = tiny.files["reps.csv"].replace("\nR2,", "\n\n,,,,,,,,,\nR2,").replace("\nR3,", "\n   \nR3,")
    tiny.write("reps.csv", text)
    tiny.edit("reps.csv", "R3,Cy Diaz,34.05", "R3,Cy Diaz,134.05")
    tiny.edit("reps.csv", "R2,Bob Park,41.88", "R1,Bob Park,41.88")
    errors = load_errors(tiny.path)
    assert [(e.row, e.column) for e in errors] == [(7, "lat")]
    tiny.edit("reps.csv", "R3,Cy Diaz,134.05", "R3,Cy Diaz,34.05")
    errors = [e for e in load_errors(tiny.path) if e.file == _name(tiny, "reps.csv")]
    error = only(tuple(errors), row=5, column="rep_id")  # duplicate R1, first used in row 2
    assert "first used in row 2" in error.message


def test_blank_lines_keep_row_numbers_in_cross_checks(tiny):
    tiny.write("accounts.csv", tiny.files["accounts.csv"].replace("\nA2,", "\n\nA2,"))
    tiny.edit("accounts.csv", "complex,R2,false", "complex,R7,false")
    only(load_errors(tiny.path), row=4, column="current_owner")


def test_a_repeated_header_is_named_from_the_header_row(tiny):
    tiny.edit("reps.csv", "capacity_hours,max_accounts", "capacity_hours,lat")
    error = only(load_errors(tiny.path), row=1, column="lat", message="appears more than once (columns 3 and 10)")
    assert "lat.1" not in str(error)


def test_a_trailing_comma_is_an_empty_header_cell(tiny):
    tiny.write("reps.csv", "".join(line + ",\n" for line in tiny.files["reps.csv"].splitlines()))
    error = only(load_errors(tiny.path), row=1, column=None, message="header cell of column 11 is empty")
    assert "Unnamed" not in str(error)


def test_an_unnamed_column_of_a_dataframe(tiny):
    frame = pd.read_csv(tiny.root / "reps.csv", dtype=str).assign(extra=None)
    frame = frame.rename(columns={"extra": "Unnamed: 10"})
    log = ProblemLog()
    from tercap.scenario.schema import REPS

    assert convert_table(frame, REPS, "reps", log) is None
    (error,) = log.problems
    assert "column 11 is empty" in error.message


def test_csv_that_is_not_utf8(tiny):
    (tiny.root / "reps.csv").write_bytes(tiny.files["reps.csv"].replace("Cy Diaz", "Cy Díaz").encode("cp1252"))
    error = only(load_errors(tiny.path), row=4, message="not UTF-8 text (byte 0xed): save it as UTF-8")
    assert error.file == _name(tiny, "reps.csv")


def test_parquet_cells_are_shown_plainly(tiny):
    frame = pd.read_csv(tiny.root / "reps.csv")
    frame["experience_years"] = [1.0, float("inf"), 2.0]
    frame.to_parquet(tiny.root / "reps.parquet")
    tiny.edit("scenario.yaml", "reps.csv", "reps.parquet")
    only(load_errors(tiny.path), row=3, column="experience_years", message="expected a number, got inf")
    frame["experience_years"] = [1.0, 2.0, 3.0]
    frame["lat"] = [True, False, True]
    frame.to_parquet(tiny.root / "reps.parquet")
    error = load_errors(tiny.path)[0]
    assert error.message == "expected a number, got True"


def test_parquet_values_are_shown_plainly(tiny):
    """Typed cells (as Parquet gives them, numpy scalars and Timestamps) read as a user wrote them."""
    raw = pd.read_csv(tiny.root / "history.csv")
    log = ProblemLog()
    raw["amount"] = pd.Series([True, float("inf")], dtype=object)
    raw["won"] = pd.Series([pd.Timestamp("2020-01-01"), True], dtype=object)
    convert_table(raw, HISTORY, "history.parquet", log)
    messages = [p.message for p in log.problems]
    assert "expected a number, got True" in messages
    assert "expected a number, got inf" in messages
    assert "expected true or false, got 2020-01-01" in messages
    assert not any("np." in m or "numpy" in m or "Timestamp" in m for m in messages), messages


# -- warnings --------------------------------------------------------------------------------------


def test_reps_outside_the_period_and_late_history_are_warned_about(tiny):
    tiny.edit("reps.csv", "capacity_hours,max_accounts", "capacity_hours,max_accounts,start_date,end_date")
    tiny.edit("reps.csv", "Central,smb,1,,,", "Central,smb,1,,,,2028-02-01,")
    tiny.edit("reps.csv", "technology,120,10", "technology,120,10,2020-01-01,2026-12-31")
    tiny.edit("reps.csv", "retail;healthcare,100,50", "retail;healthcare,100,50,,")
    history_cell(tiny, "closed", "2027-01-05")
    messages = [str(w) for w in tercap.load(tiny.path).warnings]
    assert any("end_date: leaves before the period starts" in m and "(1 row(s): 4)" in m for m in messages), messages
    assert any("start_date: starts after the period ends" in m and "(1 row(s): 3)" in m for m in messages), messages
    assert any("closed: closed on or after the period start" in m and "(1 row(s): 3)" in m for m in messages)


# -- counts ----------------------------------------------------------------------------------------


def test_the_error_count_is_the_number_of_errors_not_of_lines(tiny):
    rows = "".join(f"B{i},Bulk {i},40.0,-75.0,,retail,smb,-5,,,,\n" for i in range(500))
    tiny.write("accounts.csv", tiny.files["accounts.csv"] + rows)
    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.path)
    error = caught.value
    assert error.error_count == 500 and len(error.errors) == 11
    assert str(error).startswith("500 error(s) in the scenario:")
    assert error.errors[-1].omitted == 490


def test_problem_log_counts_every_error():
    log = ProblemLog(per_rule=3)
    for row in range(2, 12):
        log.error("f.csv", "bad", row=row, column="x")
    log.warning("f.csv", "odd", column="y")
    assert log.error_count == 10
    assert len(log.problems) == 5  # 3 errors, the warning, one summary line
    assert ScenarioError(log.problems).error_count == 10
    assert ScenarioError(log.problems).warning_count == 1
