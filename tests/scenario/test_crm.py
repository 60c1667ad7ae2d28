"""CRM import: an opportunity export and its mapping become the pipeline and history tables."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tercap
from tercap.scenario.crm import CrmImportError, CrmMapping, convert_export, import_crm, load_mapping, read_export
from tests.conftest import REPO, ScenarioFolder

DATA = Path(__file__).resolve().parent.parent / "data" / "crm"
SF_EXPORT, SF_MAPPING = DATA / "salesforce-export.csv", DATA / "salesforce-mapping.yaml"
HS_EXPORT, HS_MAPPING = DATA / "hubspot-export.csv", DATA / "hubspot-mapping.yaml"
SAMPLES = {"salesforce": (SF_EXPORT, SF_MAPPING), "hubspot": (HS_EXPORT, HS_MAPPING)}

SF_HEADER = ('"Opportunity ID","Account ID","Opportunity Owner","Stage","Amount","Created Date","Close Date",'
             '"Won","Forecast Category"')
SF_ROWS = [  # rows 2 to 5 of a small valid export
    '"O1","A1","Ann Lee","Prospecting","$1,000.00","09/15/2026","01/31/2027","0","Pipeline"',
    '"O2","A2","Bob Park","Negotiation/Review","$2,500.00","10/23/2026","02/27/2027","0","Commit"',
    '"O3","A4","Cy Diaz","Closed Won","$30,000.00","01/12/2026","04/28/2026","1","Closed"',
    '"O4","A1","Ann Lee","Closed Lost","$4,000.00","02/03/2026","05/15/2026","0","Omitted"',
]


def _write_export(folder: Path, rows: list[str], header: str = SF_HEADER) -> Path:
    path = folder / "export.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _failed_import(folder: Path, rows: list[str], header: str = SF_HEADER,
                   mapping: Path | CrmMapping = SF_MAPPING) -> CrmImportError:
    """Import a bad export: it must raise, and write nothing."""
    export = _write_export(folder, rows, header)
    out = folder / "out"
    with pytest.raises(CrmImportError) as caught:
        import_crm(export, mapping, out)
    assert not out.exists()
    return caught.value


def _edit(row: int, column: int, value: str) -> list[str]:
    """SF_ROWS with the cell at spreadsheet `row` (2 = first data row) and 0-based `column` replaced."""
    rows = [line[1:-1].split('","') for line in SF_ROWS]
    rows[row - 2][column] = value
    return ['"' + '","'.join(cells) + '"' for cells in rows]


# -- the round trip ---------------------------------------------------------------------------------


def test_salesforce_export_row_by_row(tmp_path: Path) -> None:
    result = import_crm(SF_EXPORT, SF_MAPPING, tmp_path / "out")
    mapping = load_mapping(SF_MAPPING)
    export = pd.read_csv(SF_EXPORT, dtype=str, keep_default_na=False, nrows=20)
    assert result.counts() == {"rows": 20, "open": 10, "won": 5, "lost": 5}
    assert result.footer_rows == 4
    assert result.paths == (tmp_path / "out" / "pipeline.csv", tmp_path / "out" / "history.csv")

    target = export["Stage"].str.casefold().map(mapping.stage_lookup())
    amount = export["Amount"].str.replace(r"[$,]", "", regex=True).astype(float)
    created = pd.to_datetime(export["Created Date"], format="%m/%d/%Y").astype("datetime64[ns]")
    close = pd.to_datetime(export["Close Date"], format="%m/%d/%Y").astype("datetime64[ns]")
    owner = export["Opportunity Owner"].replace(dict(mapping.owners)).astype("string").replace("", pd.NA)
    expected = pd.DataFrame({"opp_id": export["Opportunity ID"], "account_id": export["Account ID"],
                             "owner": owner, "stage": target.astype("string"), "amount": amount, "created": created,
                             "close": close, "won": export["Won"].eq("1")})

    is_open = target.isin(mapping.open_stages)
    assert set(result.pipeline["opp_id"]) == set(expected.loc[is_open, "opp_id"])
    assert set(result.history["opp_id"]) == set(expected.loc[~is_open, "opp_id"])
    opened = result.pipeline.merge(expected, on="opp_id", suffixes=("", "_export"))
    assert len(opened) == 10
    for column in ("account_id", "owner", "stage", "amount", "created"):
        pd.testing.assert_series_equal(opened[column], opened[f"{column}_export"], check_names=False,
                                       check_dtype=False)
    pd.testing.assert_series_equal(opened["expected_close"], opened["close"], check_names=False, check_dtype=False)
    closed = result.history.merge(expected, on="opp_id", suffixes=("", "_export"))
    assert len(closed) == 10
    assert closed["won"].equals(closed["won_export"])
    assert (closed["won"] == closed["stage"].eq("won").astype(bool)).all()  # the Won column agrees with the stage
    pd.testing.assert_series_equal(closed["closed"], closed["close"], check_names=False, check_dtype=False)
    assert closed["amount"].equals(closed["amount_export"])
    # No last_stage column and no stage history: a closed deal's last stage is unknown, not invented.
    assert closed["last_stage"].isna().all()
    assert (result.pipeline["amount_source"] == "export").all() and (result.history["amount_source"] == "export").all()


def _export_from_tables(pipeline: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """An export in a plain layout that the mapping ROUND_TRIP reads back."""
    def dates(values: pd.Series) -> pd.Series:
        return values.dt.strftime("%Y-%m-%d").fillna("")

    open_part = pd.DataFrame({
        "Id": pipeline["opp_id"], "Account": pipeline["account_id"], "Owner": pipeline["owner"].fillna(""),
        "Stage": pipeline["stage"], "Amount": pipeline["amount"].map("${:,.2f}".format),
        "Created": dates(pipeline["created"]), "Close": dates(pipeline["expected_close"]), "Won": "",
        "Forecast": pipeline["forecast_category"].fillna(""), "Stage before close": ""})
    closed_part = pd.DataFrame({
        "Id": history["opp_id"], "Account": history["account_id"], "Owner": history["owner"].fillna(""),
        "Stage": np.where(history["won"], "Closed Won", "Closed Lost"),
        "Amount": history["amount"].map("${:,.2f}".format), "Created": dates(history["created"]),
        "Close": dates(history["closed"]), "Won": np.where(history["won"], "yes", "no"), "Forecast": "",
        "Stage before close": history["last_stage"].fillna("")})
    return pd.concat([closed_part, open_part], ignore_index=True).astype(str)


ROUND_TRIP = CrmMapping(
    columns={"opp_id": "Id", "account_id": "Account", "owner": "Owner", "stage": "Stage", "amount": "Amount",
             "created": "Created", "close_date": "Close", "won": "Won", "forecast_category": "Forecast",
             "last_stage": "Stage before close"},
    stages={"qualify": "qualify", "discover": "discover", "propose": "propose", "negotiate": "negotiate",
            "Closed Won": "won", "Closed Lost": "lost"})


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_tables_back_to_an_export_and_again(tmp_path: Path, sample: str) -> None:
    export, mapping = SAMPLES[sample]
    first = import_crm(export, mapping, tmp_path / "first")
    again = _export_from_tables(first.pipeline, first.history)
    pipeline, history = convert_export(again, ROUND_TRIP, "again.csv")
    pd.testing.assert_frame_equal(pipeline, first.pipeline)
    pd.testing.assert_frame_equal(history, first.history)


def test_written_tables_are_the_scenario_format(tmp_path: Path) -> None:
    result = import_crm(SF_EXPORT, SF_MAPPING, tmp_path)
    pipeline = (tmp_path / "pipeline.csv").read_text(encoding="utf-8").splitlines()
    history = (tmp_path / "history.csv").read_text(encoding="utf-8").splitlines()
    assert pipeline[0] == "opp_id,account_id,owner,stage,amount,created,expected_close,forecast_category,amount_source"
    assert history[0] == "opp_id,account_id,owner,amount,created,closed,won,last_stage,amount_source"
    assert "0065g00000QfA05AAF,A1,R1,discover,15250.5,2026-07-11,2027-01-15,best_case,export" in pipeline
    assert "0065g00000QfA06AAF,A2,,propose,4000,2026-10-23,2027-02-10,pipeline,export" in pipeline  # no owner
    assert "0065g00000QfA10AAF,A3,R2,qualify,1200,2026-12-01,,omitted,export" in pipeline  # no close date yet
    assert "0065g00000QfA19AAF,A4,Dana Fox,1050000,2025-10-01,2026-03-31,true,,export" in history  # last stage unknown
    assert len(pipeline) == 1 + len(result.pipeline) and len(history) == 1 + len(result.history)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_a_scenario_loads_the_imported_tables(tiny: ScenarioFolder, sample: str) -> None:
    export, mapping = SAMPLES[sample]
    result = import_crm(export, mapping, tiny.root)  # replaces the tiny scenario's pipeline and history
    scenario = tercap.load(tiny.path)
    assert scenario.pipeline is not None and scenario.history is not None
    assert list(scenario.pipeline["opp_id"]) == list(result.pipeline["opp_id"])
    assert list(scenario.pipeline["stage"]) == list(result.pipeline["stage"])
    assert list(scenario.history["won"]) == list(result.history["won"])
    assert scenario.pipeline["amount"].sum() == pytest.approx(result.pipeline["amount"].sum())
    # an empty owner takes the account's owner
    assert set(scenario.pipeline["owner"].dropna()) <= {"R1", "R2", "R3"}


def test_example_mappings_load() -> None:
    for name in ("salesforce", "hubspot"):
        mapping = load_mapping(REPO / "scenarios" / "crm" / f"{name}-mapping.yaml")
        assert set(mapping.stage_lookup().values()) >= {"won", "lost"}


def test_the_documented_mapping_loads(tmp_path: Path) -> None:
    text = (REPO / "docs" / "crm-import.md").read_text(encoding="utf-8")
    example = text.split("## The mapping file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "mapping.yaml").write_text(example, encoding="utf-8")
    mapping = load_mapping(tmp_path / "mapping.yaml")
    assert mapping.columns.last_stage == "Stage Before Close"
    assert mapping.forecast_lookup()["upside"] == "best_case" and mapping.forecast_lookup()["commit"] == "commit"


def test_reading_exports_as_crms_save_them(tmp_path: Path) -> None:
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("\ufeffId;Account;Stage;Amount;Created;Close\nO1;A1;Prospecting;1.250,50;2026-01-02;\n",
                          encoding="utf-8")
    frame, rows, _footer = read_export(semicolons)
    assert list(frame.columns) == ["Id", "Account", "Stage", "Amount", "Created", "Close"]
    assert frame.loc[0, "Amount"] == "1.250,50" and list(rows) == [2]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("Id,Account\nO1,A1\nO2,Société\n".encode("latin-1"))
    with pytest.raises(CrmImportError, match=r"latin1.csv, row 3: the file is not UTF-8 text \(byte 0xe9\)"):
        read_export(latin1)
    long_row = _write_export(tmp_path, [SF_ROWS[0], SF_ROWS[1] + ',"extra"'])
    with pytest.raises(CrmImportError, match=r"export.csv, row 3: the row has 10 cells but the header has 9"):
        read_export(long_row)
    (tmp_path / "report.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(CrmImportError, match="save the report as CSV"):
        read_export(tmp_path / "report.xlsx")


# -- reading the cells ------------------------------------------------------------------------------


def test_amounts_dates_and_labels_as_crms_write_them(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "Id": ["a", "b", "c", "d", "e"],
        "Account": ["A1"] * 5,
        "Stage": ["PROSPECTING", " Closed Won ", "closed lost", "Prospecting", "Prospecting"],
        "Amount": ["12 500", "USD 1,250.75", "(12.00)", "usd 99", "1'000'000"],
        "Created": ["2026-03-01T09:30:00Z", "Mar 3, 2026", "03/05/2026 2:15 PM", "2026-01-05", "5 Jan 2026"],
        "Close": ["", "11/23/2026", "2026-06-01", "", ""],
    })
    mapping = CrmMapping(columns={"opp_id": "Id", "account_id": "Account", "stage": "Stage", "amount": "Amount",
                                  "created": "Created", "close_date": "Close"},
                         stages={"Prospecting": "qualify", "Closed Won": "won", "Closed Lost": "lost"})
    with pytest.raises(CrmImportError, match=r"row 4, column Amount: expected an amount ≥ 0, got '\(12.00\)'"):
        convert_export(frame, mapping, "x.csv")
    frame.loc[2, "Amount"] = "0"
    pipeline, history = convert_export(frame, mapping, "x.csv")
    assert list(pipeline["amount"]) == [12_500, 99, 1_000_000]
    assert list(history["amount"]) == [1250.75, 0]
    assert list(pipeline["created"].dt.strftime("%Y-%m-%d")) == ["2026-03-01", "2026-01-05", "2026-01-05"]
    # 11/23/2026 can only be month first, so 03/05/2026 is 5 March
    assert list(history["created"].dt.strftime("%Y-%m-%d")) == ["2026-03-03", "2026-03-05"]
    assert history["owner"].isna().all() and list(history["won"]) == [True, False]


def test_decimal_comma_and_date_format() -> None:
    frame = pd.DataFrame({"Id": ["a", "b"], "Account": ["A1", "A2"], "Stage": ["Open", "Open"],
                          "Amount": ["12.500,50 €", "€ 7 000"], "Created": ["03/11/2026", "04/11/2026"],
                          "Close": ["", "05/12/2026"]})
    mapping = CrmMapping(columns={"opp_id": "Id", "account_id": "Account", "stage": "Stage", "amount": "Amount",
                                  "created": "Created", "close_date": "Close"},
                         stages={"Open": "propose"}, decimal_separator=",", date_format="%d/%m/%Y")
    pipeline, _history = convert_export(frame, mapping, "eu.csv")
    assert list(pipeline["amount"]) == [12_500.5, 7_000]
    assert list(pipeline["created"].dt.strftime("%Y-%m-%d")) == ["2026-11-03", "2026-11-04"]
    assert pipeline["expected_close"].iloc[1] == pd.Timestamp("2026-12-05")


def test_last_stage_column_and_a_stage_that_the_won_column_decides() -> None:
    frame = pd.DataFrame({"Id": ["a", "b", "c"], "Account": ["A1"] * 3, "Stage": ["Closed", "Closed", "Closed"],
                          "Amount": ["1", "2", "3"], "Created": ["2026-01-01"] * 3, "Close": ["2026-02-01"] * 3,
                          "Won": ["Won", "Lost", "lost"], "Before": ["Demo", "", "Demo"]})
    mapping = CrmMapping(columns={"opp_id": "Id", "account_id": "Account", "stage": "Stage", "amount": "Amount",
                                  "created": "Created", "close_date": "Close", "won": "Won", "last_stage": "Before"},
                         stages={"Demo": "propose", "Closed": "closed"})
    pipeline, history = convert_export(frame, mapping, "x.csv")
    assert pipeline.empty
    assert list(history["won"]) == [True, False, False]
    assert list(history["last_stage"].fillna("unknown")) == ["propose", "unknown", "propose"]


def test_footer_and_blank_rows_keep_the_row_numbers(tmp_path: Path) -> None:
    rows = [SF_ROWS[0], "", SF_ROWS[1], SF_ROWS[2].replace("$30,000.00", "lots")]
    error = _failed_import(tmp_path, [*rows, "", '"Report footer"', '"Generated by someone"'])
    assert error.error_count == 1
    assert "export.csv, row 5, column Amount: expected an amount" in str(error)
    frame, numbers, footer = read_export(_write_export(tmp_path, [*rows[:3], "", '"Footer"']))
    assert list(numbers) == [2, 4] and footer == 1 and len(frame) == 2


# -- errors name the file, the row and the column -------------------------------------------------


ERRORS = {  # kind: (rows, spreadsheet row, column header, part of the message)
    "unmapped stage": (_edit(3, 3, "Value Prop"), 3, "Stage",
                       "stage label 'Value Prop' is not in the mapping's stages (row 3): add it there"),
    "unparseable date": (_edit(2, 5, "31/31/2026"), 2, "Created Date", "expected a date such as 2026-03-31"),
    "date out of range": (_edit(2, 5, "09/15/0206"), 2, "Created Date",
                          "expected a date in the years 1900 to 2200, got '09/15/0206'"),
    "unparseable amount": (_edit(4, 4, "12,50"), 4, "Amount", "expected an amount such as 12500"),
    "negative amount": (_edit(5, 4, "-$500.00"), 5, "Amount", "expected an amount ≥ 0, got '-$500.00'"),
    "missing value": (_edit(3, 1, ""), 3, "Account ID", "expected a value (the cell is empty)"),
    "closed without close date": (_edit(4, 6, ""), 4, "Close Date", "expected a value (the cell is empty)"),
    "duplicate id": (_edit(5, 0, "O2"), 5, "Opportunity ID",
                     "expected a unique opportunity id, got 'O2' again (first on row 3)"),
    "close before created": (_edit(2, 6, "01/31/2026"), 2, "Close Date",
                             "expected a close date on or after the created date (Created Date: 2026-09-15)"),
    "won value": (_edit(4, 7, "maybe"), 4, "Won", "expected a won value (true, yes, y, won, 1)"),
    "won contradicts stage": (_edit(4, 7, "0"), 4, "Won", "the stage 'Closed Won' maps to won but this column "
                              "says '0'"),
    "forecast category": (_edit(2, 8, "Upside"), 2, "Forecast Category", "expected a forecast category of an "
                          "open deal"),
    "two currencies": (_edit(5, 4, "EUR 4,000.00"), 5, "Amount", "amounts are in more than one currency ('$' "
                       "from row 2, 'EUR' from row 5)"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_a_bad_cell_is_named_by_file_row_and_column(tmp_path: Path, kind: str) -> None:
    rows, row, column, message = ERRORS[kind]
    error = _failed_import(tmp_path, rows)
    assert error.error_count == 1, str(error)
    assert f"export.csv, row {row}, column {column}: " in str(error)
    assert message in str(error)
    assert (error.problems[0].row, error.problems[0].column) == (row, column)


def test_every_bad_row_is_reported(tmp_path: Path) -> None:
    rows = _edit(2, 4, "ten")
    rows[1] = rows[1].replace("Negotiation/Review", "Won-ish")
    rows[3] = rows[3].replace("02/03/2026", "Feb 30, 2026")
    error = _failed_import(tmp_path, rows)
    assert error.error_count == 3
    located = {(p.row, p.column) for p in error.errors}
    assert located == {(2, "Amount"), (3, "Stage"), (5, "Created Date")}


def test_an_unmapped_label_is_listed_once_with_its_rows(tmp_path: Path) -> None:
    rows = [row.replace("Prospecting", "Discovery Call") for row in SF_ROWS]
    rows += [rows[0].replace('"O1"', f'"O{n}"') for n in range(10, 17)]
    error = _failed_import(tmp_path, rows)
    assert error.error_count == 1
    assert "stage label 'Discovery Call' is not in the mapping's stages (rows 2, 6, 7, 8, 9, … (8 rows))" in str(error)


def test_a_mapped_column_missing_from_the_export(tmp_path: Path) -> None:
    header = SF_HEADER.replace('"Won"', '"Is Won"')
    error = _failed_import(tmp_path, SF_ROWS, header=header)
    text = str(error)
    assert "export.csv, row 1, column Won: the mapping's columns.won names this column but the export has no such " \
           "column (did you mean 'Is Won'?); the export's columns are: 'Opportunity ID', 'Account ID'" in text


def test_ambiguous_dates_ask_for_a_date_format(tmp_path: Path) -> None:
    rows = [row.replace("09/15/2026", "09/10/2026").replace("10/23/2026", "10/03/2026")
            .replace("01/31/2027", "01/11/2027").replace("02/27/2027", "02/12/2027") for row in SF_ROWS[:2]]
    error = _failed_import(tmp_path, rows)
    assert "export.csv, row 2, column Created Date: ambiguous date '09/10/2026': 10 September 2026 (month first) " \
           "or 09 October 2026 (day first)? Set date_format" in str(error)
    mixed = _failed_import(tmp_path, [SF_ROWS[0], SF_ROWS[1].replace("10/23/2026", "23/10/2026")])
    assert "both month first (row 2: '09/15/2026') and day first (row 3: '23/10/2026')" in str(mixed)


def test_as_of_refuses_dates_after_the_export(tmp_path: Path) -> None:
    mapping = load_mapping(SF_MAPPING).model_copy(update={"as_of": pd.Timestamp("2026-10-01").date()})
    error = _failed_import(tmp_path, SF_ROWS, mapping=mapping)
    assert error.error_count == 1
    assert "row 3, column Created Date: expected a date on or before as_of (2026-10-01), got '10/23/2026'" in str(error)


def test_an_error_leaves_an_earlier_import_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_crm(_write_export(tmp_path, SF_ROWS), SF_MAPPING, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(CrmImportError):
        import_crm(_write_export(tmp_path, _edit(2, 4, "n/a")), SF_MAPPING, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_formula_cells_are_neutralised(tmp_path: Path) -> None:
    rows = [SF_ROWS[0], SF_ROWS[3].replace('"Ann Lee"', '"=HYPERLINK(""http://evil.example"",""Ann"")"')]
    import_crm(_write_export(tmp_path, rows), SF_MAPPING, tmp_path / "out")
    history = pd.read_csv(tmp_path / "out" / "history.csv", dtype=str, keep_default_na=False)
    assert history.loc[0, "owner"] == "'=HYPERLINK(\"http://evil.example\",\"Ann\")"


# -- the mapping file -----------------------------------------------------------------------------


def test_mapping_errors_name_the_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(textwrap.dedent("""\
        columns:
          opp_id: Opportunity ID
          account_id: Account ID
          stage: Stage
          amount: Amount
          created: Created Date
          close_date: Close Date
          forecast_categroy: Forecast Category
        stages:
          Prospecting: qualify
          Closed Won: wonn
        date_format: "%m/%Y"
        """), encoding="utf-8")
    with pytest.raises(CrmImportError) as caught:
        load_mapping(path)
    text = str(caught.value)
    assert "mapping.yaml, line 8, key columns.forecast_categroy: unknown key (did you mean " \
           "'forecast_category'?)" in text
    assert "mapping.yaml, line 9, key stages: 'Closed Won' maps to 'wonn', which is none of qualify, discover, " \
           "propose, negotiate, won, lost, closed (did you mean 'won'?)" in text
    assert "line 12, key date_format: '%m/%Y' does not name a year, a month and a day" in text


def test_mapping_refuses_what_yaml_would_guess(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    base = "columns: {opp_id: a, account_id: b, stage: c, amount: d, created: e, close_date: f}\n"
    path.write_text(base + "stages: {12345: qualify, yes: won}\n", encoding="utf-8")
    with pytest.raises(CrmImportError, match="write the label in quotes"):
        load_mapping(path)
    path.write_text(base + "stages: {12345: qualify, 'yes': won, Closed: closed}\n", encoding="utf-8")
    with pytest.raises(CrmImportError, match=r"columns\.won must name the column"):
        load_mapping(path)
    path.write_text(base + "stages: {12345: qualify, 'yes': won}\n", encoding="utf-8")
    assert load_mapping(path).stage_lookup() == {"12345": "qualify", "yes": "won"}
