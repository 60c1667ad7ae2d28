"""tercap: sales territory and quota design — exact optimisation and Monte Carlo stress tests."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tercap.assign import plan
from tercap.errors import Problem, ScenarioError, Severity, TercapError
from tercap.plan import Plan
from tercap.profiles import SolverProfile
from tercap.run import stress_test
from tercap.scenario import Scenario, Settings, load
from tercap.simulate import SimulationResult, simulate
from tercap.status import SolveStatus


def compare(*args: Any, **kwargs: Any) -> Any:
    """Scenarios side by side: see `tercap.report.compare.compare` (imported on first use: it draws)."""
    from tercap.report.compare import compare as run_comparison

    return run_comparison(*args, **kwargs)


try:
    __version__ = version("tercap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["Plan", "Problem", "Scenario", "ScenarioError", "Settings", "Severity", "SimulationResult", "SolveStatus",
           "SolverProfile", "TercapError", "__version__", "compare", "load", "plan", "simulate", "stress_test"]
