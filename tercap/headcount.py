"""Capacity planning: how many reps to hire, in which segments and when, so that the workload fits the
team's capacity and P(hit target) reaches a given probability.

Every candidate is judged by the engine, not by a formula: the hires join the scenario
(`capacity.hires`), the accounts are assigned again (the hires take books sized to their ramping
capacity) and the pipeline is simulated with ramp and attrition, where spare hours in a segment cover
vacant books (`simulation.workload_coverage`). All candidates are simulated with one seed, so they
meet the same simulated market and their differences are the headcount's.

The search: hire n goes to the segment whose workload is largest against its capacity (hires
counted, ramp included), so the first hires relieve the tightest segment; P(hit target) is found at
n = 0, 1, 2, 4, 8, … until it reaches the probability, then the smallest such n by bisection. The
answer is checked: with n hires the probability is reached and with n − 1 it is not (both runs are in
the table). Then "when": the same hires starting later (each quarter's first month) are tried, and the
latest start that still reaches the probability is the answer, since a later start costs less.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tercap.errors import TercapError
from tercap.profiles import SolverProfile
from tercap.run import PlanningRun, run_plan
from tercap.scenario import Scenario
from tercap.scenario.capacity import month_start, monthly_capacity

ADDED_HIRE_NAME = "added hire"
DEFAULT_MAX_HIRES = 30


@dataclass(frozen=True)
class Candidate:
    """A headcount to judge: hires per segment, all starting in one month of the period."""

    by_segment: tuple[tuple[str, int], ...]
    start_month: int

    @property
    def hires(self) -> int:
        return sum(count for _, count in self.by_segment)

    def label(self) -> str:
        return ", ".join(f"{segment} {count}" for segment, count in self.by_segment if count) or "none"

    def scenario(self, base: Scenario) -> Scenario:
        """`base` with these hires added to its planned hires."""
        added = [{"count": count, "segment": segment, "start_month": self.start_month, "name": ADDED_HIRE_NAME}
                 for segment, count in self.by_segment if count]
        if not added:
            return base
        existing = [hire.model_dump() for hire in base.settings.capacity.hires]
        return base.replace(capacity={"hires": existing + added},
                            name=f"{base.name}+{self.hires}hires@m{self.start_month}")


@dataclass(frozen=True, eq=False)
class HeadcountPlan:
    """The answer and every candidate the engine judged."""

    scenario: str
    target_probability: float
    answer: Candidate | None  # None: not reached within max_hires
    table: pd.DataFrame  # one row per candidate judged
    seed: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        answer = None
        if self.answer is not None:
            answer = {"hires": self.answer.hires, "by_segment": dict(self.answer.by_segment),
                      "start_month": self.answer.start_month}
        return {"scenario": self.scenario, "target_probability": self.target_probability, "seed": self.seed,
                "answer": answer, "notes": list(self.notes),
                "candidates": self.table.to_dict(orient="records")}

    def sentence(self) -> str:
        """The answer in one sentence."""
        if self.answer is None:
            planned = self.table[self.table["why_not"] == ""]
            tried = int(self.table["hires"].max())
            if planned.empty:
                return f"No headcount up to {tried} hires has a plan: {self.table['why_not'].iloc[0]}"
            best = planned.loc[planned["p_hit_target"].idxmax()]
            text = (f"No headcount up to {tried} hires reaches P(hit target) {self.target_probability:.0%}: the "
                    f"best is {best['p_hit_target']:.1%} with {int(best['hires'])} hires")
            failed = self.table[self.table["why_not"] != ""]
            if len(failed):
                first = failed.iloc[0]
                text += (f"; from {int(first['hires'])} hires the scenario's rules allow no plan "
                         f"({first['why_not'].removeprefix('no plan: ')})")
            return text + ". More reps do not add revenue the pipeline and the accounts' potential do not hold."
        if self.answer.hires == 0:
            return (f"No hires needed: the team as planned reaches P(hit target) {self._p(self.answer):.1%} "
                    f"≥ {self.target_probability:.0%} with the workload within capacity.")
        return (f"Hire {self.answer.hires} rep{'s' if self.answer.hires > 1 else ''} ({self.answer.label()}) starting "
                f"in month {self.answer.start_month} of the period: P(hit target) {self._p(self.answer):.1%} ≥ "
                f"{self.target_probability:.0%}; one fewer gives {self._fewer():.1%}.")

    def _p(self, candidate: Candidate) -> float:
        rows = self.table[(self.table["hires"] == candidate.hires) &
                          (self.table["start_month"] == candidate.start_month)]
        return float(rows["p_hit_target"].iloc[0])

    def _fewer(self) -> float:
        assert self.answer is not None
        first = self.table["start_month"].min()  # the earliest start: where the search ran
        rows = self.table[(self.table["hires"] == self.answer.hires - 1) & (self.table["start_month"] == first)]
        return float(rows["p_hit_target"].iloc[0]) if len(rows) else float("nan")

    def _repr_html_(self) -> str:
        shown = self.table[["hires", "by_segment", "start_month", "p_hit_target", "utilisation_max",
                            "revenue_p50", "headcount_cost"]]
        return f"<p>{html.escape(self.sentence())}</p>" + shown.to_html(index=False, escape=True)


def plan_headcount(scenario: Scenario, target_probability: float, *, segments: tuple[str, ...] | None = None,
                   max_hires: int = DEFAULT_MAX_HIRES, start_month: int = 1, solver: str | SolverProfile | None = None,
                   trials: int | None = None, seed: int | None = None, workers: int = 1,
                   progress: Callable[[str], None] | None = None) -> HeadcountPlan:
    """The smallest number of added reps (in `segments`, default: every segment with accounts) starting in
    `start_month` (or later, where a later start still reaches it) such that every account is assigned
    within capacity and P(hit target) ≥ `target_probability`."""
    if not 0 < target_probability < 1:
        raise TercapError(f"the target probability must be between 0 and 1, got {target_probability}")
    if not scenario.settings.quota.company_target:
        raise TercapError(f"{scenario.name}: capacity planning needs quota.company_target (P(hit target) is "
                          "judged against it)")
    months = scenario.period.months
    if not 1 <= start_month <= months:
        raise TercapError(f"--start-month must be a month of the period (1 to {months}), got {start_month}")
    known = sorted(set(scenario.accounts["segment"]))
    chosen = tuple(segments) if segments else tuple(known)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise TercapError(f"segment(s) {', '.join(unknown)} have no accounts (segments: {', '.join(known)})")
    say = progress or (lambda _message: None)
    common_seed = int(scenario.settings.simulation.seed if seed is None else seed)
    judged: dict[Candidate, dict[str, Any]] = {}

    def judge(candidate: Candidate) -> dict[str, Any]:
        if candidate not in judged:
            say(f"{candidate.hires} hire(s) ({candidate.label()}) from month {candidate.start_month}: planning "
                f"and simulating")
            run = run_plan(candidate.scenario(scenario), solver, trials=trials, seed=common_seed, workers=workers)
            judged[candidate] = _figures(candidate, run)
        return judged[candidate]

    def with_hires(n: int, month: int = start_month) -> Candidate:
        return _allocate(scenario, chosen, n, month)

    def reaches(n: int) -> bool:
        row = judge(with_hires(n))
        return bool(row["fits"] and row["p_hit_target"] >= target_probability)

    answer: Candidate | None = None
    low, high = -1, None  # reaches(low) is False (or low = -1), reaches(high) is True
    n = 0
    while n <= max_hires:
        if reaches(n):
            high = n
            break
        low = n
        n = 1 if n == 0 else min(2 * n, max_hires) if n < max_hires else max_hires + 1
    notes: list[str] = []
    if high is not None:
        while high - low > 1:
            middle = (low + high) // 2
            if reaches(middle):
                high = middle
            else:
                low = middle
        answer = with_hires(high)
        if high > 0:
            judge(with_hires(high - 1))  # the check: one fewer does not reach it
            later = [m for m in range(start_month + 1, months + 1) if (m - 1) % 3 == 0]
            for month in later:  # "when": the latest quarter start that still reaches it
                row = judge(with_hires(high, month))
                if not (row["fits"] and row["p_hit_target"] >= target_probability):
                    break
                answer = with_hires(high, month)
    else:
        notes.append(f"not reached with up to {max_hires} hires")
    table = pd.DataFrame(list(judged.values())).sort_values(["hires", "start_month"], kind="stable")
    return HeadcountPlan(scenario.name, target_probability, answer, table.reset_index(drop=True), common_seed,
                         tuple(notes))


def _allocate(scenario: Scenario, segments: tuple[str, ...], hires: int, start_month: int) -> Candidate:
    """`hires` spread over `segments` one at a time, each to the segment whose workload is largest against
    its capacity with the hires so far (a hire's capacity ramps from `start_month`)."""
    settings = scenario.settings
    accounts = scenario.accounts
    team = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    capacity = pd.Series(monthly_capacity(settings, team).sum(axis=1), index=team.index).groupby(
        team["segment"].to_numpy()).sum()
    workload = accounts.groupby("segment")["workload_hours"].sum()
    one_hire = {segment: _hire_hours(scenario, segment, start_month) for segment in segments}
    counts = dict.fromkeys(segments, 0)
    for _ in range(hires):
        load = {s: workload.get(s, 0.0) / max(capacity.get(s, 0.0) + counts[s] * one_hire[s], 1e-9) for s in segments}
        tightest = max(segments, key=lambda s: (load[s], -segments.index(s)))
        counts[tightest] += 1
    return Candidate(tuple((s, counts[s]) for s in segments), start_month)


def _hire_hours(scenario: Scenario, segment: str, start_month: int) -> float:
    """Hours a hire of `segment` starting in `start_month` gives over the period (ramp included)."""
    row = pd.DataFrame([{"segment": segment, "capacity_hours": scenario.settings.capacity.hours_per_month,
                         "start_date": pd.Timestamp(month_start(scenario.period.start, start_month - 1)),
                         "end_date": pd.NaT,
                         "ramp_profile": scenario.settings.capacity.ramp_name_for(segment, "")}])
    row["start_date"] = row["start_date"].astype("datetime64[ns]")
    row["end_date"] = row["end_date"].astype("datetime64[ns]")
    return float(monthly_capacity(scenario.settings, row).sum())


def _figures(candidate: Candidate, run: PlanningRun) -> dict[str, Any]:
    """A candidate's row: the engine's answer for it."""
    head = run.headline()
    unassigned = head.get("unassigned_accounts") or 0
    fits = bool(run.complete and unassigned == 0 and (head.get("utilisation_max") or np.inf) <= 1.0 + 1e-9)
    return {"hires": candidate.hires, "by_segment": candidate.label(), "start_month": candidate.start_month,
            "p_hit_target": head.get("p_hit_target", float("nan")) if run.complete else float("nan"),
            "fits": fits, "utilisation_max": head.get("utilisation_max"), "unassigned_accounts": unassigned,
            "revenue_p10": head.get("revenue_p10"), "revenue_p50": head.get("revenue_p50"),
            "revenue_p90": head.get("revenue_p90"), "attainment_rate_mean": head.get("attainment_rate_mean"),
            "rep_months": head.get("rep_months"), "headcount_cost": head.get("headcount_cost"),
            "why_not": _why_not(run)}


def _why_not(run: PlanningRun) -> str:
    """Why a candidate has no complete run (empty when it has one)."""
    if run.complete:
        return ""
    reasons = run.plan.diagnosis or run.plan.violations
    return f"no plan: {reasons[0]}" if reasons else f"no plan ({run.plan.status.value})"
