"""tercap: sales territory and quota design — exact optimisation and Monte Carlo stress tests."""

from importlib.metadata import PackageNotFoundError, version

from tercap.errors import Problem, ScenarioError, Severity, TercapError
from tercap.scenario import Scenario, Settings, load

try:
    __version__ = version("tercap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["Problem", "Scenario", "ScenarioError", "Settings", "Severity", "TercapError", "__version__",
           "load"]
