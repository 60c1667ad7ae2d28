"""The annual planning run: (territories →) assignment → simulation → quotas, in one call, with the
headline figures.

With a `territory:` section the run first designs territories (or rebalances today's) and accounts
follow their unit's territory; the assignment engine then only evaluates that plan (its figures, its
objective terms, and the assignment rules it breaks, as notes). With `territory.account_level` the
engine assigns each account among its territory's reps instead, balanced within the territory.
Without one, `run_plan(scenario)` assigns the accounts by the engine. Then it simulates the pipeline
under the plan, and keeps the quotas the simulation allocated by the scenario's method
(equal_probability reads the simulation; every method's P(attain) comes from it), so the run's
quotas are the ones attainment was judged against.
`tercap plan` writes the result as a run folder with its report (`tercap.report.write_run`).
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from tercap.assign import plan as make_plan
from tercap.errors import TercapError
from tercap.plan import Plan
from tercap.profiles import SolverProfile
from tercap.quota import Quotas, allocate_quotas
from tercap.scenario import Scenario
from tercap.scenario.capacity import headcount_cost, monthly_capacity
from tercap.simulate import SimulationResult, simulate

if TYPE_CHECKING:
    from tercap.territory import TerritoryPlan

AT_RISK = 0.3  # a rep whose P(attain) is below this is "at risk" in the headline
NOTES_PER_FINDING = 5  # lines of one kind of finding shown in the notes, then a count


@dataclass(frozen=True, eq=False)
class PlanningRun:
    """A scenario's plan, quotas and simulation, with the seconds each step took."""

    scenario: Scenario
    plan: Plan
    quotas: Quotas | None  # None when there is no plan
    simulation: SimulationResult | None
    steps: tuple[tuple[str, float], ...]  # (step, seconds)
    notes: tuple[str, ...] = ()
    territories: TerritoryPlan | None = None  # when the scenario has a territory: section
    inputs: dict[str, Any] = field(default_factory=dict)  # what made the run (`run_inputs`)

    @property
    def complete(self) -> bool:
        return self.quotas is not None and self.simulation is not None

    def headline(self) -> dict[str, Any]:
        """The figures a director reads first."""
        kpis = self.plan.kpis
        figures: dict[str, Any] = {
            "scenario": self.scenario.name, "plan_status": self.plan.status.value, "gap": self.plan.stats.gap,
            "utilisation_min": kpis.get("utilisation_min"), "utilisation_max": kpis.get("utilisation_max"),
            "utilisation_cv": kpis.get("utilisation_cv"), "potential_share_cv": kpis.get("potential_share_cv"),
            "accounts_moved": kpis.get("accounts_moved"), "accounts_moved_share": kpis.get("accounts_moved_share"),
            "potential_moved_share": kpis.get("potential_moved_share"),
            "unassigned_accounts": kpis.get("unassigned_accounts"), "mean_travel_km": kpis.get("mean_travel_km"),
            "plan_objective": self.plan.stats.objective}
        team = pd.concat([self.scenario.reps, self.scenario.planned_hires], ignore_index=True)
        rep_months, cost = headcount_cost(self.scenario.settings, team)
        figures.update({"reps": len(self.scenario.reps), "hires": len(self.scenario.planned_hires),
                        "capacity_hours": float(monthly_capacity(self.scenario.settings, team).sum()),
                        "workload_hours": float(self.scenario.accounts["workload_hours"].sum()),
                        "rep_months": rep_months, "headcount_cost": cost})
        if self.territories is not None:
            figures.update({"territories": len(self.territories.territories),
                            "territory_worst_deviation": self.territories.worst_deviation(),
                            "territories_contiguous": bool(self.territories.territories["contiguous"].all()),
                            "territory_units_moved": int(self.territories.units["moved"].sum())})
        if self.quotas is not None and self.simulation is not None:
            company = self.simulation.company()
            reps = self.simulation.reps()
            figures.update({
                "target": self.quotas.target, "quota_total": float(self.quotas.table["quota"].sum()),
                "quota_method": self.quotas.method, "p_hit_target": company["p_hit_target"],
                "attainment_rate_mean": company["attainment_rate_mean"],
                "expected_reps_at_quota": company["expected_reps_at_quota"],
                "reps_with_quota": company["reps_with_quota"],
                "reps_at_risk": int((reps["p_attain"] < AT_RISK).sum()),
                "revenue_p10": company["revenue_p10"], "revenue_p50": company["revenue_p50"],
                "revenue_p90": company["revenue_p90"], "trials": company["trials"],
                "flagged_quotas": int((self.quotas.table["flag"] != "").sum())})
        return figures

    def summary(self) -> dict[str, Any]:
        """What the run folder's summary.json holds."""
        return {"headline": self.headline(), "steps": [{"step": s, "seconds": round(t, 3)} for s, t in self.steps],
                "notes": list(self.notes),
                "territories": self.territories.summary() if self.territories is not None else None,
                "quotas": self.quotas.summary() if self.quotas is not None else None}

    def __repr__(self) -> str:
        figures = self.headline()
        hit = figures.get("p_hit_target")
        return (f"<PlanningRun {self.scenario.name!r}: plan {figures['plan_status']}"
                + (f", P(hit target) {hit:.0%}" if hit is not None else "") + ">")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(_shown(v))}</td></tr>"
                       for k, v in self.headline().items())
        return f"<div><h4>Planning run: {html.escape(self.scenario.name)}</h4><table>{rows}</table></div>"


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1%}" if abs(value) <= 1 else f"{value:,.0f}"
    return str(value)


