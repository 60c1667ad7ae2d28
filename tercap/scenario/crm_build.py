"""A scenario built from a CRM import (`tercap import crm --scenario`): one rep per deal owner, one account
per account id, and a scenario.yaml that loads them with the imported pipeline and history.

Reps take their region, manager and segment from the mapping's `teams` file, accounts their segment,
industry, region and potential from its `accounts` file; what a file does not give is defaulted and
counted. Nothing is invented that the engine would read as fact: reps and accounts get no coordinates
(assignment and territory design then say that they need them).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tercap.errors import ProblemLog
from tercap.scenario.crm import CrmConversion, CrmImportError, CrmMapping, ImportNote, _amounts, _duplicates
from tercap.scenario.crm_sources import SideTable, read_side_file
from tercap.scenario.schema import Simulation, WorkloadModel, month_start

__all__ = ["BuiltScenario", "build_scenario", "scenario_name"]

MIN_POTENTIAL = 1.0  # potential of an account without won deals: positive, so that it still weighs a little
DEFAULT_WIN_RATE = 0.25  # starting win rate of custom stages when the history has no closed deal
DEFAULT_CYCLE_DAYS = 90.0  # starting sales cycle of custom stages when the history has no won deal
OTHER_SEGMENT_HOURS = WorkloadModel().hours_by_segment["mid_market"]  # h/year of an account of another segment


@dataclass(frozen=True, eq=False)
class BuiltScenario:
    """The reps and accounts tables and the scenario file built from an import."""

    reps: pd.DataFrame
    accounts: pd.DataFrame
    settings: dict[str, Any]  #: the scenario file's content
    notes: tuple[ImportNote, ...]

    @property
    def yaml(self) -> str:
        header = "# Built by tercap import crm --scenario; see docs/crm-import.md.\n"
        return header + yaml.safe_dump(self.settings, sort_keys=False, allow_unicode=True)


def scenario_name(folder: Path) -> str:
    """A scenario name from a folder name: letters, digits, '-' and '_' ('crm import' → 'crm_import')."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", folder.resolve().name).strip("_-")
    return name or "crm_import"


def _period_start(as_of: dt.date) -> dt.date:
    """The day after as_of when that starts a month, else the first day of the next month."""
    return month_start(as_of, 1)


def _by_first(table: SideTable, field: str, log: ProblemLog) -> dict[str, int]:
    """Key of each row (the `field` cell) → its position; a repeated or empty key is an error."""
    report = table.report(log)
    cells = table.cells[field]
    report.expected(cells.blank, cells, "a value", show_value=False)
    _duplicates(cells, report)
    return {key: index for index, key in enumerate(cells.text) if key}


def _column(table: SideTable | None, field: str, positions: np.ndarray) -> np.ndarray:
    """The `field` cells of the rows at `positions` (-1: no row) as text, '' where none."""
    if table is None or field not in table.cells:
        return np.full(len(positions), "", dtype=object)
    text = table.cells[field].text.to_numpy(dtype=object)
    return np.where(positions >= 0, text[np.maximum(positions, 0)], "")


def _reps(conversion: CrmConversion, mapping: CrmMapping, log: ProblemLog, notes: list[ImportNote]
          ) -> pd.DataFrame:
    owners = pd.concat([conversion.pipeline["owner"], conversion.history["owner"]]).dropna()
    rep_ids = sorted(set(owners))
    written = {rep: name for name, rep in mapping.owners.items()}
    positions = np.full(len(rep_ids), -1)
    table = None
    if mapping.teams is not None:
        teams = mapping.teams
        table = read_side_file(mapping, "teams", teams.file, {"owner": teams.owner, "region": teams.region,
                                                               "manager": teams.manager, "segment": teams.segment}, log)
        if table is not None:
            first = _by_first(table, "owner", log)
            by_rep = {mapping.owners.get(name, name): index for name, index in first.items()}
            positions = np.array([by_rep.get(rep, -1) for rep in rep_ids], dtype=int)
            missing = int((positions < 0).sum())
            if missing:
                notes.append(ImportNote(f"reps not in the team file {table.name} (no region or manager)", missing))
    segment = _column(table, "segment", positions)
    defaulted = segment == ""
    if defaulted.any():
        notes.append(ImportNote(f"rep segment defaulted to '{mapping.default_segment}'", int(defaulted.sum())))
    return pd.DataFrame({
        "rep_id": rep_ids, "name": [written.get(rep, rep) for rep in rep_ids],
        "region": _column(table, "region", positions), "manager": _column(table, "manager", positions),
        "segment": np.where(defaulted, mapping.default_segment, segment),
    })


def _won_per_year(conversion: CrmConversion, as_of: dt.date) -> tuple[pd.Series, float]:
    """Won amount a year of each account over the history's span (at least a year), and the span in years."""
    history = conversion.history
    if history.empty:
        return pd.Series(dtype=float), 1.0
    first = pd.concat([history["created"], history["closed"]]).min()
    years = max((pd.Timestamp(as_of) - first).days + 1, 365.25) / 365.25
    won = history[history["won"]].groupby("account_id")["amount"].sum()
    return won / years, years


