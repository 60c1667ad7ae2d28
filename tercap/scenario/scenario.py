"""The Scenario: everything a scenario file says, validated, typed and immutable."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pydantic

from tercap.errors import Problem, ProblemLog, ScenarioError
from tercap.scenario.capacity import period_capacity_hours, planned_hires
from tercap.scenario.reading import display_name, read_raw, report_settings_errors, suggest, validate_settings
from tercap.scenario.schema import TABLE_ORDER, TABLE_SPECS, TABLES_KEY, Period, Settings, deep_merge
from tercap.scenario.tables import convert_table, read_table_file
from tercap.scenario.validation import check_and_complete

YAML_KEY = "__yaml__"
REPLACE = "replace()"  # the name of the settings' origin in messages about a what-if


@dataclass(frozen=True, eq=False, repr=False)
class Scenario:
    """A validated scenario. Immutable: tables come back as copy-on-write views, and a what-if is
    a new scenario made by `replace(...)`.
    """

    settings: Settings
    _tables: Mapping[str, pd.DataFrame]  # completed: every column present, defaults filled in
    _given: Mapping[str, pd.DataFrame]  # as read, before completion (what `replace` starts from)
    source: Path | None = None
    files: tuple[Path, ...] = ()  # the scenario file, what it extends, and its tables
    warnings: tuple[Problem, ...] = ()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_tables(cls, settings: Settings | Mapping[str, Any], tables: Mapping[str, pd.DataFrame],
                    *, source: Path | None = None, files: tuple[Path, ...] = (),
                    origin: str | None = None) -> Scenario:
        """Build a scenario from sections and DataFrames, validated exactly as a file is.

        `origin` names the settings in messages (default: the source file, or 'scenario').
        Raises `ScenarioError` for bad values, `TypeError` for a table that is not a DataFrame.
        """
        log = ProblemLog()
        label = origin or (display_name(source) if source else "scenario")
        names = {YAML_KEY: label}
        for name, frame in tables.items():
            if name not in TABLE_SPECS:
                raise TypeError(f"unknown table '{name}'{suggest(str(name), list(TABLE_SPECS))} (known: "
                                f"{', '.join(TABLE_SPECS)})")
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"table '{name}' must be a pandas DataFrame, got {type(frame).__name__}")
        if isinstance(settings, Settings):
            settings = settings.model_dump()  # validated again: a model_copy(update=...) is not
        if not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a Settings or a mapping of sections, got {type(settings).__name__}")
        validated: Settings | None = None
        try:
            validated = Settings.model_validate(dict(settings))
        except pydantic.ValidationError as exc:
            report_settings_errors(exc, log, lambda loc: (label, None))
        typed: dict[str, pd.DataFrame] = {}
        for name in TABLE_ORDER:
            if name in tables:
                names[name] = f"{name} table"
                frame = convert_table(tables[name], TABLE_SPECS[name], names[name], log)
                if frame is not None:
                    typed[name] = frame
        return cls._checked(validated, typed, {}, names, log, source, files)

    @classmethod
    def _checked(cls, settings: Settings | None, typed: dict[str, pd.DataFrame], rows: dict[str, np.ndarray],
                 names: dict[str, str], log: ProblemLog, source: Path | None, files: tuple[Path, ...]) -> Scenario:
        for spec in TABLE_SPECS.values():
            if spec.required and spec.name not in typed and spec.name not in names:
                log.error(names[YAML_KEY], f"the scenario has no '{spec.name}' table "
                          f"(name its file under `{TABLES_KEY}:`)", key=f"{TABLES_KEY}.{spec.name}")
        log.raise_if_errors()
        if settings is None:  # every reason was logged as an error
            raise ScenarioError(log.problems)
        completed = check_and_complete(settings, typed, names, log, rows)
        log.raise_if_errors()
        if completed is None:
            raise ScenarioError(log.problems)
        return cls(settings, MappingProxyType(completed), MappingProxyType(typed), source, files, log.problems)

    def replace(self, **changes: Any) -> Scenario:
        """A new scenario with sections or tables replaced; this one is unchanged.

        A section takes a mapping, merged key by key over the current section (mappings inside
        merge too, as in a file that `extends` this one), e.g.
        `scenario.replace(quota={"company_target": 12e6})`; or a section object, e.g.
        `replace(capacity=Capacity(...))`, which replaces the section whole. A table takes a
        DataFrame, e.g. `scenario.replace(reps=new_reps)` (taken as given: its derived values are
        not derived again), or None to drop an optional table.

        Raises `ScenarioError` (naming `replace()`) for bad values, `TypeError` for an unknown name
        or a table that is not a DataFrame.
        """
        sections = self.settings.model_dump()
        tables = dict(self._given)
        for key, value in changes.items():
            if key in TABLE_SPECS:
                if value is None:
                    tables.pop(key, None)
                elif isinstance(value, pd.DataFrame):
                    tables[key] = value
                else:
                    raise TypeError(f"replace(): table '{key}' takes a pandas DataFrame (or None to drop "
                                    f"it), got {type(value).__name__}")
            elif key in Settings.model_fields:
                if isinstance(value, pydantic.BaseModel):
                    sections[key] = value  # a section object replaces the section whole
                elif isinstance(value, Mapping) and isinstance(sections.get(key), Mapping):
                    sections[key] = deep_merge(sections[key], value)
                else:
                    sections[key] = value
            else:
                known = ", ".join([*Settings.model_fields, *TABLE_SPECS])
                raise TypeError(f"replace() got an unknown name '{key}'"
                                f"{suggest(key, [*Settings.model_fields, *TABLE_SPECS])} (known: {known})")
        return Scenario.from_tables(sections, tables, source=self.source, files=self.files, origin=REPLACE)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its parts (worker processes of sweeps and simulations receive scenarios)."""
        return _rebuilt, (self.settings, dict(self._tables), dict(self._given), self.source, self.files, self.warnings)

    # -- reading -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self.settings.name:
            return self.settings.name
        return self.source.stem if self.source else "scenario"

    @property
    def period(self) -> Period:
        return self.settings.period

    def has_table(self, name: str) -> bool:
        return name in self._tables

    def fingerprint(self) -> str:
        """A hash of what the scenario says: every setting and every table's content (not where they were
        read from). Two scenarios with the same fingerprint give the same runs."""
        digest = hashlib.sha256(json.dumps(self.settings.model_dump(mode="json"), sort_keys=True).encode())
        for name in sorted(self._tables):
            frame = self._tables[name]
            digest.update(f"|{name}|{','.join(map(str, frame.columns))}|".encode())
            digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def table(self, name: str) -> pd.DataFrame:
        """A table as a DataFrame (a copy-on-write view: changing it never changes the scenario)."""
        if name not in TABLE_SPECS:
            raise KeyError(f"unknown table '{name}' (known: {', '.join(TABLE_SPECS)})")
        if name not in self._tables:
            raise KeyError(f"the scenario has no '{name}' table")
        return self._tables[name].copy(deep=False)

    @property
    def reps(self) -> pd.DataFrame:
        return self.table("reps")

    @property
    def accounts(self) -> pd.DataFrame:
        return self.table("accounts")

    @property
    def geo_units(self) -> pd.DataFrame | None:
        return self.table("geo_units") if self.has_table("geo_units") else None

    @property
    def adjacency(self) -> pd.DataFrame | None:
        return self.table("adjacency") if self.has_table("adjacency") else None

    @property
    def pipeline(self) -> pd.DataFrame | None:
        return self.table("pipeline") if self.has_table("pipeline") else None

    @property
    def history(self) -> pd.DataFrame | None:
        return self.table("history") if self.has_table("history") else None

    @property
    def stage_history(self) -> pd.DataFrame | None:
        return self.table("stage_history") if self.has_table("stage_history") else None

    @property
    def pairs(self) -> pd.DataFrame | None:
        return self.table("pairs") if self.has_table("pairs") else None

    @property
    def planned_hires(self) -> pd.DataFrame:
        """The hires of `capacity.hires` as rows shaped like the reps table."""
        return planned_hires(self.settings, self._tables["accounts"])

    # -- summaries -----------------------------------------------------------------------------

    def segment_summary(self) -> pd.DataFrame:
        """Accounts, potential, workload and capacity over the period, by segment."""
        share_of_year = self.period.months / 12
        accounts = self._tables["accounts"]
        staff = pd.concat([self._tables["reps"], self.planned_hires], ignore_index=True)
        capacity = period_capacity_hours(self.settings, staff)
        by_segment = pd.DataFrame({
            "accounts": accounts.groupby("segment").size(),
            "potential": accounts.groupby("segment")["potential"].sum() * share_of_year,
            "workload_h": accounts.groupby("segment")["workload_hours"].sum() * share_of_year,
            "reps": self._tables["reps"].groupby("segment").size(),
            "hires": self.planned_hires.groupby("segment").size(),
            "capacity_h": capacity.groupby(staff["segment"]).sum(),
        }).fillna(0)
        by_segment.loc["total"] = by_segment.sum()
        by_segment["utilisation"] = by_segment["workload_h"] / by_segment["capacity_h"].where(
            by_segment["capacity_h"] > 0)
        for column in ("accounts", "reps", "hires"):
            by_segment[column] = by_segment[column].astype(int)
        by_segment.index.name = "segment"
        return by_segment

    def region_summary(self) -> pd.DataFrame:
        """Accounts, potential and workload by region (of the accounts), with the reps based there."""
        accounts = self._tables["accounts"].assign(region=lambda f: f["region"].replace("", "(none)"))
        reps = self._tables["reps"].assign(region=lambda f: f["region"].replace("", "(none)"))
        share_of_year = self.period.months / 12
        by_region = pd.DataFrame({
            "accounts": accounts.groupby("region").size(),
            "potential": accounts.groupby("region")["potential"].sum() * share_of_year,
            "workload_h": accounts.groupby("region")["workload_hours"].sum() * share_of_year,
            "reps": reps.groupby("region").size(),
        }).fillna(0)
        for column in ("accounts", "reps"):
            by_region[column] = by_region[column].astype(int)
        by_region.index.name = "region"
        return by_region.sort_values("potential", ascending=False)

    def counts(self) -> dict[str, float]:
        """Headline figures: table sizes, ownership, pipeline value, historical win rate."""
        accounts = self._tables["accounts"]
        figures: dict[str, float] = {
            "reps": len(self._tables["reps"]),
            "planned hires": sum(h.count for h in self.settings.capacity.hires),
            "accounts": len(accounts),
            "accounts without owner": int(accounts["current_owner"].isna().sum()),
            "locked accounts": int(accounts["locked"].sum()),
        }
        if self.has_table("geo_units"):
            figures["geo units"] = len(self._tables["geo_units"])
        if self.has_table("adjacency"):
            figures["adjacent pairs"] = len(self._tables["adjacency"])
        if self.has_table("pipeline"):
            figures["open opportunities"] = len(self._tables["pipeline"])
            figures["open pipeline value"] = float(self._tables["pipeline"]["amount"].sum())
        if self.has_table("history"):
            history = self._tables["history"]
            figures["closed deals (history)"] = len(history)
            figures["historical win rate"] = float(history["won"].mean())
        if self.settings.quota.company_target is not None:
            figures["company target"] = self.settings.quota.company_target
        return figures

    def __repr__(self) -> str:
        accounts, reps = len(self._tables["accounts"]), len(self._tables["reps"])
        return (f"<Scenario {self.name!r}: {accounts:,} accounts, {reps:,} reps, "
                f"{self.period.months} months from {self.period.start}>")

    def _repr_html_(self) -> str:
        figures = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{_format_figure(k, v)}</td></tr>"
            for k, v in self.counts().items())
        segments = self.segment_summary().to_html(float_format=lambda v: f"{v:,.2f}" if v < 10 else
                                                  f"{v:,.0f}", escape=True)
        warnings = ""
        if self.warnings:
            items = "".join(f"<li>{html.escape(str(w))}</li>" for w in self.warnings[:10])
            warnings = f"<p><b>{len(self.warnings)} warning(s)</b></p><ul>{items}</ul>"
        title = html.escape(self.name)
        period = html.escape(f"{self.period.label or ''} {self.period.start} + {self.period.months} months")
        return (f"<div><h4>Scenario {title}</h4><p>{period}</p><table>{figures}</table>"
                f"<p><b>By segment</b> (over the period)</p>{segments}{warnings}</div>")


