"""Plan: the result of assignment. It never changes the scenario or the model that produced it."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tercap.backends import relative_gap
from tercap.scenario import Scenario
from tercap.status import SolveStatus

ASSIGNMENT_COLUMNS = ("account_id", "rep_id", "previous_rep_id", "moved", "workload_hours", "potential",
                      "distance_km")
REP_COLUMNS = ("rep_id", "accounts", "workload_hours", "capacity_hours", "utilisation", "potential",
               "potential_share", "travel_km", "moved_in", "moved_out", "industry_match_share")


@dataclass(frozen=True)
class SolveStats:
    """How the plan was found and what is proven about it."""

    backend: str
    profile: str
    strategy: str
    status: SolveStatus
    solver_status: str  # the solver's own word
    objective: float | None
    terms: dict[str, float]  # each objective term before its weight
    weights: dict[str, float]
    bound: float | None  # best proven bound: the LP's, raised where blocks were solved exactly; no plan does better
    gap: float | None  # (objective − bound) / objective
    seconds: float
    variables: int
    constraints: int
    phases: tuple[tuple[str, float, str], ...] = ()
    widening: int = 0  # times the k-nearest neighbourhoods were doubled to find a plan
    reached_accounts: int = 0  # accounts the plan gives to a rep beyond their nearest, where the bands need it
    incumbents: tuple[tuple[float, float], ...] = ()  # (seconds, objective) each time a better plan was found
    lp_bound: float | None = None  # the LP relaxation's optimum (the bound before any exact block)


@dataclass(frozen=True, eq=False)
class Plan:
    """An assignment of accounts to reps, its per-rep figures, KPIs and solve statistics."""

    scenario: str
    _assignments: pd.DataFrame
    _reps: pd.DataFrame
    stats: SolveStats
    kpis: dict[str, float]
    violations: tuple[str, ...] = ()  # hard constraints the independent checker found broken
    diagnosis: tuple[str, ...] = field(default=())  # why there is no plan, in plain words

    @property
    def status(self) -> SolveStatus:
        return self.stats.status

    @property
    def assignments(self) -> pd.DataFrame:
        """account_id, rep_id, previous_rep_id, moved, workload_hours, potential, distance_km."""
        return self._assignments.copy(deep=False)

    @property
    def reps(self) -> pd.DataFrame:
        """Per rep: accounts, workload, capacity, utilisation, potential, travel, moves, industry fit."""
        return self._reps.copy(deep=False)

    @property
    def unassigned(self) -> pd.DataFrame:
        """Accounts the plan leaves without a rep (capacity short, or no eligible rep)."""
        frame = self._assignments
        return frame[frame["rep_id"].isna()].copy(deep=False)

    def summary(self) -> dict[str, Any]:
        """Everything plan/summary.json holds."""
        s = self.stats
        return {
            "scenario": self.scenario, "backend": s.backend, "profile": s.profile, "strategy": s.strategy,
            "status": s.status.value, "solver_status": s.solver_status, "objective": s.objective,
            "objective_terms": s.terms, "objective_weights": s.weights, "bound": s.bound, "gap": s.gap,
            "lp_bound": s.lp_bound, "lp_gap": relative_gap(s.objective, s.lp_bound),
            "seconds": round(s.seconds, 3), "variables": s.variables, "constraints": s.constraints,
            "neighbourhood_widening": s.widening, "accounts_beyond_nearest": s.reached_accounts,
            "kpis": self.kpis, "violations": list(self.violations), "diagnosis": list(self.diagnosis),
            "phases": [{"phase": name, "seconds": round(sec, 3), "note": note} for name, sec, note in s.phases],
            "incumbents": [{"seconds": round(sec, 3), "objective": value} for sec, value in s.incumbents],
        }

    def __repr__(self) -> str:
        gap = f", gap {self.stats.gap:.2%}" if self.stats.gap is not None else ""
        return (f"<Plan {self.scenario!r}: {self.status.value}{gap}, {len(self._assignments):,} accounts, "
                f"{len(self._reps):,} reps>")

    def _repr_html_(self) -> str:
        s = self.stats
        rows = [("status", s.status.value), ("objective", _number(s.objective)), ("bound", _number(s.bound)),
                ("gap", "—" if s.gap is None else f"{s.gap:.2%}"), ("seconds", f"{s.seconds:.1f}"),
                *((k, _number(v)) for k, v in self.kpis.items())]
        table = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                        for k, v in rows)
        extra = "".join(f"<p>{html.escape(line)}</p>" for line in (*self.diagnosis, *self.violations))
        reps = self._reps.head(20).to_html(index=False, float_format=lambda v: f"{v:,.2f}", escape=True)
        return (f"<div><h4>Plan for {html.escape(self.scenario)}</h4><table>{table}</table>{extra}"
                f"<p><b>Reps</b> (first 20)</p>{reps}</div>")


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.4g}" if abs(value) < 100 else f"{value:,.0f}"


def account_reps(scenario: Scenario, plan: object | None) -> pd.Series:
    """account_id → rep_id under the plan (its `assignments` table), or today's owners."""
    if plan is None:
        accounts = scenario.accounts
        return pd.Series(accounts["current_owner"].to_numpy(dtype=object), index=accounts["account_id"])
    table = plan.assignments  # type: ignore[attr-defined]  # a Plan, or a saved plan's table
    return pd.Series(table["rep_id"].to_numpy(dtype=object), index=table["account_id"])
