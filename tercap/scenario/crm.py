"""CRM import: an opportunity export (Salesforce, HubSpot, …) becomes the `pipeline` and `history` tables.

A mapping file (YAML) names the export's columns and maps its stage labels to tercap's stages. Open
opportunities (a stage mapped to an open stage) go to `pipeline`; closed ones (a stage mapped to
`won`, `lost` or `closed`) go to `history`. Every bad cell is reported with the file, the row as a
spreadsheet counts it (header = row 1, first data row = row 2) and the column header, and nothing is
written unless the whole export converts. See docs/crm-import.md.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import PrivateAttr, field_validator, model_validator

from tercap.errors import Problem, ProblemLog, ScenarioError, count_problems
from tercap.runfolder import run_folder
from tercap.scenario.reading import display_name, load_yaml, plain, suggest
from tercap.scenario.schema import FIRST_YEAR, HISTORY, LAST_YEAR, PIPELINE, F, Section, Simulation
from tercap.scenario.tables import default_rows, first_bad_byte

__all__ = ["CrmAccounts", "CrmColumns", "CrmConversion", "CrmDefaults", "CrmImport", "CrmImportError", "CrmMapping",
           "CrmPrices", "CrmStageHistory", "CrmTeams", "ImportNote", "convert", "convert_export", "import_crm",
           "load_mapping", "read_export", "write_tables"]

WON, LOST, CLOSED = "won", "lost", "closed"
CLOSED_TARGETS = (WON, LOST, CLOSED)
DEFAULT_OPEN_STAGES: tuple[str, ...] = Simulation().stage_names
FORECAST_CATEGORIES: tuple[str, ...] = PIPELINE.column_index["forecast_category"].choices
DEFAULT_FORECAST_LABELS = {
    "pipeline": "pipeline", "best case": "best_case", "best_case": "best_case", "commit": "commit",
    "omitted": "omitted", "not forecasted": "omitted",
}
DEFAULT_WON_VALUES = ("true", "yes", "y", "won", "1")
DEFAULT_LOST_VALUES = ("false", "no", "n", "lost", "0")
DEFAULT_CURRENCY_SYMBOLS = ("$", "€", "£", "¥", "US$", "CA$", "A$", "USD", "EUR", "GBP", "CAD", "AUD", "CHF",
                            "JPY")
PIPELINE_COLUMNS = tuple(column.name for column in PIPELINE.columns)
HISTORY_COLUMNS = tuple(column.name for column in HISTORY.columns)
MAX_AMOUNT = 1e15  # beyond this an amount is a typing mistake (and loses cents as a float)
ROWS_LISTED = 5  # rows named in a message about a label found on many rows
FOOTER_ROWS = 10  # at most this many one-cell lines after a blank line are a report footer

# A time of day (and a time zone) after a date: dropped, the date is kept as written.
_TIME_OF_DAY = (r"[T ]\s*\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?"
                r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?$")
_NUMERIC_DATE = r"(?:\d{1,2}/\d{1,2}/\d{4}|\d{1,2}-\d{1,2}-\d{4})"  # 03/11/2026: month first or day first?
# Formats read without a date_format: none of them can be read two ways.
UNAMBIGUOUS_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d %b %Y", "%d-%b-%Y", "%b %d, %Y",
                            "%b %d %Y", "%d %B %Y", "%B %d, %Y")
MONTH_FIRST, DAY_FIRST = "%m/%d/%Y", "%d/%m/%Y"
PriceUse = Literal["missing", "zero_lost", "zero", "always"]
UndatedRule = Literal["error", "skip", "keep_as_of"]
# Characters that may group thousands besides ',' or '.': apostrophe, space and the no-break spaces.
_GROUP_SEPARATORS = "' \u00a0\u202f"


class CrmImportError(ScenarioError):
    """A CRM export or its mapping could not be converted; `problems` lists every error found, in the
    order of the rows (problems of the whole file, and the counts of repeated ones, last)."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        super().__init__(sorted(problems, key=lambda p: (p.row is None, p.row or 0)))

    def render(self, limit: int = 50) -> str:
        lines = [f"{self.error_count} error(s) in the CRM import:"]
        lines += [f"  - {p}" for p in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"  … and {count_problems(self.errors[limit:])} more")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The mapping file
# ----------------------------------------------------------------------------------------------


def _as_label(value: Any) -> Any:
    """A YAML scalar meant as text: whole numbers become text; flags are refused (which word was it?)."""
    if isinstance(value, bool):
        raise ValueError(f"YAML reads {value} as a flag (from yes/no/true/false/on/off): write the label in "
                         "quotes, e.g. \"yes\"")
    return str(value) if isinstance(value, int) else value