def _format_figure(name: str, value: float) -> str:
    if "rate" in name:
        return f"{value:.1%}"
    return f"{value:,.0f}"


def _rebuilt(settings: Settings, tables: dict[str, pd.DataFrame], given: dict[str, pd.DataFrame], source: Path | None,
             files: tuple[Path, ...], warnings: tuple[Problem, ...]) -> Scenario:
    """A pickled scenario, put back together (already validated: not checked again)."""
    return Scenario(settings, MappingProxyType(tables), MappingProxyType(given), source, files, warnings)


def load(path: str | Path) -> Scenario:
    """Read, validate and complete a scenario file and its tables.

    Raises `ScenarioError` listing every error found (file, row, column); warnings are kept in
    `Scenario.warnings`.
    """
    log = ProblemLog()
    raw = read_raw(path, log)
    if raw is None:  # every reason was logged as an error
        raise ScenarioError(log.problems)
    settings = validate_settings(raw, log)
    names = {YAML_KEY: display_name(raw.path)}
    typed: dict[str, pd.DataFrame] = {}
    rows: dict[str, np.ndarray] = {}
    for name in TABLE_ORDER:
        if name not in raw.table_paths:
            continue
        table_path = raw.table_paths[name]
        names[name] = display_name(table_path)
        if not table_path.is_file():
            origin = raw.table_origins[name]
            what = "a folder, not a file" if table_path.is_dir() else "a file that does not exist"
            log.error(display_name(origin.file), f"table '{name}' names {what}: {display_name(table_path)}",
                      line=origin.line, key=f"{TABLES_KEY}.{name}")
            continue
        read = read_table_file(table_path, TABLE_SPECS[name], log)
        if read is not None:
            typed[name], rows[name] = read
    files = (*raw.chain, *raw.table_paths.values())
    return Scenario._checked(settings, typed, rows, names, log, raw.path, files)