def _accounts(conversion: CrmConversion, mapping: CrmMapping, as_of: dt.date, log: ProblemLog,
              notes: list[ImportNote]) -> pd.DataFrame:
    ids = sorted(set(conversion.pipeline["account_id"]) | set(conversion.history["account_id"]))
    positions = np.full(len(ids), -1)
    table, potential_given = None, np.full(len(ids), np.nan)
    if mapping.accounts is not None:
        section = mapping.accounts
        table = read_side_file(mapping, "accounts", section.file, {
            "id": section.id, "segment": section.segment, "industry": section.industry,
            "potential": section.potential, "region": section.region}, log)
        if table is not None:
            first = _by_first(table, "id", log)
            positions = np.array([first.get(account, -1) for account in ids], dtype=int)
            missing = int((positions < 0).sum())
            if missing:
                notes.append(ImportNote(f"accounts not in the accounts file {table.name}", missing))
            if "potential" in table.cells:
                read = _amounts(table.cells["potential"], mapping, table.report(log))
                potential_given = np.where(positions >= 0, read[np.maximum(positions, 0)], np.nan)
    segment = _column(table, "segment", positions)
    defaulted = segment == ""
    if defaulted.any():
        notes.append(ImportNote(f"account segment defaulted to '{mapping.default_segment}'", int(defaulted.sum())))
    won, years = _won_per_year(conversion, as_of)
    from_history = pd.Series(ids).map(won).to_numpy(dtype=float, na_value=np.nan)
    fill = ~np.isfinite(potential_given)
    potential = np.where(fill, np.maximum(np.nan_to_num(from_history, nan=0.0), MIN_POTENTIAL), potential_given)
    won_filled = fill & np.isfinite(from_history) & (from_history >= MIN_POTENTIAL)
    if won_filled.any():
        notes.append(ImportNote(f"account potential = won amount a year (over {years:.1f} years of history)",
                                int(won_filled.sum())))
    if (fill & ~won_filled).any():
        notes.append(ImportNote(f"account potential set to {MIN_POTENTIAL:g} (no won deals)",
                                int((fill & ~won_filled).sum())))
    owner = _current_owners(conversion).reindex(ids)
    if owner.notna().any():
        notes.append(ImportNote("account owner = the rep with most of its deals (open ones first)",
                                int(owner.notna().sum())))
    return pd.DataFrame({
        "account_id": ids, "region": _column(table, "region", positions),
        "industry": _column(table, "industry", positions),
        "segment": np.where(defaulted, mapping.default_segment, segment), "potential": potential,
        "current_owner": owner.to_numpy(dtype=object),
    })


def _current_owners(conversion: CrmConversion) -> pd.Series:
    """account_id → the owner of most of its open deals, else of most of its closed ones (ties: the
    owner first in name order); accounts whose deals have no owner are left out."""
    owned = []
    for rank, table in enumerate((conversion.pipeline, conversion.history)):
        rows = table[["account_id", "owner"]].dropna()
        owned.append(rows.assign(rank=rank))
    deals = pd.concat(owned, ignore_index=True)
    if deals.empty:
        return pd.Series(dtype=object)
    counts = deals.groupby(["account_id", "rank", "owner"]).size().rename("deals").reset_index()
    counts = counts.sort_values(["account_id", "rank", "deals", "owner"], ascending=[True, True, False, True])
    return counts.drop_duplicates("account_id").set_index("account_id")["owner"].astype(object)


def _stages(conversion: CrmConversion, mapping: CrmMapping) -> list[dict[str, Any]] | None:
    """simulation.stages for the mapping's open stages: None for tercap's own stages (their defaults);
    otherwise starting values from the history (calibration refits them): the win rate spread evenly over
    the stages, and the median won cycle split evenly."""
    if mapping.open_stages == Simulation().stage_names:
        return None
    history = conversion.history
    count = len(mapping.open_stages)
    win_rate = float(np.clip(history["won"].mean(), 0.02, 0.98)) if len(history) else DEFAULT_WIN_RATE
    won = history[history["won"]]
    cycle = float((won["closed"] - won["created"]).dt.days.median()) if len(won) else DEFAULT_CYCLE_DAYS
    days = max(round((cycle if np.isfinite(cycle) else DEFAULT_CYCLE_DAYS) / count, 1), 1.0)
    return [{"name": name, "conversion": round(win_rate ** (1 / count), 4), "median_days": days}
            for name in mapping.open_stages]


def build_scenario(conversion: CrmConversion, mapping: CrmMapping, out_dir: Path, export_name: str
                   ) -> BuiltScenario:
    """Reps, accounts and the scenario file for an import written to `out_dir` (see the module's doc)."""
    log = ProblemLog()
    notes: list[ImportNote] = []
    if conversion.as_of is None:
        log.error(export_name, "the export has no date to start the period from: set as_of in the mapping")
        raise CrmImportError(log.problems)
    reps = _reps(conversion, mapping, log, notes)
    accounts = _accounts(conversion, mapping, conversion.as_of, log, notes)
    if log.has_errors:
        raise CrmImportError(log.problems)
    tables = {"reps": "reps.csv", "accounts": "accounts.csv"}
    tables |= {name: f"{name}.csv" for name in ("pipeline", "history") if len(getattr(conversion, name))}
    if conversion.stage_history is not None and len(conversion.stage_history):
        tables["stage_history"] = "stage_history.csv"
    settings: dict[str, Any] = {
        "name": scenario_name(out_dir),
        "description": f"Imported from {export_name} by tercap import crm (as of {conversion.as_of}).",
        "period": {"start": _period_start(conversion.as_of), "months": 12},
        "tables": tables,
    }
    known = WorkloadModel().hours_by_segment
    segments = sorted(set(accounts["segment"]) - set(known))
    if segments:
        settings["assignment"] = {"workload_model": {"hours_by_segment": {
            segment: OTHER_SEGMENT_HOURS for segment in segments}}}
    stages = _stages(conversion, mapping)
    if stages is not None:
        settings["simulation"] = {"stages": stages}
    return BuiltScenario(reps, accounts, settings, tuple(notes))
