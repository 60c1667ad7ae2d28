"""Reading scenario tables (CSV or Parquet) into typed DataFrames, column by column, vectorised.

Every cell error names the file, the row (header = row 1, first data row = row 2, as a spreadsheet
counts, blank lines included) and the column. CSV and Parquet files give the same DataFrame.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tercap.errors import ProblemLog
from tercap.scenario.reading import display_name, plain, suggest
from tercap.scenario.schema import FIRST_YEAR, LAST_YEAR, Column, Kind, TableSpec

FIRST_DATA_ROW = 2  # the header is row 1
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})
LIST_SEPARATOR = ";"
INT_DIGITS = 15  # an integer cell has at most this many digits (beyond, floats lose whole numbers)
# ',' is read only as a thousands separator: 1,250,000 or 1,250.5 (never a decimal comma: 1,5).
THOUSANDS = r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?"
DATE = r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
DATE_WITH_OFFSET = DATE + r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)"
_UNNAMED = re.compile(r"Unnamed: (\d+)")  # how pandas names a column whose header cell is empty


def known_last_stage(history: pd.DataFrame) -> np.ndarray:
    """Per closed deal of a history table, whether its last stage is on record (an empty cell, or no
    last_stage column, means unknown: an export without stage history)."""
    if "last_stage" not in history:
        return np.zeros(len(history), dtype=bool)
    stage = history["last_stage"].astype("string").str.strip()
    return (stage.notna() & stage.ne("")).fillna(False).to_numpy(dtype=bool)


def default_rows(length: int) -> np.ndarray:
    """Spreadsheet row numbers of a table's rows when every row is a data row: 2, 3, …"""
    return np.arange(length) + FIRST_DATA_ROW


def read_table_file(path: Path, spec: TableSpec, log: ProblemLog) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Read `path` as the table `spec` describes: the typed table and the spreadsheet row number of
    each of its rows (empty rows are left out but keep their numbers), or None after logging why."""
    name = display_name(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "a file that does not exist"
        log.error(name, f"table '{spec.name}' names {what}")
        return None
    header: list[str] | None = None
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            header = _csv_header(path)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                                    encoding="utf-8-sig", index_col=False, skip_blank_lines=False)
            if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
                _report_long_rows(path, name, log)
                return None
        else:
            log.error(name, f"unsupported table format '{suffix}' (use .csv or .parquet)")
            return None
    except pd.errors.EmptyDataError:
        log.error(name, f"table '{spec.name}' is empty (no header, no rows)")
        return None
    except UnicodeDecodeError:
        row, byte = first_bad_byte(path)
        log.error(name, f"the file is not UTF-8 text (byte 0x{byte:02x}): save it as UTF-8 (CSV UTF-8 in "
                  "a spreadsheet)", row=row)
        return None
    except (pd.errors.ParserError, OSError, ValueError, pa.ArrowException) as exc:
        if not (isinstance(exc, pd.errors.ParserError) and _report_long_rows(path, name, log)):
            log.error(name, f"cannot read the table: {str(exc).strip()}")
        return None
    if header is not None and len(header) == frame.shape[1]:
        frame.columns = header  # as written: pandas renames a repeated `lat` to `lat.1`
    frame, rows = _without_empty_rows(frame)
    table = convert_table(frame, spec, name, log, rows=rows)
    return None if table is None else (table, rows)


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle, skipinitialspace=True), [])


def first_bad_byte(path: Path) -> tuple[int | None, int]:
    """(spreadsheet row, value) of the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        try:
            records = sum(1 for _ in csv.reader(io.StringIO(before, newline="")))
            row = records + 1 if before.endswith(("\n", "\r")) or not before else records
        except csv.Error:
            row = before.count("\n") + 1
        return row, data[exc.start]
    return None, 0


def _without_empty_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """`frame` without its rows of empty cells, and the spreadsheet row numbers of the rows kept."""
    if frame.shape[1] == 0:
        return frame, default_rows(len(frame))
    empty = np.column_stack([_blank(frame.iloc[:, i]) for i in range(frame.shape[1])]).all(axis=1)
    rows = default_rows(len(frame))[~empty]
    return frame.loc[~empty].reset_index(drop=True), rows


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


