"""Checks across tables and sections, and completion of the values a scenario leaves to defaults.

`check_and_complete` takes typed tables (from tables.py) and validated settings, logs every error
and warning with file, row and column, and returns the tables with derived values filled in
(names, coordinates from geo units, workload from the workload model, ramp profiles …).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tercap.errors import ProblemLog, TercapError
from tercap.scenario.capacity import HIRE_ID_PREFIX, period_capacity_hours, planned_hires
from tercap.scenario.schema import DEFAULT_BUYING_PROCESS, TABLE_SPECS, Capacity, Kind, Settings, TableSpec
from tercap.scenario.tables import default_rows, known_last_stage

Tables = dict[str, pd.DataFrame]


def _is_in(values: pd.Series, known: Iterable[str]) -> np.ndarray:
    """values.isin(known) for text columns, hashed by Arrow (Series.isin is slow on Arrow text)."""
    found = pc.is_in(pa.array(values, type=pa.string()), value_set=pa.array(list(known), type=pa.string()))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _rows(mask: np.ndarray | pd.Series) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, dtype=bool))


class _Checker:
    def __init__(self, settings: Settings, tables: Tables, files: Mapping[str, str], log: ProblemLog,
                 rows: Mapping[str, np.ndarray]):
        self.settings = settings
        self.tables = tables
        self.files = files
        self.log = log
        self.rows = rows  # table -> spreadsheet row number of each row

    def error(self, table: str, mask: np.ndarray | pd.Series, column: str,
              message: str | Callable[[int], str], rule: str = "") -> None:
        """Log `message` (or `message(position)`) for every row of `table` where `mask` holds."""
        for index in _rows(mask):
            text = message if isinstance(message, str) else message(int(index))
            self.log.error(self.files[table], text, row=int(self.rows[table][index]), column=column,
                           rule=rule or (message if isinstance(message, str) else column))

    def warning(self, table: str, mask: np.ndarray | pd.Series, column: str, message: str) -> None:
        """One warning for all rows of `table` where `mask` holds, naming the first few."""
        rows = self.rows[table][_rows(mask)]
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:5]) + (" …" if len(rows) > 5 else "")
            self.log.warning(self.files[table], f"{message} ({len(rows)} row(s): {shown})", column=column)

    # -- generic rules of the schema -----------------------------------------------------------

    def check_keys(self, spec: TableSpec) -> None:
        frame = self.tables[spec.name]
        for col in spec.columns:
            if col.unique:
                values = frame[col.name]
                dup = values.duplicated(keep="first") & values.notna()
                first = pd.Series(self.rows[spec.name], index=values.index).groupby(values).transform("min")
                self.error(spec.name, dup, col.name, lambda i, v=values, c=col.name, f=first:
                           f"duplicate {c} '{v.iloc[i]}' (first used in row {f.iloc[i]})",
                           rule=f"duplicate {col.name}")
        if spec.unique_together:
            key = frame[list(spec.unique_together)].astype(str)
            if spec.symmetric:  # a pair is the same whichever way round it is written
                ordered = np.sort(key.to_numpy(), axis=1)
                key = pd.DataFrame(ordered, columns=list(spec.unique_together))
            dup = key.duplicated(keep="first").to_numpy()
            self.error(spec.name, dup, spec.unique_together[-1],
                       f"duplicate pair ({', '.join(spec.unique_together)}) listed before")

    def check_references(self, spec: TableSpec) -> None:
        frame = self.tables[spec.name]
        for col in spec.columns:
            if col.references is None:
                continue
            target_table, target_column = col.references
            values = frame[col.name]
            if target_table not in self.tables:
                if values.notna().any():
                    self.log.error(self.files[spec.name], f"column refers to table '{target_table}', "
                                   "which the scenario does not have", row=1, column=col.name)
                continue
            known = self.tables[target_table][target_column]
            bad = values.notna() & ~_is_in(values, known)
            target = Path(self.files[target_table]).name
            self.error(spec.name, bad, col.name, lambda i, v=values, c=target_column, t=target:
                       f"'{v.iloc[i]}' is unknown: no such {c} in {t}", rule=f"unknown {target_column}")

    # -- rules of the domain -------------------------------------------------------------------

    def check_accounts(self) -> None:
        accounts = self.tables["accounts"]
        has_lat, has_lon = accounts["lat"].notna(), accounts["lon"].notna()
        self.error("accounts", has_lat & ~has_lon, "lon", "give both lat and lon, or neither")
        self.error("accounts", ~has_lat & has_lon, "lat", "give both lat and lon, or neither")
        self.error("accounts", accounts["locked"].fillna(False) & accounts["current_owner"].isna(), "locked",
                   "a locked account needs a current_owner to stay with")
        workload = accounts["workload_hours"]
        derived_hours = self.settings.assignment.workload_model.hours_by_segment
        unknown = workload.isna() & ~_is_in(accounts["segment"], list(derived_hours))
        known = ", ".join(derived_hours)
        self.error("accounts", unknown, "workload_hours",
                   f"no workload_hours, and assignment.workload_model.hours_by_segment has no "
                   f"entry for the account's segment (it has: {known})")
        multipliers = self.settings.assignment.workload_model.process_multiplier
        process = accounts["buying_process"].mask(accounts["buying_process"].eq(""), DEFAULT_BUYING_PROCESS)
        unknown = workload.isna() & ~_is_in(process, list(multipliers))
        self.error("accounts", unknown, "buying_process",
                   f"no workload_hours, and assignment.workload_model.process_multiplier has no entry "
                   f"for the account's buying process (it has: {', '.join(multipliers)})")
        potential = accounts["potential"]
        self.warning("accounts", potential.eq(0), "potential", "zero potential")
        rep_segments = set(self.tables["reps"]["segment"])
        if self.settings.assignment.eligibility.segment_match:
            orphan = ~_is_in(accounts["segment"], rep_segments)
            for segment in accounts.loc[orphan, "segment"].unique():
                self.warning("accounts", accounts["segment"].eq(segment), "segment",
                             f"no rep sells to segment '{segment}'")

    def check_reps(self) -> None:
        reps = self.tables["reps"]
        has_lat, has_lon = reps["lat"].notna(), reps["lon"].notna()
        self.error("reps", has_lat & ~has_lon, "lon", "give both lat and lon, or neither")
        self.error("reps", ~has_lat & has_lon, "lat", "give both lat and lon, or neither")
        capacity = self.settings.capacity
        curves = capacity.ramp_curves
        profile = reps["ramp_profile"]
        given = profile.ne("").to_numpy(dtype=bool)
        self.error("reps", given & ~_is_in(profile, list(curves)), "ramp_profile",
                   f"unknown ramp curve (capacity.ramp_curves has: {', '.join(curves)})")
        derived = reps["segment"].map(lambda segment: capacity.ramp_name_for(segment))
        self.error("reps", ~given & reps["segment"].notna() & ~_is_in(derived, list(curves)), "ramp_profile",
                   lambda i: _missing_ramp(capacity, str(reps["segment"].iloc[i])), rule="no ramp curve")
        self.error("reps", reps["end_date"] < reps["start_date"], "end_date", "end_date is before start_date")
        self.warning("reps", reps["capacity_hours"].eq(0), "capacity_hours", "zero capacity")
        period = self.settings.period
        start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
        self.warning("reps", reps["end_date"] < start, "end_date",
                     f"leaves before the period starts on {period.start}: no capacity in the period")
        self.warning("reps", reps["start_date"] >= end, "start_date",
                     f"starts after the period ends ({period.end} is its first day after): no capacity in "
                     "the period")
        if self.settings.capacity.hires:
            self.error("reps", reps["rep_id"].str.startswith(HIRE_ID_PREFIX).fillna(False), "rep_id",
                       f"ids starting with '{HIRE_ID_PREFIX}' are kept for the planned hires of "
                       "capacity.hires")
        for index, hire in enumerate(self.settings.capacity.hires):
            if hire.start_month > self.settings.period.months:
                self.log.error(self.files["__yaml__"], f"start_month {hire.start_month} is after the "
                               f"period's {self.settings.period.months} months",
                               key=f"capacity.hires.{index}.start_month")
            if hire.ramp_profile and hire.ramp_profile not in curves:
                self.log.error(self.files["__yaml__"], f"unknown ramp curve '{hire.ramp_profile}' "
                               f"(capacity.ramp_curves has: {', '.join(curves)})",
                               key=f"capacity.hires.{index}.ramp_profile")
            elif capacity.ramp_name_for(hire.segment, hire.ramp_profile) not in curves:
                self.log.error(self.files["__yaml__"], _missing_ramp(capacity, hire.segment),
                               key=f"capacity.hires.{index}.ramp_profile")
            if hire.segment not in set(self.tables["accounts"]["segment"]):
                self.log.warning(self.files["__yaml__"], f"hires for segment '{hire.segment}', which no "
                                 "account belongs to", key=f"capacity.hires.{index}.segment")

    def check_deals(self) -> None:
        stages = list(self.settings.simulation.stage_names)
        names = ", ".join(stages)
        if "pipeline" in self.tables:
            pipeline = self.tables["pipeline"]
            self.error("pipeline", pipeline["stage"].notna() & ~_is_in(pipeline["stage"], stages), "stage",
                       f"unknown stage (simulation.stages has: {names})")
            self.error("pipeline", pipeline["expected_close"] < pipeline["created"], "expected_close",
                       "expected_close is before created")
        if "history" in self.tables:
            history = self.tables["history"]
            self.error("history", known_last_stage(history) & ~_is_in(history["last_stage"], stages),
                       "last_stage", f"unknown stage (simulation.stages has: {names})")
            self.error("history", history["closed"] < history["created"], "closed",
                       "closed is before created")
            period = self.settings.period
            self.warning("history", history["closed"] >= pd.Timestamp(period.start), "closed",
                         f"closed on or after the period start {period.start}: history is read as deals "
                         "closed before the period")
        if "stage_history" in self.tables:
            entries = self.tables["stage_history"]
            allowed = [*stages, "won", "lost", "closed"]
            self.error("stage_history", ~_is_in(entries["stage"], allowed), "stage",
                       f"unknown stage (simulation.stages has: {names}; or won, lost, closed)")

    def check_adjacency(self) -> None:
        if "adjacency" in self.tables:
            edges = self.tables["adjacency"]
            self.error("adjacency", edges["unit_a"] == edges["unit_b"], "unit_b",
                       "a unit cannot be adjacent to itself")


def _missing_ramp(capacity: Capacity, segment: str) -> str:
    return (f"no ramp_profile, and no ramp curve for segment '{segment}': capacity.default_ramp has no entry "
            f"for it and capacity.ramp_curves has no '{capacity.ramp_name_for(segment)}' curve")


def _with_every_column(tables: Tables) -> Tables:
    """The tables with the optional columns they lack added empty, in the schema's order."""
    out: Tables = {}
    for name, frame in tables.items():
        spec = TABLE_SPECS[name]
        missing = {col.name: _empty_column(col.kind, len(frame)) for col in spec.columns
                   if col.name not in frame}
        out[name] = frame.assign(**missing)[[col.name for col in spec.columns]]
    return out


