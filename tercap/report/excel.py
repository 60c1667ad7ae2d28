"""plan.xlsx: the plan, reps, quotas and simulation as sheets a planner can sort and filter.

Headers are bold and frozen, columns sized to their contents, numbers formatted by what they hold; a
text cell that a spreadsheet would read as a formula (it begins with = + - @) is written with a
leading apostrophe, as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tercap.report.html import rep_names
from tercap.runfolder import neutralise_text

if TYPE_CHECKING:
    from tercap.run import PlanningRun

MONEY = "#,##0"
HOURS = "#,##0.0"
SHARE = "0.0%"
WIDEST = 48  # characters
# number formats by column name (others: general)
FORMATS = {
    "quota": MONEY, "potential": MONEY, "last_year_actual": MONEY, "pipeline": MONEY, "weighted_pipeline": MONEY,
    "mean": MONEY, "p10": MONEY, "p50": MONEY, "p90": MONEY, "value": "#,##0.###",
    "workload_hours": HOURS, "capacity_hours": HOURS, "distance_km": HOURS, "travel_km": HOURS,
    "utilisation": SHARE, "potential_share": SHARE, "industry_match_share": SHARE, "ramp_factor": SHARE,
    "p_attain": SHARE, "expected_attainment": SHARE, "quota_to_potential": SHARE, "pipeline_coverage": "0.00",
    "workload": HOURS, "compactness": HOURS,
}


def write_workbook(run: PlanningRun, path: Path) -> None:
    """Write the workbook of a planning run to `path`."""
    from openpyxl import Workbook

    book = Workbook()
    sheets = _sheets(run)
    book.remove(book.active)
    for title, frame in sheets.items():
        _write_sheet(book.create_sheet(title), frame)
    book.save(path)


def _sheets(run: PlanningRun) -> dict[str, pd.DataFrame]:
    scenario = run.scenario
    names = rep_names(scenario)
    account_names = scenario.accounts.set_index("account_id")["name"]
    assignments = run.plan.assignments
    assignments.insert(1, "account_name", assignments["account_id"].map(account_names))
    assignments.insert(3, "rep_name", assignments["rep_id"].map(names))
    reps = run.plan.reps
    reps.insert(1, "name", reps["rep_id"].map(names))
    sheets: dict[str, pd.DataFrame] = {
        "Summary": pd.DataFrame([{"measure": k, "value": v} for k, v in run.headline().items()]),
        "Assignments": assignments, "Reps": reps}
    if run.territories is not None:
        territories = run.territories.territories.copy()
        territories.insert(2, "rep_name", territories["rep_id"].map(names))
        sheets["Territories"] = territories
        sheets["Units"] = run.territories.units
    if run.quotas is not None:
        quotas = run.quotas.table.copy()
        quotas.insert(1, "name", quotas["rep_id"].map(names))
        sheets["Quotas"] = quotas
    if run.simulation is not None:
        simulation = run.simulation.reps()
        simulation.insert(1, "name", simulation["rep_id"].map(names))
        sheets["Simulation"] = simulation
    return sheets


def _write_sheet(sheet: Any, frame: pd.DataFrame) -> None:
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    frame = neutralise_text(frame.reset_index(drop=True))
    sheet.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False):
        sheet.append([_plain(v) for v in row])
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DCE6F1")
    for cell in sheet[1]:
        cell.font, cell.fill = bold, fill
    sheet.freeze_panes = "A2"
    if len(frame):
        sheet.auto_filter.ref = sheet.dimensions
    for index, column in enumerate(frame.columns, start=1):
        letter = get_column_letter(index)
        number_format = FORMATS.get(str(column))
        if number_format:
            for cell in sheet[letter][1:]:
                cell.number_format = number_format
        text = frame[column].astype(str)
        longest = max([len(str(column)), *text.str.len().head(2000).tolist()])
        sheet.column_dimensions[letter].width = min(longest + 2, WIDEST)


def _plain(value: Any) -> Any:
    """A cell value openpyxl writes as data: numpy scalars unwrapped, missing values empty, and any text
    kept as text (openpyxl would take a string beginning with '=' as a formula; those were neutralised)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value