def run_inputs(scenario: Scenario, solver: str | SolverProfile | None = None, *, trials: int | None = None,
               seed: int | None = None) -> dict[str, Any]:
    """What a planning run's result depends on, with its fingerprint: the scenario's content, the solver
    profile, the trials, the seed and tercap's version (not the worker count: it changes nothing)."""
    from dataclasses import asdict

    from tercap import __version__
    from tercap.assign import solver_profile

    sim = scenario.settings.simulation
    inputs: dict[str, Any] = {"scenario": scenario.name, "scenario_fingerprint": scenario.fingerprint(),
                              "solver": asdict(solver_profile(scenario, solver)),
                              "trials": int(trials or sim.trials), "seed": int(sim.seed if seed is None else seed),
                              "tercap": __version__}
    inputs["fingerprint"] = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return inputs


def run_plan(scenario: Scenario, solver: str | SolverProfile | None = None, *, trials: int | None = None,
             seed: int | None = None, workers: int = 1,
             progress: Callable[[str], None] | None = None) -> PlanningRun:
    """Assign, simulate and allocate quotas for `scenario`; `progress(message)` hears each step.

    Without a plan (an infeasible scenario) the run stops after the assignment: `complete` is False and
    `plan.diagnosis` says why."""
    say = progress or (lambda _message: None)
    inputs = run_inputs(scenario, solver, trials=trials, seed=seed)
    steps: list[tuple[str, float]] = []
    notes: list[str] = []
    territories = None
    if scenario.settings.territory is not None:
        territories, plan = _territory_plan(scenario, solver, say, steps, notes)
    else:
        began = time.perf_counter()
        plan = make_plan(scenario, solver, progress=lambda message: say(f"assignment: {message}"))
        steps.append(("assignment", time.perf_counter() - began))
    if not plan.status.has_plan or plan.violations:
        return PlanningRun(scenario, plan, None, None, tuple(steps), tuple(notes), territories, inputs)

    began = time.perf_counter()
    say("simulation: drawing the pipeline's trials")
    simulation = simulate(scenario, plan, trials=trials, seed=seed, workers=workers)
    steps.append(("simulation", time.perf_counter() - began))

    began = time.perf_counter()
    say(f"quotas: {scenario.settings.quota.method}")
    quotas = allocate_quotas(scenario, plan, simulation)
    simulation = judged(simulation, quotas)
    steps.append(("quotas", time.perf_counter() - began))
    return PlanningRun(scenario, plan, quotas, simulation, tuple(steps), tuple(notes), territories, inputs)


def judged(simulation: SimulationResult, quotas: Quotas) -> SimulationResult:
    """The simulation's trials judged against the quotas allocated from it (and their target)."""
    return simulation.with_quotas(quotas.as_series(), f"quota allocation: {quotas.method} (quota.method)",
                                  target=quotas.target, allocation=quotas)


def stress_test(scenario: Scenario, plan: Plan | None = None, *, trials: int | None = None, seed: int | None = None,
                workers: int = 1, dask: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Simulate the period under `plan` (None: today's owners), allocate the scenario's quotas from that
    simulation (`quota.method`), and judge the trials against them: P(attain), attainment rate, P(hit
    target). The quotas are the result's `allocation`."""
    simulation = simulate(scenario, plan, trials=trials, seed=seed, workers=workers, dask=dask, progress=progress)
    return judged(simulation, allocate_quotas(scenario, plan, simulation))


def _territory_plan(scenario: Scenario, solver: str | SolverProfile | None, say: Callable[[str], None],
                    steps: list[tuple[str, float]], notes: list[str]) -> tuple[TerritoryPlan, Plan]:
    """Territories, and the plan of accounts following them; what either breaks goes to `notes`."""
    from tercap.assign import TerritoryGroups, plan_of_owners
    from tercap.territory import (
        REP_SEPARATOR,
        account_owners,
        design_territories,
        rebalance_territories,
        territory_members,
    )

    settings = scenario.settings.territory
    assert settings is not None
    began = time.perf_counter()
    say("territories: " + ("rebalancing today's territories" if settings.rebalance else "carving the geo units"))
    territories = (rebalance_territories(scenario, time_limit=settings.time_limit) if settings.rebalance else
                   design_territories(scenario, time_limit=settings.time_limit))
    steps.append(("territories", time.perf_counter() - began))
    notes += [f"territories: {note}" for note in territories.notes]
    notes += _findings("territories", territories.violations)
    began = time.perf_counter()
    if settings.account_level:
        by_account, by_rep = territory_members(territories, scenario)
        plan = make_plan(scenario, solver, progress=lambda message: say(f"assignment inside territories: {message}"),
                         territories=TerritoryGroups(by_account, by_rep))
    else:
        crowded = territories.territories["rep_id"].fillna("")
        crowded = crowded[(crowded == "") | crowded.str.contains(REP_SEPARATOR, regex=False)]
        if len(crowded):
            raise TercapError(f"{len(crowded)} territor{'y has' if len(crowded) == 1 else 'ies have'} no rep or "
                              "several (territory.count differs from the number of reps): accounts cannot simply "
                              "follow their unit; set territory.account_level: true to assign them among each "
                              "territory's reps")
        say("assignment: accounts follow their territory")
        plan, broken = plan_of_owners(scenario, account_owners(territories, scenario), "territories", solver)
        notes += _findings("territory plan breaks the assignment rule", broken)
    steps.append(("assignment", time.perf_counter() - began))
    return territories, plan


def _findings(what: str, lines: tuple[str, ...] | list[str]) -> list[str]:
    """The first few findings as notes, then how many more there are."""
    shown = [f"{what}: {line}" for line in lines[:NOTES_PER_FINDING]]
    if len(lines) > NOTES_PER_FINDING:
        shown.append(f"{what}: … and {len(lines) - NOTES_PER_FINDING} more")
    return shown