def _fill_blank(frame: pd.DataFrame, column: str, values: pd.Series | object) -> None:
    """Fill the empty cells of a text column of `frame` (in place) with `values`."""
    frame[column] = frame[column].mask(frame[column].isna() | frame[column].eq(""), values)


def _fill_defaults(settings: Settings, tables: Tables) -> Tables:
    """Fill every empty optional cell with its documented default."""
    out = {name: frame.copy() for name, frame in tables.items()}
    reps = out["reps"]
    _fill_blank(reps, "name", reps["rep_id"])
    reps["experience_years"] = reps["experience_years"].fillna(0.0)
    reps["capacity_hours"] = reps["capacity_hours"].fillna(settings.capacity.hours_per_month)
    _fill_blank(reps, "ramp_profile", reps["segment"].map(lambda s: settings.capacity.ramp_name_for(s)))

    accounts = out["accounts"]
    _fill_blank(accounts, "name", accounts["account_id"])
    if "geo_units" in out:
        units = out["geo_units"].set_index("unit_id")
        for axis in ("lat", "lon"):
            accounts[axis] = accounts[axis].fillna(accounts["geo_unit"].map(units[axis]).astype(float))
        _fill_blank(out["geo_units"], "name", out["geo_units"]["unit_id"])
    _fill_blank(accounts, "buying_process", DEFAULT_BUYING_PROCESS)
    model = settings.assignment.workload_model
    derived = accounts["segment"].map(model.hours_by_segment).astype(float) * \
        accounts["buying_process"].map(model.process_multiplier).astype(float)
    accounts["workload_hours"] = accounts["workload_hours"].fillna(derived)

    accounts["locked"] = accounts["locked"].fillna(False).astype(bool)
    if "history" in out:
        out["history"]["won"] = out["history"]["won"].astype(bool)
    if "pipeline" in out:
        owner_of = accounts.set_index("account_id")["current_owner"]
        pipeline = out["pipeline"]
        pipeline["owner"] = pipeline["owner"].fillna(pipeline["account_id"].map(owner_of))
    if "adjacency" in out:
        out["adjacency"]["length"] = out["adjacency"]["length"].fillna(1.0)
    return out