def convert_table(frame: pd.DataFrame, spec: TableSpec, name: str, log: ProblemLog,
                  rows: np.ndarray | None = None) -> pd.DataFrame | None:
    """Check the columns of `frame` and convert each to its kind; None when the table is unusable.

    `rows` are the spreadsheet row numbers of the rows of `frame` (default: 2, 3, … in order).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"table '{spec.name}' must be a pandas DataFrame, got {type(frame).__name__}")
    frame = frame.set_axis([str(c).strip() for c in frame.columns], axis=1)
    usable = True
    for position, column in enumerate(frame.columns, start=1):
        unnamed = _UNNAMED.fullmatch(column)
        if column == "" or (unnamed and int(unnamed.group(1)) == position - 1):
            log.error(name, f"the header cell of column {position} is empty (a trailing comma?): name the "
                      "column or delete it", row=1)
            usable = False
    positions: dict[str, list[int]] = {}
    for position, column in enumerate(frame.columns, start=1):
        positions.setdefault(column, []).append(position)
    for column, where in positions.items():
        if column and len(where) > 1:
            listed = ", ".join(map(str, where[:-1])) + f" and {where[-1]}"
            log.error(name, f"the column appears more than once (columns {listed})", row=1, column=column)
            usable = False
    for column in positions:
        if column and not _UNNAMED.fullmatch(column) and column not in spec.column_index:
            log.error(name, f"unknown column for table '{spec.name}'"
                      f"{suggest(column, list(spec.column_index))}", row=1, column=column)
    for col in spec.columns:
        if col.required and col.name not in positions:
            log.error(name, f"required column is missing from table '{spec.name}'", row=1,
                      column=col.name)
            usable = False
    if not usable:
        return None
    if len(frame) == 0:
        log.error(name, f"table '{spec.name}' has a header but no rows")
        return None
    frame = frame.reset_index(drop=True)
    rows = default_rows(len(frame)) if rows is None else np.asarray(rows)
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


def _report(mask: np.ndarray | pd.Series, series: pd.Series, rows: np.ndarray, col: Column, name: str,
            log: ProblemLog, expected: str, show_value: bool = True) -> None:
    for index in np.flatnonzero(np.asarray(mask, dtype=bool)):
        got = f", got {plain(series.iloc[index])}" if show_value else ""
        log.error(name, f"expected {expected}{got}", row=int(rows[index]), column=col.name,
                  rule=expected)


def _as_text(series: pd.Series) -> pd.Series:
    """Cells as stripped text; numbers from Parquet lose a spurious '.0'."""
    if pd.api.types.is_float_dtype(series):
        present = series.dropna()
        if present.abs().lt(2**53).all() and present.mod(1).eq(0).all():
            series = series.astype("Int64")
    return series.astype("string").str.strip()


def _mask(values: pd.Series) -> np.ndarray:
    """A boolean Series with missing values read as False, as a numpy array."""
    return values.fillna(False).to_numpy(dtype=bool)


def _convert_column(series: pd.Series, col: Column, rows: np.ndarray, name: str,
                    log: ProblemLog) -> pd.Series:
    series = series.reset_index(drop=True)
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
        return _convert_list(series)
    if col.kind is Kind.BOOL:  # nullable: an empty cell stays empty until its default is filled in
        if pd.api.types.is_bool_dtype(series):
            return series.astype("boolean")
        text = _as_text(series).str.lower()
        is_true = text.isin(TRUE_WORDS).to_numpy(dtype=bool)
        is_false = text.isin(FALSE_WORDS).to_numpy(dtype=bool)
        _report(~blank & ~is_true & ~is_false, series, rows, col, name, log, "true or false")
        return pd.Series(pd.array(np.where(is_true | is_false, is_true, None), dtype="boolean"))
    if col.kind is Kind.DATE:
        return _convert_dates(series, blank, col, rows, name, log)
    return _convert_numbers(series, blank, col, rows, name, log)


def _convert_list(series: pd.Series) -> pd.Series:
    def is_sequence(cell: object) -> bool:
        return isinstance(cell, tuple | list | np.ndarray)

    if series.map(is_sequence).any():  # already split (a Parquet list column)
        return series.map(lambda cell: tuple(str(v).strip() for v in cell if str(v).strip())
                          if is_sequence(cell) else ())
    text = _as_text(series).fillna("")
    return pd.Series([tuple(p.strip() for p in cell.split(LIST_SEPARATOR) if p.strip()) for cell in text],
                     dtype=object)


def _convert_numbers(series: pd.Series, blank: np.ndarray, col: Column, rows: np.ndarray, name: str,
                     log: ProblemLog) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        number = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        text = _as_text(series)
        has_comma = _mask(text.str.contains(",", regex=False))
        grouped = _mask(text.str.fullmatch(THOUSANDS))
        decimal_comma = has_comma & ~grouped
        _report(decimal_comma, series, rows, col, name, log,
                "a number with '.' before the decimals (',' only separates thousands, as in 1,250,000)")
        cleaned = text.str.replace(",", "", regex=False).where(~decimal_comma, pd.NA)
        number = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        blank = blank | decimal_comma  # reported once
    invalid = ~blank & ~np.isfinite(number)
    expected = "an integer" if col.kind is Kind.INT else "a number"
    _report(invalid, series, rows, col, name, log, expected)
    present = ~blank & ~invalid
    safe = np.where(present, number, 0.0)
    if col.kind is Kind.INT:
        too_large = present & (np.abs(safe) >= 10.0**INT_DIGITS)
        _report(too_large, series, rows, col, name, log, f"a whole number of at most {INT_DIGITS} digits")
        present &= ~too_large
        fractional = present & (np.mod(safe, 1) != 0)
        _report(fractional, series, rows, col, name, log, "a whole number")
        present &= ~fractional
    if col.minimum is not None:
        _report(present & (safe < col.minimum), series, rows, col, name, log, f"a number ≥ {col.minimum:g}")
    if col.maximum is not None:
        _report(present & (safe > col.maximum), series, rows, col, name, log, f"a number ≤ {col.maximum:g}")
    values = pd.Series(np.where(present, number, np.nan))
    return values.astype("Int64") if col.kind is Kind.INT else values


def _convert_dates(series: pd.Series, blank: np.ndarray, col: Column, rows: np.ndarray, name: str,
                   log: ProblemLog) -> pd.Series:
    """Dates as datetime64[ns] at midnight; a time of day is accepted and dropped, an offset is not."""
    if pd.api.types.is_datetime64_any_dtype(series):  # a Parquet timestamp column
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)  # the date in UTC
        years = series.dt.year.to_numpy(dtype=float, na_value=np.nan)
        outside = ~blank & ((years < FIRST_YEAR) | (years > LAST_YEAR))
        _report(outside, series, rows, col, name, log, f"a date in the years {FIRST_YEAR} to {LAST_YEAR}")
        return series.where(~outside).astype("datetime64[ns]").dt.normalize()

    text = _as_text(series)
    # Fast path, vectorised: the cells written exactly YYYY-MM-DD (nearly all of them).
    plain_date = ~blank & _mask(text.str.len().eq(10))
    dates = pd.Series(pd.to_datetime(text.where(plain_date), format="%Y-%m-%d", errors="coerce"))
    dates = dates.where(dates.dt.year.between(FIRST_YEAR, LAST_YEAR)).astype("datetime64[ns]")
    rest = np.flatnonzero(~blank & dates.isna().to_numpy(dtype=bool))
    if len(rest):  # the others, one by one: a time of day, an offset, out of range, not a date
        subset = _dates_cell_by_cell(series.iloc[rest], text.iloc[rest], col, rows[rest], name, log)
        dates.iloc[rest] = subset.to_numpy()
    return dates


def _dates_cell_by_cell(series: pd.Series, text: pd.Series, col: Column, rows: np.ndarray, name: str,
                        log: ProblemLog) -> pd.Series:
    """Dates of cells that are not plain YYYY-MM-DD, each problem reported with its row."""
    series, text = series.reset_index(drop=True), text.reset_index(drop=True)
    parts = text.str.extract(f"^{DATE}$").apply(pd.to_numeric, errors="coerce")
    matched = parts[0].notna().to_numpy(dtype=bool)
    with_offset = ~matched & _mask(text.str.fullmatch(DATE_WITH_OFFSET))
    _report(with_offset, series, rows, col, name, log, "a date as YYYY-MM-DD, without a time zone")
    _report(~matched & ~with_offset, series, rows, col, name, log, "a date as YYYY-MM-DD")
    year = parts[0].to_numpy(dtype=float, na_value=np.nan)
    outside = matched & ((year < FIRST_YEAR) | (year > LAST_YEAR))
    _report(outside, series, rows, col, name, log, f"a date in the years {FIRST_YEAR} to {LAST_YEAR}")
    hour, minute, second = (parts[i].fillna(0).to_numpy(dtype=float) for i in (3, 4, 5))
    bad_time = matched & ~outside & ((hour > 23) | (minute > 59) | (second > 59))
    usable = matched & ~outside & ~bad_time
    fields = {unit: np.where(usable, parts[i].fillna(1).to_numpy(dtype=float), default).astype(int)
              for i, unit, default in ((0, "year", 2000), (1, "month", 1), (2, "day", 1))}
    dates = pd.to_datetime(pd.DataFrame(fields), errors="coerce")
    not_in_calendar = bad_time | (usable & dates.isna().to_numpy(dtype=bool))
    _report(not_in_calendar, series, rows, col, name, log, "a date that exists (month 1-12, a day of the month, "
            "a time below 24:00)")
    return dates.where(usable & ~not_in_calendar).astype("datetime64[ns]")
