"""How a solve ended."""

from __future__ import annotations

from enum import StrEnum


class SolveStatus(StrEnum):
    """The outcome of a solve, as proven by the solver (not a wrapper's word)."""

    OPTIMAL = "optimal"  #: proven optimal within the profile's relative gap
    FEASIBLE = "feasible"  #: a plan meeting every hard constraint; the gap to the bound is reported
    TIME_LIMIT = "time_limit"  #: stopped by the time limit; the best plan found so far is returned
    INFEASIBLE = "infeasible"  #: proven that no plan meets the hard constraints
    NO_SOLUTION = "no_solution"  #: the search ended without a plan and without proving infeasibility

    @property
    def has_plan(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT)
