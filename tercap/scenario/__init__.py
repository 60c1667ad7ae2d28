"""Scenario files: schema, reading, validation, capacity and the synthetic generator."""

from tercap.scenario.scenario import Scenario, load
from tercap.scenario.schema import Settings

__all__ = ["Scenario", "Settings", "load"]
