"""Thin solver backends behind one small protocol; each imports its solver lazily.

A backend takes a LinearModel and returns a BackendResult read from the solver's own status, bound
and gap, never from a wrapper's status word.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tercap.model import LinearModel
from tercap.status import SolveStatus


@dataclass(frozen=True)
class SolveLimits:
    """What a backend may spend and how close it must get."""

    time_limit: float = 60.0  # seconds
    mip_gap: float = 1e-4  # relative gap at which the search may stop
    threads: int = 1
    seed: int = 0
    absolute_gap: float = 0.0  # objective − bound at which the search may stop (HiGHS; e.g. 0.99 when
    #                            the objective is a whole number)


@dataclass(frozen=True, eq=False)
class BackendResult:
    """What the solver said: status, best solution, its objective, the proven bound, time."""

    status: SolveStatus
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    seconds: float
    solver_status: str  # the solver's own status word
    backend: str
    improvements: tuple[tuple[float, float], ...] = ()  # (seconds, objective) of each better solution, where known

    @property
    def gap(self) -> float | None:
        """Relative gap between the solution and the bound (0 when proven optimal)."""
        return relative_gap(self.objective, self.bound)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None or not np.isfinite(bound):
        return None
    return max(0.0, objective - bound) / max(abs(objective), 1e-9)


class Backend(Protocol):
    """A solver: says whether it is installed and solves a LinearModel."""

    name: str

    def is_installed(self) -> bool: ...

    def solve(self, model: LinearModel, limits: SolveLimits, warm_start: np.ndarray | None = None
              ) -> BackendResult: ...


_BACKENDS = {"highs": "tercap.backends.highs:HighsBackend", "cpsat": "tercap.backends.cpsat:CpSatBackend",
             "cbc": "tercap.backends.cbc:CbcBackend"}


def get_backend(name: str) -> Backend:
    """The backend called `name` (highs, cpsat, cbc)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend '{name}' (known: {', '.join(_BACKENDS)})")
    module, _, cls = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)
