"""CBC through PuLP: the always-available fallback.

PuLP reports a time-limited CBC run as "Optimal", so the status, objective and bound are read from
CBC's own log ("Result - Stopped on time limit", "Objective value:", "Lower bound:").
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tercap.backends import BackendResult, SolveLimits
from tercap.model import LinearModel
from tercap.status import SolveStatus

RESULT = re.compile(r"^Result - (.+)$", re.MULTILINE)
NUMBER = r"(-?[0-9.eE+-]+)"


def read_cbc_log(text: str) -> tuple[str, float | None, float | None]:
    """CBC's own result line, objective and lower bound from its log."""
    result = RESULT.search(text)
    objective = re.search(rf"^Objective value:\s+{NUMBER}", text, re.MULTILINE)
    bound = re.search(rf"^Lower bound:\s+{NUMBER}", text, re.MULTILINE)
    return (result.group(1).strip() if result else "no result line",
            float(objective.group(1)) if objective else None, float(bound.group(1)) if bound else None)


class CbcBackend:
    name = "cbc"

    def is_installed(self) -> bool:
        return importlib.util.find_spec("pulp") is not None

    def solve(self, model: LinearModel, limits: SolveLimits, warm_start: np.ndarray | None = None
              ) -> BackendResult:
        import pulp

        problem = pulp.LpProblem("tercap", pulp.LpMinimize)
        columns = [problem.add_variable(f"x{j}", lowBound=float(lo) if np.isfinite(lo) else None,
                                        upBound=float(hi) if np.isfinite(hi) else None,
                                        cat=pulp.LpInteger if integral else pulp.LpContinuous)
                   for j, (lo, hi, integral) in enumerate(zip(model.col_lower, model.col_upper, model.integral,
                                                              strict=True))]
        nonzero = np.flatnonzero(model.cost)
        problem += pulp.LpAffineExpression([(columns[j], float(model.cost[j])) for j in nonzero]) + model.offset
        matrix = model.matrix.tocsr()
        for i in range(model.num_rows):
            start, end = matrix.indptr[i], matrix.indptr[i + 1]
            expression = pulp.LpAffineExpression([(columns[j], float(v)) for j, v in
                                                  zip(matrix.indices[start:end], matrix.data[start:end],
                                                      strict=True)])
            lo, hi = model.row_lower[i], model.row_upper[i]
            if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
                problem += expression == float(lo)
                continue
            if np.isfinite(lo):
                problem += expression >= float(lo)
            if np.isfinite(hi):
                problem += expression <= float(hi)
        if warm_start is not None:
            for column, value in zip(columns, warm_start, strict=True):
                column.setInitialValue(float(value))
        with tempfile.TemporaryDirectory() as folder:
            log_path = Path(folder) / "cbc.log"
            with warnings.catch_warnings():  # PuLP 3 deprecates the CBC binary it bundles; PuLP 4 drops it
                warnings.simplefilter("ignore", DeprecationWarning)
                command = pulp.PULP_CBC_CMD(msg=False, timeLimit=float(limits.time_limit), gapRel=float(limits.mip_gap),
                                            threads=int(limits.threads), warmStart=warm_start is not None,
                                            logPath=str(log_path),
                                            options=[f"randomCbcSeed {int(limits.seed) + 1}"])
            began = time.perf_counter()
            problem.solve(command)
            seconds = time.perf_counter() - began
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
        word, _, bound = read_cbc_log(log)
        found = problem.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        values = np.array([c.varValue if c.varValue is not None else 0.0 for c in columns]) if found else None
        objective = model.objective(values) if values is not None else None
        if word.startswith("Optimal"):
            status = SolveStatus.OPTIMAL
            bound = objective if bound is None else bound
        elif "infeasible" in word.lower():
            status = SolveStatus.INFEASIBLE
        elif "time" in word.lower():
            status = SolveStatus.TIME_LIMIT if found else SolveStatus.NO_SOLUTION
        else:
            status = SolveStatus.FEASIBLE if found else SolveStatus.NO_SOLUTION
        if bound is not None and objective is not None:
            bound = min(bound, objective)
        return BackendResult(status, values, objective, bound, seconds, f"CBC: {word}", self.name)