def _empty_column(kind: Kind, length: int) -> pd.Series:
    if kind is Kind.BOOL:
        return pd.Series(pd.array([pd.NA] * length, dtype="boolean"))
    if kind is Kind.FLOAT:
        return pd.Series(np.full(length, np.nan))
    if kind is Kind.INT:
        return pd.Series(pd.array([pd.NA] * length, dtype="Int64"))
    if kind is Kind.DATE:
        return pd.Series(pd.NaT, index=range(length), dtype="datetime64[ns]")
    if kind is Kind.LIST:
        return pd.Series([()] * length, dtype=object)
    if kind is Kind.ID:
        return pd.Series(pd.array([pd.NA] * length, dtype="string"))
    return pd.Series(pd.array([""] * length, dtype="string"))


def check_and_complete(settings: Settings, tables: Tables, files: Mapping[str, str], log: ProblemLog,
                       rows: Mapping[str, np.ndarray] | None = None) -> Tables | None:
    """Check `tables` against each other and the settings; return them completed, or None on errors.

    `files` maps each table name (and '__yaml__') to the name used in messages; `rows` maps a table
    name to the spreadsheet row number of each of its rows (default: 2, 3, …).
    """
    tables = _with_every_column(tables)
    numbers = {name: np.asarray(rows[name]) if rows and name in rows else default_rows(len(frame))
               for name, frame in tables.items()}
    checker = _Checker(settings, tables, files, log, numbers)
    for name in tables:
        checker.check_keys(TABLE_SPECS[name])
        checker.check_references(TABLE_SPECS[name])
    checker.check_reps()
    checker.check_accounts()
    checker.check_deals()
    checker.check_adjacency()
    if log.has_errors:
        return None
    completed = _fill_defaults(settings, tables)
    _warn_capacity(settings, completed, files, log)
    return completed


