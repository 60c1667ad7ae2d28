"""Reading scenario tables (CSV or Parquet) into typed DataFrames, column by column, vectorised.

Every cell error names the file, the row (header = row 1, first data row = row 2, as a spreadsheet
counts) and the column. CSV and Parquet files give the same DataFrame.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tercap.errors import ProblemLog
from tercap.scenario.reading import display_name, suggest
from tercap.scenario.schema import Column, Kind, TableSpec

FIRST_DATA_ROW = 2  # the header is row 1
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})
LIST_SEPARATOR = ";"


def read_table_file(path: Path, spec: TableSpec, log: ProblemLog) -> pd.DataFrame | None:
    """Read `path` as the table `spec` describes, or log why it cannot be read."""
    name = display_name(path)
    suffix = path.suffix.lower()
    if not path.exists():
        log.error(name, f"table '{spec.name}' names a file that does not exist")
        return None
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                                    encoding="utf-8-sig", index_col=False)
            if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
                _report_long_rows(path, name, log)
                return None
        else:
            log.error(name, f"unsupported table format '{suffix}' (use .csv or .parquet)")
            return None
    except pd.errors.EmptyDataError:
        log.error(name, f"table '{spec.name}' is empty (no header, no rows)")
        return None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        if not (isinstance(exc, pd.errors.ParserError) and _report_long_rows(path, name, log)):
            log.error(name, f"cannot read the table: {str(exc).strip()}")
        return None
    return convert_table(frame, spec, name, log)


def _report_long_rows(path: Path, name: str, log: ProblemLog) -> int:
    """Name the CSV rows that have more cells than the header (a misplaced comma, usually)."""
    found = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        width = len(next(reader, []))
        for row_number, cells in enumerate(reader, start=FIRST_DATA_ROW):
            if len(cells) > width:
                found += 1
                log.error(name, f"the row has {len(cells)} cells but the header has {width} columns "
                          "(a comma inside a value needs quotes)", row=row_number, rule="long row")
    return found


def convert_table(frame: pd.DataFrame, spec: TableSpec, name: str, log: ProblemLog) -> pd.DataFrame | None:
    """Check the columns of `frame` and convert each to its kind; None when the table is unusable."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    usable = True
    duplicated = frame.columns[frame.columns.duplicated()]
    for column in dict.fromkeys(duplicated):
        log.error(name, "the column appears more than once", row=1, column=column)
        usable = False
    for column in frame.columns:
        if column not in spec.column_index:
            log.error(name, f"unknown column for table '{spec.name}'"
                      f"{suggest(column, list(spec.column_index))}", row=1, column=column)
    for col in spec.columns:
        if col.required and col.name not in frame.columns:
            log.error(name, f"required column is missing from table '{spec.name}'", row=1,
                      column=col.name)
            usable = False
    if not usable:
        return None
    if len(frame) == 0:
        log.error(name, f"table '{spec.name}' has a header but no rows")
        return None
    frame = frame.reset_index(drop=True)
    rows = np.arange(len(frame)) + FIRST_DATA_ROW
    converted: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name in frame.columns:
            converted[col.name] = _convert_column(frame[col.name], col, rows, name, log)
    return pd.DataFrame(converted)


def _blank(series: pd.Series) -> np.ndarray:
    """Cells with no value: missing, or text that is only spaces."""
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        text = series.astype("string").str.strip()
        return (text.isna() | (text == "")).to_numpy(dtype=bool)
    return series.isna().to_numpy(dtype=bool)


def _report(mask: np.ndarray, series: pd.Series, rows: np.ndarray, col: Column, name: str,
            log: ProblemLog, expected: str, show_value: bool = True) -> None:
    for index in np.flatnonzero(mask):
        got = f", got {series.iloc[index]!r}" if show_value else ""
        log.error(name, f"expected {expected}{got}", row=int(rows[index]), column=col.name,
                  rule=expected)


def _as_text(series: pd.Series) -> pd.Series:
    """Cells as stripped text; numbers from Parquet lose a spurious '.0'."""
    if pd.api.types.is_float_dtype(series) and series.dropna().mod(1).eq(0).all():
        series = series.astype("Int64")
    return series.astype("string").str.strip()


def _convert_column(series: pd.Series, col: Column, rows: np.ndarray, name: str,
                    log: ProblemLog) -> pd.Series:
    blank = _blank(series)
    if not col.nullable and blank.any():
        _report(blank, series, rows, col, name, log, "a value (the cell is empty)", show_value=False)

    if col.kind in (Kind.ID, Kind.TEXT):
        text = _as_text(series)
        values = text.where(~blank, pd.NA if col.kind is Kind.ID else "")
        if col.choices:
            bad = ~blank & ~values.isin(col.choices).to_numpy(dtype=bool)
            _report(bad, series, rows, col, name, log, f"one of {', '.join(col.choices)}")
        return values.astype("string")

    if col.kind is Kind.LIST:
        if series.map(lambda cell: isinstance(cell, tuple | list)).any():  # already split
            return series.map(lambda cell: tuple(map(str, cell)) if isinstance(cell, tuple | list)
                              else ())
        text = _as_text(series).fillna("")
        return pd.Series(
            [tuple(p.strip() for p in cell.split(LIST_SEPARATOR) if p.strip()) for cell in text],
            index=series.index, dtype=object)

    if col.kind is Kind.BOOL:  # nullable: an empty cell stays empty until its default is filled in
        if pd.api.types.is_bool_dtype(series):
            return series.astype("boolean")
        text = _as_text(series).str.lower()
        is_true = text.isin(TRUE_WORDS).to_numpy(dtype=bool)
        is_false = text.isin(FALSE_WORDS).to_numpy(dtype=bool)
        _report(~blank & ~is_true & ~is_false, series, rows, col, name, log, "true or false")
        return pd.Series(pd.array(np.where(is_true | is_false, is_true, None), dtype="boolean"),
                         index=series.index)

    if col.kind is Kind.DATE:
        if pd.api.types.is_datetime64_any_dtype(series):
            values = series
        else:
            values = pd.to_datetime(_as_text(series), format="ISO8601", errors="coerce")
            _report(~blank & values.isna().to_numpy(dtype=bool), series, rows, col, name, log,
                    "a date as YYYY-MM-DD")
        return values.astype("datetime64[ns]").dt.normalize()

    # Numbers.
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
    else:
        values = pd.to_numeric(_as_text(series).str.replace(",", "", regex=False), errors="coerce")
        values = values.astype(float)
    invalid = ~blank & (values.isna().to_numpy(dtype=bool) | ~np.isfinite(values.fillna(0).to_numpy()))
    expected = "an integer" if col.kind is Kind.INT else "a number"
    _report(invalid, series, rows, col, name, log, expected)
    present = ~blank & ~invalid
    number = values.to_numpy(dtype=float, na_value=np.nan)
    if col.kind is Kind.INT:
        fractional = present & (np.mod(np.nan_to_num(number), 1) != 0)
        _report(fractional, series, rows, col, name, log, "a whole number")
        present &= ~fractional
    if col.minimum is not None:
        _report(present & (np.nan_to_num(number) < col.minimum), series, rows, col, name, log,
                f"a number ≥ {col.minimum:g}")
    if col.maximum is not None:
        _report(present & (np.nan_to_num(number) > col.maximum), series, rows, col, name, log,
                f"a number ≤ {col.maximum:g}")
    values = values.where(present)
    return values.astype("Int64") if col.kind is Kind.INT else values
