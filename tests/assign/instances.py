"""Small random assignment scenarios, built in memory, for exact and cross-backend tests."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

import tercap
from tercap.assign.compile import CompiledAssignment
from tercap.scenario.schema import deep_merge

INDUSTRIES = ("retail", "health", "tech")


def tiny_scenario(seed: int, accounts: int = 6, reps: int = 3, **sections: Any) -> tercap.Scenario:
    """A random one-segment scenario; `sections` override settings (merged into the defaults)."""
    rng = np.random.default_rng(seed)
    rep_table = pd.DataFrame({
        "rep_id": [f"R{i}" for i in range(reps)],
        "lat": rng.uniform(30, 45, reps), "lon": rng.uniform(-110, -75, reps),
        "segment": "smb", "experience_years": rng.integers(0, 10, reps).astype(float),
        "capacity_hours": rng.integers(3, 6, reps) * 1.0,
        "industries": [";".join(rng.choice(INDUSTRIES, size=rng.integers(1, 3), replace=False)) for _ in range(reps)],
    })
    account_table = pd.DataFrame({
        "account_id": [f"A{i}" for i in range(accounts)],
        "lat": rng.uniform(30, 45, accounts), "lon": rng.uniform(-110, -75, accounts),
        "segment": "smb", "potential": rng.integers(1, 100, accounts) * 1000.0,
        "workload_hours": rng.integers(4, 20, accounts).astype(float),
        "buying_process": rng.choice(["transactional", "consultative", "complex"], accounts),
        "industry": rng.choice(INDUSTRIES, accounts),
        "current_owner": rng.choice([f"R{i}" for i in range(reps)] + [""], accounts),
    })
    settings = {"period": {"start": "2027-01-01"},
                "assignment": {"balance": {"workload_tolerance": 0.6, "potential_tolerance": 0.9},
                               "eligibility": {"nearest_reps": 0}}}  # 0: every eligible rep
    return tercap.Scenario.from_tables(deep_merge(settings, sections), {"reps": rep_table, "accounts": account_table})


def brute_force(compiled: CompiledAssignment, allow_unassigned: bool = True) -> tuple[float | None, np.ndarray | None]:
    """The best objective over every assignment that meets all rows of the model (None: infeasible)."""
    start = compiled.pair_start
    options = [list(range(start[a], start[a + 1])) + ([-1] if allow_unassigned else [])
               for a in range(compiled.inputs.num_accounts)]
    best, best_choice = None, None
    model = compiled.model
    for combo in itertools.product(*options):
        chosen = np.array(combo, dtype=np.int64)
        x = compiled.solution_from(chosen)
        if model.violations(x):
            continue
        value = model.objective(x)
        if best is None or value < best - 1e-12:
            best, best_choice = value, chosen
    return best, best_choice