def _warn_capacity(settings: Settings, tables: Tables, files: Mapping[str, str], log: ProblemLog) -> None:
    """Warn when the workload of the period exceeds the capacity of the reps (and planned hires)."""
    share_of_year = settings.period.months / 12
    reps = pd.concat([tables["reps"], planned_hires(settings, tables["accounts"])], ignore_index=True)
    capacity = period_capacity_hours(settings, reps).groupby(reps["segment"].to_numpy()).sum()
    workload = tables["accounts"].groupby("segment")["workload_hours"].sum() * share_of_year
    total_work, total_capacity = workload.sum(), capacity.sum()
    if total_work > total_capacity:
        excess = total_work / max(total_capacity, 1e-9) - 1
        log.warning(files["accounts"], f"total workload {total_work:,.0f} h exceeds the reps' capacity "
                    f"{total_capacity:,.0f} h over the period by {excess:.1%}", column="workload_hours")
    if settings.assignment.eligibility.segment_match:
        for segment, hours in workload.items():
            cap = float(capacity.get(segment, 0.0))
            if cap > 0 and hours > cap:
                log.warning(files["accounts"], f"{segment} workload {hours:,.0f} h exceeds {segment} "
                            f"capacity {cap:,.0f} h by {hours / cap - 1:.1%}", column="workload_hours")


def require_coordinates(frame: pd.DataFrame, table: str, id_column: str, step: str) -> None:
    """Raise a `TercapError` naming the rows of `table` without lat and lon, which `step` needs."""
    lat = frame["lat"] if "lat" in frame else pd.Series(np.nan, index=frame.index)
    lon = frame["lon"] if "lon" in frame else pd.Series(np.nan, index=frame.index)
    missing = (lat.isna() | lon.isna()).to_numpy(dtype=bool)
    if missing.any():
        ids = frame[id_column].astype(str).to_numpy()[missing]
        shown = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
        raise TercapError(f"{step} measures distances, so it needs coordinates: {len(ids):,} of the {len(frame):,} "
                          f"{table} have no lat and lon ({shown}). Add lat and lon to the {table} table"
                          + (" (or a geo_unit with a centroid)" if table == "accounts" else "") + ".")