def _labels(value: Any) -> Any:
    if isinstance(value, dict):
        return {_as_label(key): _as_label(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_label(item) for item in value]
    return _as_label(value)


class CrmColumns(Section):
    """Which column of the export holds each field: the header exactly as the export writes it."""

    opp_id: str = F(description="Opportunity (deal) id; unique.")
    account_id: str = F(description="Account (company) id, as the scenario's accounts table writes it.")
    owner: str | None = F(None, "Owner of the deal (empty cells: the account's owner, in the pipeline).")
    stage: str = F(description="Stage label, mapped through `stages`.")
    amount: str = F(description="Amount.", unit="currency")
    created: str = F(description="Date the opportunity was created.")
    close_date: str = F(description="Close date: expected for an open deal, actual for a closed one.")
    won: str | None = F(None, "A won/lost (or true/false) column; needed when a stage maps to `closed`.")
    forecast_category: str | None = F(None, "Forecast category of open deals.")
    last_stage: str | None = F(None, "Last open stage a closed deal reached, as a stage label.")
    product: str | None = F(None, "Product of the deal, as the price list names it (up to spelling); needed "
                            "by `prices`.")

    @field_validator("*", mode="before")
    @classmethod
    def _header_text(cls, value: Any) -> Any:
        return _header(value)


def _header(value: Any) -> Any:
    """A column header as written in the mapping: text, not empty, spaces around it removed."""
    value = _as_label(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError("a column header cannot be empty")
    return value.strip() if isinstance(value, str) else value


class _SideFile(Section):
    """A file beside the export; `file` is relative to the mapping file (or absolute), the other keys are
    its column headers."""

    file: str = F(description="Path of the file, relative to the mapping file.")

    @field_validator("*", mode="before")
    @classmethod
    def _header_text(cls, value: Any) -> Any:
        return _header(value)


class CrmPrices(_SideFile):
    """A price list: the amount of a deal whose export amount is missing (or zero) is its product's price."""

    product: str = F(description="The price list's product column.")
    price: str = F(description="The price list's price column.", unit="currency")
    aliases: dict[str, str] = F(dict, "Product name as the export writes it → the price list's name (names "
                                "are compared ignoring case, spaces and punctuation first).")
    use_for: tuple[PriceUse, ...] = F(("missing",), "When the price replaces the export's amount: missing "
                                      "(amount empty), zero_lost (amount 0 on a lost deal), zero (amount 0 on "
                                      "any deal), always.")

    @field_validator("aliases", mode="before")
    @classmethod
    def _alias_labels(cls, value: Any) -> Any:
        return _labels(value)

    @field_validator("use_for", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class CrmDefaults(Section):
    """Values given to cells the export leaves empty."""

    account: str | None = F(None, "Account id given to deals with an empty account (a bucket account, e.g. "
                            "'unassigned'); none: an empty account is an error.")
    created_from: tuple[str, ...] = F((), "Export columns whose date is taken, in order, when the created "
                                      "date is empty (e.g. [close_date]).")
    amount: float | None = F(None, "Amount of a deal whose amount is still missing after the price list.",
                             unit="currency", ge=0, lt=MAX_AMOUNT)

    @field_validator("account", mode="before")
    @classmethod
    def _account_text(cls, value: Any) -> Any:
        value = _as_label(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("the default account id cannot be empty")
        return value.strip() if isinstance(value, str) else value

    @field_validator("created_from", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        value = (value,) if isinstance(value, str) else value
        return [_header(v) for v in value] if isinstance(value, list | tuple) else value


class CrmStageHistory(_SideFile):
    """A stage history (field history) file: one row per stage a deal entered."""

    opp_id: str = F(description="The opportunity id column.")
    stage: str = F(description="The stage label column (mapped through `stages`).")
    date: str = F(description="The column of the date the stage was entered.")


class CrmTeams(_SideFile):
    """A sales team file: one row per owner (used with `--scenario`)."""

    owner: str = F(description="The owner column, written as in the export.")
    region: str | None = F(None, "The region (or office) column.")
    manager: str | None = F(None, "The manager column.")
    segment: str | None = F(None, "The segment column (default_segment otherwise).")


class CrmAccounts(_SideFile):
    """An accounts file: one row per account (used with `--scenario`)."""

    id: str = F(description="The account id column, written as in the export.")
    segment: str | None = F(None, "The segment column (default_segment otherwise).")
    industry: str | None = F(None, "The industry column.")
    potential: str | None = F(None, "The annual potential column (the account's won amount a year otherwise).",
                              unit="currency/year")
    region: str | None = F(None, "The region column.")


class CrmMapping(Section):
    """How an opportunity export maps onto the pipeline and history tables."""

    columns: CrmColumns = F(description="The export's column for each field.")
    open_stages: tuple[str, ...] = F(DEFAULT_OPEN_STAGES, "tercap's open stages in order, as the scenario's "
                                     "simulation.stages names them.")
    stages: dict[str, str] = F(description="Export stage label → an open stage, or won, lost or closed "
                               "(closed: the won column says which). Labels match ignoring case.")
    won_values: tuple[str, ...] = F(DEFAULT_WON_VALUES, "Values of the won column that mean won (any case).")
    lost_values: tuple[str, ...] = F(DEFAULT_LOST_VALUES, "Values of the won column that mean lost (any case).")
    forecast_categories: dict[str, str] = F(lambda: dict(DEFAULT_FORECAST_LABELS),
                                            "Export forecast category → commit, best_case, pipeline or "
                                            "omitted (any case; merged over the defaults).")
    owners: dict[str, str] = F(dict, "Export owner → rep_id; owners not listed are kept as written.")
    date_format: str | None = F(None, "strftime format of the export's dates, e.g. '%m/%d/%Y' (default: "
                                "ISO dates and the common formats that cannot be read two ways).")
    decimal_separator: Literal[".", ","] = F(".", "Decimal separator of amounts; the other one may group "
                                             "thousands, as may spaces and apostrophes.")
    currency_symbols: tuple[str, ...] = F(DEFAULT_CURRENCY_SYMBOLS, "Currency signs and codes allowed "
                                          "before or after an amount; one currency per export.")
    as_of: dt.date | None = F(None, "Date of the export: a created date, or a closed deal's close date, "
                              "after it is an error (default: the latest such date in the export).")
    prices: CrmPrices | None = F(None, "A price list for amounts the export leaves empty or zero.")
    defaults: CrmDefaults = F(CrmDefaults, "Values for empty account, created date and amount cells.")
    undated: UndatedRule = F("error", "A deal with no created date (after defaults.created_from): error, skip "
                             "(left out and counted) or keep_as_of (created = as_of).")
    stage_history: CrmStageHistory | None = F(None, "A stage history file, written as stage_history.csv.")
    teams: CrmTeams | None = F(None, "A sales team file for the reps of `--scenario`.")
    accounts: CrmAccounts | None = F(None, "An accounts file for the accounts of `--scenario`.")
    default_segment: str = F("all", "Segment of reps and accounts whose file gives none (`--scenario`).",
                             min_length=1)
    _path: Path | None = PrivateAttr(None)  # the mapping file, when read from one
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)  # key path -> line in the file

    @field_validator("open_stages", "stages", "won_values", "lost_values", "forecast_categories", "owners",
                     "currency_symbols", mode="before")
    @classmethod
    def _text_labels(cls, value: Any) -> Any:
        return _labels(value)

    @field_validator("open_stages")
    @classmethod
    def _open_stages_valid(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if not names:
            raise ValueError("at least one open stage is needed")
        if len(set(names)) != len(names):
            raise ValueError("open stage names must be unique")
        reserved = sorted(set(names) & set(CLOSED_TARGETS))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} cannot be an open stage: the word marks closed deals")
        return names

    @field_validator("stages")
    @classmethod
    def _stages_valid(cls, stages: dict[str, str], info: pydantic.ValidationInfo) -> dict[str, str]:
        if not stages:
            raise ValueError("map at least one stage label")
        open_stages = info.data.get("open_stages", DEFAULT_OPEN_STAGES)
        allowed = (*open_stages, *CLOSED_TARGETS)
        seen: dict[str, tuple[str, str]] = {}
        for label, target in stages.items():
            if not label.strip():
                raise ValueError("a stage label cannot be empty")
            if target not in allowed:
                raise ValueError(f"'{label}' maps to '{target}', which is none of {', '.join(allowed)}"
                                 f"{suggest(target, allowed)}")
            key = label.strip().casefold()
            if key in seen and seen[key][1] != target:
                raise ValueError(f"'{seen[key][0]}' and '{label}' differ only in case but map to different "
                                 "stages (labels match ignoring case)")
            seen[key] = (label, target)
        return stages

    @field_validator("forecast_categories")
    @classmethod
    def _categories_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        for label, category in labels.items():
            if category not in FORECAST_CATEGORIES:
                raise ValueError(f"'{label}' maps to '{category}', which is none of {', '.join(FORECAST_CATEGORIES)}"
                                 f"{suggest(category, FORECAST_CATEGORIES)}")
        return labels

    @field_validator("date_format")
    @classmethod
    def _date_format_valid(cls, fmt: str | None) -> str | None:
        if fmt is None:
            return fmt
        sample = dt.datetime(2031, 11, 23)
        try:
            round_trip = dt.datetime.strptime(sample.strftime(fmt), fmt).date()
        except ValueError:
            round_trip = None
        if round_trip != sample.date():
            raise ValueError(f"'{fmt}' does not name a year, a month and a day (e.g. '%m/%d/%Y')")
        return fmt

    @field_validator("currency_symbols")
    @classmethod
    def _symbols_valid(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s.strip() or re.search(r"[\d.,\s-]", s) for s in symbols):
            raise ValueError("a currency symbol is a sign or a code: no digits, spaces, '.', ',' or '-'")
        return symbols

    @model_validator(mode="after")
    def _consistent(self) -> CrmMapping:
        won = {v.strip().casefold() for v in self.won_values}
        lost = {v.strip().casefold() for v in self.lost_values}
        if won & lost:
            raise ValueError(f"won_values and lost_values share {', '.join(sorted(won & lost))}")
        if CLOSED in self.stages.values() and self.columns.won is None:
            raise ValueError("a stage maps to `closed`, so columns.won must name the column that says won or lost")
        if self.prices is not None and self.columns.product is None:
            raise ValueError("prices needs columns.product: the export's column that names each deal's product")
        return self

    @property
    def folder(self) -> Path:
        """The folder that paths in the mapping are relative to: the mapping file's (else the working folder)."""
        return self._path.parent if self._path is not None else Path.cwd()

    def resolve(self, path: str) -> Path:
        """A path written in the mapping, relative to the mapping file."""
        given = Path(path).expanduser()
        return given if given.is_absolute() else self.folder / given

    def where(self, *key: str) -> dict[str, Any]:
        """The mapping file, line and key of `key`, for a message about it."""
        line = next((self._lines[key[:cut]] for cut in range(len(key), 0, -1) if key[:cut] in self._lines), None)
        return {"file": display_name(self._path) if self._path else "mapping", "line": line,
                "key": ".".join(key)}

    def stage_lookup(self) -> dict[str, str]:
        """Stage label (stripped, case-folded) → target."""
        return {label.strip().casefold(): target for label, target in self.stages.items()}

    def forecast_lookup(self) -> dict[str, str]:
        """Forecast label (stripped, case-folded) → forecast category."""
        return {label.strip().casefold(): category for label, category in self.forecast_categories.items()}


_SECTIONS: dict[str, type[Section]] = {"columns": CrmColumns, "prices": CrmPrices, "defaults": CrmDefaults,
                                       "stage_history": CrmStageHistory, "teams": CrmTeams, "accounts": CrmAccounts}


def _error_message(error: Any, model: type[pydantic.BaseModel]) -> str:
    kind, loc = error.get("type", ""), tuple(error["loc"])
    if kind == "extra_forbidden":
        section = _SECTIONS.get(str(loc[0])) if len(loc) == 2 else None
        known = list((section or model).model_fields)
        return f"unknown key{suggest(str(loc[-1]), known)}"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | dt.date) and plain(value) not in message:
        message += f" (got {plain(value)})"
    return message


def load_mapping(path: str | Path) -> CrmMapping:
    """Read and check a mapping file; every error names the file, the line and the key."""
    path = Path(path)
    log = ProblemLog()
    loaded = load_yaml(path, log)
    if loaded is None:
        raise CrmImportError(log.problems)
    data, lines = loaded
    try:
        mapping = CrmMapping.model_validate(data)
        mapping._path, mapping._lines = path, dict(lines)
        return mapping
    except pydantic.ValidationError as exc:
        name = display_name(path)
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = next((lines[loc[:cut]] for cut in range(len(loc), 0, -1) if loc[:cut] in lines), None)
            log.error(name, _error_message(error, CrmMapping), line=line, key=".".join(map(str, loc)) or None)
        raise CrmImportError(log.problems) from None


# ----------------------------------------------------------------------------------------------
# Reading the export
# ----------------------------------------------------------------------------------------------


def _delimiter(header_line: str) -> str:
    """The separator that splits the header into the most columns: ',', ';' or a tab."""
    counts = {sep: len(next(csv.reader([header_line], delimiter=sep), [])) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep])  # ties keep the first: ','


def _long_rows(path: Path, delimiter: str) -> list[tuple[int, int, int]]:
    """(row, cells, header width) of each row with more cells than the header."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        width = len(next(reader, []))
        return [(row, len(cells), width) for row, cells in enumerate(reader, start=2) if len(cells) > width]


def _without_blank_rows_and_footer(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Drop empty rows, and a report footer: up to FOOTER_ROWS lines after the last empty line that
    fill their first cell only (report name, copyright, "Generated by"). Rows keep their numbers."""
    rows = default_rows(len(frame))
    if frame.shape[1] == 0 or frame.empty:
        return frame, rows, 0
    filled = frame.apply(lambda column: column.fillna("").str.strip().ne("")).to_numpy(dtype=bool)
    blank = ~filled.any(axis=1)
    footer = np.zeros(len(frame), dtype=bool)
    if blank.any() and frame.shape[1] > 1:
        after = np.flatnonzero(blank)[-1] + 1
        tail = filled[after:]
        if 0 < len(tail) <= FOOTER_ROWS and tail[:, 0].all() and not tail[:, 1:].any():
            footer[after:] = True
    keep = ~blank & ~footer
    return frame.loc[keep].reset_index(drop=True), rows[keep], int(footer.sum())


def read_export(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The export's cells as text (header as written), the spreadsheet row of each row kept, and how many
    footer lines were left out. Empty rows are left out but keep their numbers."""
    path = Path(path)
    name = display_name(path)
    log = ProblemLog()
    if not path.is_file():
        log.error(name, "a folder, not an export file" if path.is_dir() else "file not found")
        raise CrmImportError(log.problems)
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm"):
        log.error(name, "a spreadsheet file: save the report as CSV (UTF-8) and import that")
        raise CrmImportError(log.problems)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first_line = handle.readline()
        delimiter = _delimiter(first_line)
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", sep=delimiter,
                                index_col=False, skip_blank_lines=False)
        long_rows = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
    except UnicodeDecodeError:
        row, byte = first_bad_byte(path)
        log.error(name, f"the file is not UTF-8 text (byte 0x{byte:02x}): export the report as CSV with "
                  "UTF-8 (Unicode) encoding", row=row)
        raise CrmImportError(log.problems) from None
    except pd.errors.EmptyDataError:
        log.error(name, "the export is empty (no header, no rows)")
        raise CrmImportError(log.problems) from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        long_rows = isinstance(exc, pd.errors.ParserError)
        if not long_rows:
            log.error(name, f"cannot read the export: {str(exc).strip()}")
            raise CrmImportError(log.problems) from None
    if long_rows:
        for row, cells, width in _long_rows(path, delimiter):
            log.error(name, f"the row has {cells} cells but the header has {width} columns (a "
                      f"'{delimiter}' inside a value needs quotes)", row=row, rule="long row")
        if not log.has_errors:
            log.error(name, "cannot read the export: some rows do not split into the header's columns")
        raise CrmImportError(log.problems)
    if len(header) == frame.shape[1]:
        frame.columns = [cell.strip() for cell in header]  # as written: pandas renames a repeated header
    frame, rows, footer = _without_blank_rows_and_footer(frame)
    return frame, rows, footer


# ----------------------------------------------------------------------------------------------
# Converting, column by column
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """One mapped column of the export: its header and its cells as stripped text ('' when empty)."""

    header: str
    text: pd.Series

    @property
    def blank(self) -> np.ndarray:
        return self.text.eq("").to_numpy(dtype=bool)


class _Report:
    """Logs problems in cells of the export, each with its spreadsheet row and column header."""

    def __init__(self, source: str, rows: np.ndarray, log: ProblemLog) -> None:
        self.source, self.rows, self.log = source, rows, log

    def expected(self, mask: np.ndarray | pd.Series, cells: _Cells, expected: str, show_value: bool = True) -> None:
        """'expected X, got V' for each cell of `mask`."""
        for index in np.flatnonzero(np.asarray(mask, dtype=bool)):
            got = f", got {plain(cells.text.iloc[index])}" if show_value else " (the cell is empty)"
            self.log.error(self.source, f"expected {expected}{got}", row=int(self.rows[index]),
                           column=cells.header, rule=expected)

    def each(self, mask: np.ndarray | pd.Series, cells: _Cells, rule: str, message: Callable[[int], str]) -> None:
        """`message(index)` for each cell of `mask`."""
        for index in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.log.error(self.source, message(int(index)), row=int(self.rows[index]), column=cells.header,
                           rule=rule)

    def row_list(self, indexes: np.ndarray) -> str:
        """'row 4', 'rows 4, 9 and 12' or 'rows 4, 9, 12, 15, 16, … (30 rows)'."""
        rows = [str(r) for r in self.rows[indexes]]
        if len(rows) == 1:
            return f"row {rows[0]}"
        if len(rows) <= ROWS_LISTED:
            return f"rows {', '.join(rows[:-1])} and {rows[-1]}"
        return f"rows {', '.join(rows[:ROWS_LISTED])}, … ({len(rows)} rows)"


def _mapped_cells(frame: pd.DataFrame, mapping: CrmMapping, report: _Report) -> dict[str, _Cells]:
    """The export's cells of each mapped field; a mapped column the export lacks is an error."""
    headers = list(frame.columns)
    listed = ", ".join(plain(h) for h in headers)
    cells: dict[str, _Cells] = {}
    for field, header in mapping.columns.model_dump(exclude_none=True).items():
        count = headers.count(header)
        if count == 0:
            hint = suggest(header, headers)
            if len(headers) == 1 and re.search(r"[;,\t|]", headers[0]):
                hint += " (the header is read as one column: is the file separated by another character?)"
            report.log.error(report.source, f"the mapping's columns.{field} names this column but the export has "
                             f"no such column{hint}; the export's columns are: {listed}", row=1, column=header)
        elif count > 1:
            report.log.error(report.source, f"the column appears {count} times in the export's header, so "
                             f"columns.{field} is ambiguous: rename one of them", row=1, column=header)
        else:
            text = frame[header].astype("string").fillna("").str.strip()
            cells[field] = _Cells(header, text.reset_index(drop=True))
    return cells


def _required(cells: _Cells, report: _Report, among: np.ndarray | None = None) -> None:
    missing = cells.blank if among is None else cells.blank & among
    report.expected(missing, cells, "a value", show_value=False)


def _map_stage_labels(cells: _Cells, lookup: dict[str, str], choices: str, among: np.ndarray,
                      report: _Report) -> pd.Series:
    """The target of each stage label (NA where empty or unmapped); each unmapped label is reported
    once, with the rows it is on."""
    target = cells.text.str.casefold().map(lookup).astype("string")
    unmapped = among & ~cells.blank & target.isna().to_numpy(dtype=bool)
    if unmapped.any():
        positions = pd.Series(np.flatnonzero(unmapped))
        for label, where in positions.groupby(cells.text.to_numpy()[unmapped], sort=False):
            indexes = where.to_numpy()
            report.log.error(report.source, f"stage label {plain(label)} is not in the mapping's stages "
                             f"({report.row_list(indexes)}): add it there, mapped to one of {choices}",
                             row=int(report.rows[indexes[0]]), column=cells.header, rule=f"stage label {label}")
    return target


def _won(stage_target: pd.Series, closed: np.ndarray, stage: _Cells, won_cells: _Cells | None,
         mapping: CrmMapping, report: _Report) -> np.ndarray:
    """Won (True) or lost (False) for each row (meaningful on closed rows)."""
    by_stage = stage_target.eq(WON).fillna(False).to_numpy(dtype=bool)
    if won_cells is None:
        return by_stage
    key = won_cells.text.str.casefold()
    says_won = key.isin([v.strip().casefold() for v in mapping.won_values]).to_numpy(dtype=bool)
    says_lost = key.isin([v.strip().casefold() for v in mapping.lost_values]).to_numpy(dtype=bool)
    values = f"a won value ({', '.join(mapping.won_values)}) or a lost value ({', '.join(mapping.lost_values)})"
    by_column = stage_target.eq(CLOSED).fillna(False).to_numpy(dtype=bool)
    report.expected(closed & ~won_cells.blank & ~says_won & ~says_lost, won_cells, values)
    missing = by_column & won_cells.blank
    report.each(missing, won_cells, "won missing", lambda i: f"expected {values} (the cell is empty, and the "
                f"stage {plain(stage.text.iloc[i])} maps to closed, which does not say which)")
    contradicts = (by_stage & says_lost) | (stage_target.eq(LOST).fillna(False).to_numpy(dtype=bool) & says_won)
    report.each(contradicts, won_cells, "won contradicts stage",
                lambda i: f"the stage {plain(stage.text.iloc[i])} maps to {stage_target.iloc[i]} but this column "
                f"says {plain(won_cells.text.iloc[i])}")
    return np.where(by_column, says_won, by_stage)


def _amount_patterns(mapping: CrmMapping) -> tuple[str, str, str]:
    """(a whole cell: sign, currency and digits in their places; a well-grouped number; the characters
    that group digits)."""
    symbols = sorted(mapping.currency_symbols, key=len, reverse=True)
    currency = f"(?:{'|'.join(re.escape(s) for s in symbols)})?" if symbols else ""
    cell = rf"(?i:[-−]?\s*{currency}\s*[-−]?\s*\d[\d.,{_GROUP_SEPARATORS}]*\s*{currency})"
    decimal = re.escape(mapping.decimal_separator)
    groups = [*_GROUP_SEPARATORS, "," if mapping.decimal_separator == "." else "."]
    grouped = "(?:" + "|".join([rf"\d{{1,3}}(?:{re.escape(g)}\d{{3}})+(?:{decimal}\d+)?" for g in groups]
                               + [rf"\d+(?:{decimal}\d+)?"]) + ")"
    return cell, grouped, f"[{re.escape(''.join(groups))}]"


def _amounts(cells: _Cells, mapping: CrmMapping, report: _Report) -> np.ndarray:
    """Amounts as numbers (NaN where empty or bad); signs, symbols and separators read as the mapping says."""
    cell_pattern, grouped, separators = _amount_patterns(mapping)
    text = cells.text
    accounting = text.str.fullmatch(r"\(.+\)").fillna(False).to_numpy(dtype=bool)  # (1,250.00): negative
    text = text.where(~accounting, text.str.slice(1, -1).str.strip())
    # What is left once digits, separators and signs are taken out is the currency sign: one at most.
    currency = text.str.replace(rf"[\d.,\-−{_GROUP_SEPARATORS}]", "", regex=True).str.upper()
    known = {s.upper() for s in mapping.currency_symbols}
    sign_count = text.str.count("[-−]")
    body = text.str.replace(r"[-−]", "", regex=True)
    for symbol in sorted(known, key=len, reverse=True):  # a loop over the mapping's symbols, not the rows
        body = body.str.replace(rf"(?i:^{re.escape(symbol)}|{re.escape(symbol)}$)", "", regex=True).str.strip()
    well_formed = (currency.eq("") | currency.isin(known)) & sign_count.le(1) & text.str.fullmatch(cell_pattern) \
        & body.str.fullmatch(grouped)
    well_formed = well_formed.fillna(False).to_numpy(dtype=bool)
    digits = body.str.replace(separators, "", regex=True).str.replace(mapping.decimal_separator, ".", regex=False)
    number = pd.to_numeric(digits.where(well_formed), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    negative = accounting | sign_count.gt(0).fillna(False).to_numpy(dtype=bool)
    number = np.where(negative, -number, number)
    bad = ~cells.blank & ~np.isfinite(number)
    example = "12500, 12,500.00 or $12,500.00" if mapping.decimal_separator == "." else "12500, 12.500,00 or 12 500 €"
    report.expected(bad, cells, f"an amount such as {example}")
    good = np.isfinite(number)
    report.expected(good & (number < 0), cells, "an amount ≥ 0")
    report.expected(good & (number >= MAX_AMOUNT), cells, f"an amount below {MAX_AMOUNT:,.0f}")
    number = np.where(good & (number >= 0) & (number < MAX_AMOUNT), number, np.nan)

    seen = currency.where(good & currency.ne("").fillna(False).to_numpy(dtype=bool)).dropna()
    if seen.nunique() > 1:
        first = seen.groupby(seen, sort=False).head(1)
        named = ", ".join(f"{plain(c)} from row {report.rows[i]}" for i, c in first.items())
        report.log.error(report.source, f"amounts are in more than one currency ({named}): convert them to one "
                         "currency in the report", row=int(report.rows[first.index[1]]), column=cells.header)
    return number


def _strip_time(text: pd.Series) -> pd.Series:
    """The cells without a time of day (and time zone) after the date."""
    return text.str.replace(_TIME_OF_DAY, "", regex=True).str.strip()


def _parse_with(text: pd.Series, fmt: str) -> pd.Series:
    return pd.Series(pd.to_datetime(text, format=fmt, errors="coerce"), index=text.index).astype("datetime64[us]")


def _parse_with_any(text: pd.Series, formats: tuple[str, ...]) -> pd.Series:
    """Each cell read by the first of `formats` that reads it (NaT where none does)."""
    dates = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    for fmt in formats:  # a loop over formats; each parses only the cells still unread
        todo = dates.isna() & text.notna() & text.ne("")
        if not todo.any():
            break
        dates = dates.fillna(_parse_with(text.where(todo), fmt))
    return dates


def _numeric_readings(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(month-first, day-first) readings of cells like 03/11/2026; NaT where a reading is impossible."""
    numeric = text.str.fullmatch(_NUMERIC_DATE).fillna(False)
    text = text.where(numeric).str.replace("-", "/", regex=False)
    return _parse_with(text, MONTH_FIRST), _parse_with(text, DAY_FIRST)


@dataclass(frozen=True)
class _DateReadings:
    cells: _Cells
    fixed: pd.Series  # read by an unambiguous format (or the mapping's date_format)
    month_first: pd.Series
    day_first: pd.Series

    def only(self, convention: str) -> np.ndarray:
        """Cells that read one way only: month first (MONTH_FIRST) or day first (DAY_FIRST)."""
        mine, other = ((self.month_first, self.day_first) if convention == MONTH_FIRST
                       else (self.day_first, self.month_first))
        return (self.fixed.isna() & mine.notna() & other.isna()).to_numpy(dtype=bool)


def _read_dates(cells: _Cells, mapping: CrmMapping) -> _DateReadings:
    text, date_part = cells.text, _strip_time(cells.text)
    never = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    if mapping.date_format is not None:
        fixed = _parse_with(text, mapping.date_format).fillna(_parse_with(date_part, mapping.date_format))
        return _DateReadings(cells, fixed, never, never)
    numeric = date_part.str.fullmatch(_NUMERIC_DATE).fillna(False)
    fixed = _parse_with_any(date_part.where(~numeric), UNAMBIGUOUS_DATE_FORMATS)
    month_first, day_first = _numeric_readings(date_part)
    return _DateReadings(cells, fixed, month_first, day_first)


def _date_convention(readings: list[_DateReadings], report: _Report) -> str | None:
    """MONTH_FIRST or DAY_FIRST when some date of the export can only be read that way (and none the other
    way); a mix of both is an error."""
    found = {}
    for convention in (MONTH_FIRST, DAY_FIRST):
        hits = [(int(report.rows[i]), r.cells, i) for r in readings for i in np.flatnonzero(r.only(convention))[:1]]
        if hits:
            found[convention] = min(hits, key=lambda hit: hit[0])
    if len(found) == 2:
        (mf_row, mf_cells, mf_i), (df_row, df_cells, df_i) = found[MONTH_FIRST], found[DAY_FIRST]
        report.log.error(report.source, "the export writes dates both month first (row "
                         f"{mf_row}: {plain(mf_cells.text.iloc[mf_i])}) and day first (row {df_row}: "
                         f"{plain(df_cells.text.iloc[df_i])}): set date_format in the mapping",
                         row=max(mf_row, df_row), column=(df_cells if df_row > mf_row else mf_cells).header)
        return None
    return next(iter(found), None)


def _dates(readings: _DateReadings, convention: str | None, mapping: CrmMapping, report: _Report) -> pd.Series:
    """Resolved dates (datetime64[ns], NaT where empty or bad), each bad cell reported."""
    cells = readings.cells
    dates = readings.fixed
    ambiguous = np.zeros(len(dates), dtype=bool)
    if convention == MONTH_FIRST:
        dates = dates.fillna(readings.month_first)
    elif convention == DAY_FIRST:
        dates = dates.fillna(readings.day_first)
    else:
        same = readings.month_first.eq(readings.day_first).fillna(False)
        dates = dates.fillna(readings.month_first.where(same))
        ambiguous = (dates.isna() & readings.month_first.notna() & readings.day_first.notna()).to_numpy(dtype=bool)
        report.each(ambiguous, cells, "ambiguous date", lambda i: (
            f"ambiguous date {plain(cells.text.iloc[i])}: {readings.month_first.iloc[i]:%d %B %Y} (month first) "
            f"or {readings.day_first.iloc[i]:%d %B %Y} (day first)? Set date_format: \"{MONTH_FIRST}\" or "
            f"\"{DAY_FIRST}\" in the mapping"))
    unread = ~cells.blank & dates.isna().to_numpy(dtype=bool) & ~ambiguous
    if mapping.date_format is not None:
        example = dt.date(2026, 3, 31).strftime(mapping.date_format)
        report.expected(unread, cells, f"a date as {mapping.date_format} (e.g. {example})")
    else:
        report.expected(unread, cells, "a date such as 2026-03-31, 03/31/2026 or 31 Mar 2026 (or set date_format "
                        "in the mapping)")
    years = dates.dt.year
    outside = (years.lt(FIRST_YEAR) | years.gt(LAST_YEAR)).fillna(False).to_numpy(dtype=bool)
    report.expected(outside, cells, f"a date in the years {FIRST_YEAR} to {LAST_YEAR}")
    return dates.where(~outside).astype("datetime64[ns]")


def _duplicates(cells: _Cells, report: _Report) -> None:
    present = ~cells.blank
    repeated = cells.text.duplicated(keep="first").to_numpy(dtype=bool) & present
    if repeated.any():
        first = pd.Series(np.arange(len(cells.text))).groupby(cells.text.to_numpy()).transform("first").to_numpy()
        report.each(repeated, cells, "duplicate id", lambda i: f"expected a unique opportunity id, got "
                    f"{plain(cells.text.iloc[i])} again (first on row {report.rows[first[i]]})")


def _forecast(cells: _Cells | None, is_open: np.ndarray, mapping: CrmMapping, report: _Report) -> pd.Series:
    length = len(is_open)
    if cells is None:
        return pd.Series(pd.array([pd.NA] * length, dtype="string"))
    category = cells.text.str.casefold().map(mapping.forecast_lookup()).astype("string")
    unknown = is_open & ~cells.blank & category.isna().to_numpy(dtype=bool)
    labels = ", ".join(dict.fromkeys(mapping.forecast_categories))
    report.expected(unknown, cells, f"a forecast category of an open deal ({labels}; or add it to the mapping's "
                    "forecast_categories)")
    return category


def _reached_stages(stage_history: pd.DataFrame, mapping: CrmMapping) -> pd.Series:
    """opp_id → the furthest open stage the deal entered, by the stage history."""
    order = {name: index for index, name in enumerate(mapping.open_stages)}
    rank = stage_history["stage"].map(order)
    entered = stage_history.assign(rank=rank).dropna(subset=["rank"])
    furthest = entered.groupby("opp_id", sort=False)["rank"].max().astype(int)
    return furthest.map(dict(enumerate(mapping.open_stages))).astype("string")


def _last_stage(cells: _Cells | None, closed: np.ndarray, mapping: CrmMapping, choices: str, report: _Report,
                opp_ids: pd.Series, reached: pd.Series | None) -> tuple[pd.Series, int]:
    """The last open stage of each closed deal (NA: unknown), and how many the stage history gave: the
    last_stage column where given, else the furthest open stage the stage history shows. Without either, a
    closed deal's last stage is unknown: nothing is invented."""
    last = pd.Series(pd.array([pd.NA] * len(closed), dtype="string"))
    if cells is not None:
        target = _map_stage_labels(cells, mapping.stage_lookup(), choices, closed, report)
        not_open = closed & target.notna().to_numpy(dtype=bool) & \
            ~target.isin(mapping.open_stages).to_numpy(dtype=bool)
        report.each(not_open, cells, "last stage not open", lambda i: f"expected the label of an open stage "
                    f"({', '.join(mapping.open_stages)}), got {plain(cells.text.iloc[i])}, which maps to "
                    f"{target.iloc[i]}")
        last = target.where(target.isin(mapping.open_stages).to_numpy(dtype=bool) & closed)
    from_history = 0
    if reached is not None:
        fill = closed & last.isna().to_numpy(dtype=bool)
        found = opp_ids.map(reached).astype("string").where(fill)
        from_history = int(found.notna().sum())
        last = last.fillna(found)
    return last.where(closed).astype("string"), from_history


@dataclass(frozen=True)
class ImportNote:
    """One rule the import applied to some rows (imputed, defaulted, skipped), or a warning about them."""

    rule: str  #: what was done, e.g. "amount from price list"
    rows: int  #: rows it was done to
    by: dict[str, int] = dataclasses.field(default_factory=dict)  #: the rows split by case, e.g. {"missing": 1088}
    warning: bool = False  #: worth a look (e.g. lost deals whose amount 0 was kept)

    def __str__(self) -> str:
        detail = f" ({', '.join(f'{case} {count:,}' for case, count in self.by.items())})" if self.by else ""
        return f"{self.rule}: {self.rows:,} row{'' if self.rows == 1 else 's'}{detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "rows": self.rows, "by": dict(self.by), "warning": self.warning}


@dataclass(frozen=True, eq=False)
class CrmConversion:
    """An export converted: the tables, what was imputed, defaulted or skipped, and the export's date."""

    pipeline: pd.DataFrame  #: open opportunities, in the scenario's pipeline columns
    history: pd.DataFrame  #: closed opportunities, in the scenario's history columns
    stage_history: pd.DataFrame | None  #: opp_id, stage, entered; None without a stage history file
    notes: tuple[ImportNote, ...]  #: every rule applied to some rows, in the order applied
    as_of: dt.date | None  #: the mapping's as_of, else the latest created or closing date in the export
    as_of_from: str  #: "mapping" or "export" ("" when the export has no date at all)
    skipped: int  #: rows left out (undated: skip)


def _subset(cells: dict[str, _Cells], keep: np.ndarray) -> dict[str, _Cells]:
    return {field: _Cells(c.header, c.text[keep].reset_index(drop=True)) for field, c in cells.items()}


def _extra_columns(frame: pd.DataFrame, headers: tuple[str, ...], key: str, report: _Report) -> list[_Cells]:
    """The cells of other export columns the mapping names under `key` (a missing one is an error)."""
    found = []
    for header in headers:
        if header not in frame.columns:
            report.log.error(report.source, f"the mapping's {key} names this column but the export has no such "
                             f"column{suggest(header, list(frame.columns))}", row=1, column=header)
            continue
        column = frame.loc[:, [header]].iloc[:, 0]
        found.append(_Cells(header, column.astype("string").fillna("").str.strip().reset_index(drop=True)))
    return found


def _export_as_of(mapping: CrmMapping, created: pd.Series, close: pd.Series, closed: np.ndarray
                  ) -> tuple[dt.date | None, str]:
    """The mapping's as_of, else the latest created date or closing date of a closed deal."""
    if mapping.as_of is not None:
        return mapping.as_of, "mapping"
    latest = pd.concat([created, close[closed]]).max()
    return (None, "") if pd.isna(latest) else (pd.Timestamp(latest).date(), "export")


def _account_ids(cells: _Cells, mapping: CrmMapping, report: _Report, notes: list[ImportNote]) -> pd.Series:
    text = cells.text.mask(cells.blank, pd.NA).astype("string")
    bucket = mapping.defaults.account
    if bucket is None:
        _required(cells, report)
        return text
    if cells.blank.any():
        notes.append(ImportNote(f"account defaulted to '{bucket}'", int(cells.blank.sum())))
    return text.fillna(bucket)


PRICE_CASES = {"missing": "missing", "zero_lost": "zero on lost", "zero": "zero", "always": "always"}


def _amounts_and_sources(cells: dict[str, _Cells], mapping: CrmMapping, lost: np.ndarray, report: _Report,
                         notes: list[ImportNote], prices: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each deal's amount and where it comes from (export, price or default): the export's amount, replaced
    by the product's price where `prices.use_for` says, then `defaults.amount` where still empty."""
    amount_cells = cells["amount"]
    amount = _amounts(amount_cells, mapping, report)
    source = np.where(np.isfinite(amount), "export", "").astype(object)
    blank = amount_cells.blank
    zero = np.isfinite(amount) & (amount == 0)
    if mapping.prices is not None and prices is not None:
        product = cells["product"]
        cases = {"missing": blank, "zero_lost": zero & lost, "zero": zero, "always": ~blank | blank}
        uses = [use for use in PRICE_CASES if use in mapping.prices.use_for]  # the narrowest case first
        needs = np.zeros(len(amount), dtype=bool)
        case = np.full(len(amount), "", dtype=object)
        for use in uses:
            case[cases[use] & ~needs] = use
            needs |= cases[use]
        name, how = prices.match(product.text)
        unknown = needs & ~product.blank & name.isna().to_numpy(dtype=bool)
        report.each(unknown, product, "unknown product", lambda i: f"product {plain(product.text.iloc[i])} is not "
                    f"in the price list{prices.nearest(product.text.iloc[i])}: add it to the price list or to "
                    "prices.aliases in the mapping")
        priced = needs & name.notna().to_numpy(dtype=bool)
        price = name.map(prices.prices).astype(float).to_numpy(dtype=float, na_value=np.nan)
        amount = np.where(priced, price, amount)
        source[priced] = "price"
        if priced.any():
            by = {PRICE_CASES[use]: int((priced & (case == use)).sum()) for use in uses}
            notes.append(ImportNote("amount from price list", int(priced.sum()), {k: v for k, v in by.items() if v}))
        renamed = how.isin(["normalised", "alias"]).to_numpy(dtype=bool)
        pairs = pd.DataFrame({"written": product.text[renamed].astype(object).map(plain),
                              "name": name[renamed].astype(object), "how": how[renamed]})
        for (listed, kind), group in pairs.groupby(["name", "how"], sort=True):
            spellings = group["written"].value_counts(sort=True)
            word = "by alias" if kind == "alias" else "spelt otherwise"
            notes.append(ImportNote(f"product {word} → {plain(listed)}", len(group),
                                    {written: int(n) for written, n in spellings.items()}))
    default = mapping.defaults.amount
    still = blank & ~np.isfinite(amount)
    if default is not None and still.any():
        amount = np.where(still, default, amount)
        source[still] = "default"
        notes.append(ImportNote(f"amount defaulted to {default:,g}", int(still.sum())))
    elif still.any() and not (mapping.prices is not None and prices is None):  # a bad price list is reported
        hint = " (the cell is empty; add a price list or defaults.amount to the mapping)" \
            if mapping.prices is None else " (the cell is empty and no price applies)"
        report.each(still, amount_cells, "a value", lambda i: f"expected a value{hint}")
    kept_zero = lost & zero & (source == "export")
    if kept_zero.any():
        notes.append(ImportNote("lost deals with amount 0 kept", int(kept_zero.sum()), warning=True))
    return amount, source


def convert(frame: pd.DataFrame, mapping: CrmMapping, source_name: str, rows: np.ndarray | None = None
            ) -> CrmConversion:
    """Convert an opportunity export (all cells text) into the pipeline and history tables, with notes on
    every rule applied (see `CrmConversion`).

    `rows` are the spreadsheet row numbers of the frame's rows (default 2, 3, …). Raises `CrmImportError`
    listing every bad cell, each with `source_name`, its row and its column header (and every problem of
    the files the mapping names, with theirs).
    """
    from tercap.scenario.crm_sources import read_price_list, read_stage_history

    log = ProblemLog()
    frame = frame.set_axis([str(c).strip() for c in frame.columns], axis=1).reset_index(drop=True)
    report = _Report(source_name, default_rows(len(frame)) if rows is None else np.asarray(rows), log)
    cells = _mapped_cells(frame, mapping, report)
    fallbacks = _extra_columns(frame, mapping.defaults.created_from, "defaults.created_from", report)
    if not log.has_errors and frame.empty:
        log.error(source_name, "the export has a header but no rows")
    if log.has_errors:
        raise CrmImportError(log.problems)

    notes: list[ImportNote] = []
    everywhere = np.ones(len(frame), dtype=bool)
    choices = ", ".join((*mapping.open_stages, WON, LOST, *((CLOSED,) if mapping.columns.won else ())))
    for field_name in ("opp_id", "stage"):
        _required(cells[field_name], report)
    stage = _map_stage_labels(cells["stage"], mapping.stage_lookup(), choices, everywhere, report)
    is_open = stage.isin(mapping.open_stages).to_numpy(dtype=bool)
    closed = stage.isin(CLOSED_TARGETS).to_numpy(dtype=bool)
    _required(cells["close_date"], report, among=closed)
    _duplicates(cells["opp_id"], report)

    readings = [_read_dates(c, mapping) for c in (cells["created"], cells["close_date"], *fallbacks)]
    convention = _date_convention(readings, report) if mapping.date_format is None else None
    created, close, *fallback_dates = (_dates(r, convention, mapping, report) for r in readings)
    undated = cells["created"].blank.copy()
    for extra, dates in zip(fallbacks, fallback_dates, strict=True):
        filled = created.isna().to_numpy(dtype=bool) & dates.notna().to_numpy(dtype=bool)
        if filled.any():
            notes.append(ImportNote(f"created date from {extra.header}", int(filled.sum())))
        created = created.where(~filled, dates)
        undated &= extra.blank
    as_of, as_of_from = _export_as_of(mapping, created, close, closed)

    keep = everywhere
    if undated.any() and mapping.undated == "error":
        hint = "; or set undated: skip or keep_as_of in the mapping" if undated.sum() > 1 else ""
        report.each(undated, cells["created"], "a value", lambda i: f"expected a value (the cell is empty"
                    f"{', and so are ' + ', '.join(c.header for c in fallbacks) if fallbacks else ''}{hint})")
    elif undated.any() and mapping.undated == "skip":
        keep = ~undated
        notes.append(ImportNote("undated rows skipped", int(undated.sum())))
    elif undated.any() and as_of is None:
        log.error(source_name, "undated: keep_as_of needs a date for the undated rows, and the export has none: "
                  "set as_of in the mapping")
    elif undated.any():
        stamp = pd.Timestamp(as_of)
        earlier_close = closed & (close < stamp).to_numpy(dtype=bool)
        created = created.where(~undated, close.where(earlier_close, stamp))
        notes.append(ImportNote(f"undated rows kept as created on {as_of}", int(undated.sum())))
    if not keep.all():
        cells = _subset(cells, keep)
        report = _Report(source_name, report.rows[keep], log)
        stage, created, close = (s[keep].reset_index(drop=True) for s in (stage, created, close))
        is_open, closed = is_open[keep], closed[keep]

    won = _won(stage, closed, cells["stage"], cells.get("won"), mapping, report)
    account = _account_ids(cells["account_id"], mapping, report, notes)
    prices = read_price_list(mapping, log) if mapping.prices is not None else None
    amount, amount_source = _amounts_and_sources(cells, mapping, closed & ~won, report, notes, prices)

    report.each((close < created).to_numpy(dtype=bool), cells["close_date"], "close before created",
                lambda i: f"expected a close date on or after the created date ({cells['created'].header}: "
                f"{plain(created.iloc[i])}), got {plain(cells['close_date'].text.iloc[i])}")
    if mapping.as_of is not None:
        stamp = pd.Timestamp(mapping.as_of)
        report.expected((created > stamp).to_numpy(dtype=bool), cells["created"],
                        f"a date on or before as_of ({mapping.as_of})")
        report.expected(closed & (close > stamp).to_numpy(dtype=bool), cells["close_date"],
                        f"a close date of a closed deal on or before as_of ({mapping.as_of})")
    forecast = _forecast(cells.get("forecast_category"), is_open, mapping, report)

    def text(field_name: str) -> pd.Series:
        return cells[field_name].text.mask(cells[field_name].blank, pd.NA).astype("string")

    opp_ids = text("opp_id")
    stage_history = read_stage_history(mapping, choices, log) if mapping.stage_history is not None else None
    reached = None
    if stage_history is not None:
        known = stage_history["opp_id"].isin(opp_ids.dropna()).to_numpy(dtype=bool)
        if not known.all():
            notes.append(ImportNote("stage history rows of deals not imported, left out", int((~known).sum())))
        stage_history = stage_history.loc[known].reset_index(drop=True)
        reached = _reached_stages(stage_history, mapping)
    last_stage, from_history = _last_stage(cells.get("last_stage"), closed, mapping, choices, report, opp_ids,
                                           reached)
    if from_history:
        notes.append(ImportNote("last stage from the stage history", from_history))
    unknown_last = int((closed & last_stage.isna().to_numpy(dtype=bool)).sum())
    if unknown_last:
        notes.append(ImportNote("last stage unknown (left empty)", unknown_last))
    if log.has_errors:
        raise CrmImportError(log.problems)

    owner = text("owner").replace(dict(mapping.owners)) if "owner" in cells else \
        pd.Series(pd.array([pd.NA] * len(stage), dtype="string"))
    table = pd.DataFrame({
        "opp_id": opp_ids, "account_id": account, "owner": owner.astype("string"),
        "stage": stage, "amount": amount, "created": created, "expected_close": close,
        "closed": close, "won": won.astype(bool), "forecast_category": forecast, "last_stage": last_stage,
        "amount_source": pd.Series(amount_source, dtype="string"),
    })
    pipeline = table.loc[is_open, list(PIPELINE_COLUMNS)].reset_index(drop=True)
    history = table.loc[closed, list(HISTORY_COLUMNS)].reset_index(drop=True)
    return CrmConversion(pipeline, history, stage_history, tuple(notes), as_of, as_of_from,
                         int(len(frame) - keep.sum()))


def convert_export(frame: pd.DataFrame, mapping: CrmMapping, source_name: str,
                   rows: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert an opportunity export (all cells text) into the (pipeline, history) tables (see `convert`)."""
    converted = convert(frame, mapping, source_name, rows)
    return converted.pipeline, converted.history


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as the scenario format writes it: dates YYYY-MM-DD, won true/false, whole amounts as integers."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    if "won" in out:
        out["won"] = np.where(out["won"].to_numpy(dtype=bool), "true", "false")
    for column in ("amount", "potential"):
        if column in out:
            values = out[column].astype(float).round(2)
            whole = values.mod(1).eq(0).to_numpy(dtype=bool)
            out[column] = np.where(whole, values.astype("int64").astype(str), values.astype(str))
    return out


def write_tables(pipeline: pd.DataFrame, history: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write pipeline.csv and history.csv into `out_dir`, both or neither; return their paths.

    A text cell a spreadsheet would read as a formula (=, +, -, @) gets a leading apostrophe.
    """
    out_dir = Path(out_dir)
    with run_folder(out_dir) as folder:
        folder.csv("pipeline.csv", _as_written(pipeline))
        folder.csv("history.csv", _as_written(history))
    return out_dir / "pipeline.csv", out_dir / "history.csv"


SUMMARY_FILE = "import-summary.json"


@dataclass(frozen=True, eq=False)
class CrmImport:
    """What an import converted and wrote, and every rule it applied on the way (`notes`)."""

    pipeline: pd.DataFrame  #: open opportunities, in the scenario's pipeline columns
    history: pd.DataFrame  #: closed opportunities, in the scenario's history columns
    rows: int  #: data rows read from the export
    footer_rows: int  #: report footer lines left out
    pipeline_path: Path
    history_path: Path
    notes: tuple[ImportNote, ...] = ()  #: rows imputed, defaulted or skipped, rule by rule
    as_of: dt.date | None = None  #: the export's date: the mapping's as_of, else its latest date
    as_of_from: str = ""  #: "mapping" or "export"
    skipped: int = 0  #: rows left out (undated: skip)
    stage_history: pd.DataFrame | None = None  #: opp_id, stage, entered (with a stage_history file)
    reps: pd.DataFrame | None = None  #: with build_scenario
    accounts: pd.DataFrame | None = None  #: with build_scenario
    written: tuple[Path, ...] = ()  #: every file written, the summary last

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.pipeline_path, self.history_path

    @property
    def scenario_path(self) -> Path | None:
        """scenario.yaml, when the import built a scenario."""
        return next((p for p in self.written if p.name == "scenario.yaml"), None)

    @property
    def summary_path(self) -> Path:
        return self.pipeline_path.parent / SUMMARY_FILE

    def counts(self) -> dict[str, int]:
        """Rows read, open deals, closed won and closed lost."""
        won = int(self.history["won"].sum())
        return {"rows": self.rows, "open": len(self.pipeline), "won": won, "lost": len(self.history) - won}

    def summary(self) -> str:
        """What went where, then one line per rule applied."""
        counts = self.counts()
        lines = [f"{counts['rows']:,} opportunities: {counts['open']:,} open → {self.pipeline_path}, "
                 f"{counts['won'] + counts['lost']:,} closed ({counts['won']:,} won, {counts['lost']:,} lost) "
                 f"→ {self.history_path}"]
        if self.as_of is not None:
            origin = "the mapping" if self.as_of_from == "mapping" else "the latest date in the export"
            lines.append(f"as of {self.as_of} ({origin})")
        lines += [f"{'warning: ' if note.warning else ''}{note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The summary as import-summary.json writes it."""
        return {"counts": self.counts(), "skipped": self.skipped, "footer_rows": self.footer_rows,
                "as_of": self.as_of.isoformat() if self.as_of else None, "as_of_from": self.as_of_from or None,
                "notes": [note.as_dict() for note in self.notes],
                "files": [path.name for path in self.written]}


def import_crm(export_path: str | Path, mapping_path: str | Path | CrmMapping, out_dir: str | Path, *,
               build_scenario: bool = False) -> CrmImport:
    """Read a CRM opportunity export, convert it with the mapping, and write pipeline.csv, history.csv
    (stage_history.csv with a stage history file) and import-summary.json into `out_dir`.

    With `build_scenario`, also reps.csv (one rep per owner), accounts.csv (one per account) and a
    scenario.yaml that loads them. On any error nothing is written and `CrmImportError` lists every problem.
    """
    from tercap.scenario.crm_build import build_scenario as build

    mapping = mapping_path if isinstance(mapping_path, CrmMapping) else load_mapping(mapping_path)
    frame, rows, footer = read_export(export_path)
    converted = convert(frame, mapping, display_name(Path(export_path)), rows=rows)
    out_dir = Path(out_dir)
    notes = list(converted.notes)
    tables = {"pipeline.csv": converted.pipeline, "history.csv": converted.history}
    if converted.stage_history is not None:
        tables["stage_history.csv"] = converted.stage_history
    built = None
    if build_scenario:
        built = build(converted, mapping, out_dir, Path(export_path).name)
        tables |= {"reps.csv": built.reps, "accounts.csv": built.accounts}
        notes += built.notes
    result = CrmImport(converted.pipeline, converted.history, len(frame), footer, out_dir / "pipeline.csv",
                       out_dir / "history.csv", tuple(notes), converted.as_of, converted.as_of_from,
                       converted.skipped, converted.stage_history, built.reps if built else None,
                       built.accounts if built else None,
                       tuple(out_dir / name for name in [*tables, *(["scenario.yaml"] if built else []),
                                                          SUMMARY_FILE]))
    with run_folder(out_dir) as folder:
        for name, table in tables.items():
            folder.csv(name, _as_written(table))
        if built is not None:
            folder.path("scenario.yaml").write_text(built.yaml, encoding="utf-8")
        folder.json(SUMMARY_FILE, {"export": display_name(Path(export_path)), **result.as_dict()})
    return result
