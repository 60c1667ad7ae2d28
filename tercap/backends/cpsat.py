"""OR-Tools CP-SAT on an integer-scaled copy of the model.

CP-SAT solves integer programmes only, so the model is scaled:
- each row i is multiplied by s_i = 10^k, the smallest power of ten (k ≤ 6) that makes its
  coefficients integral to 1e-6 (hours with one decimal: 10; whole currency units: 1); its bounds are
  then rounded inward (lower up, upper down), so a CP-SAT solution satisfies the original rows;
- a continuous column j (deviations, slacks) becomes an integer counting 1/S_j of its unit, with S_j
  the largest s_i of the rows it appears in, and gets a finite upper bound from those rows;
- the objective is multiplied by F = 10^12 / Σ|c| (less when the objective could then leave int64)
  and rounded.
The reported objective is the original model's at the solution found. The bound is CP-SAT's best
bound divided by F, lowered by the most that rounding can have raised it (one unit of each
continuous column at its cost, and half a unit of F on every column's range), so it stays a bound.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import scipy.sparse as sp

from tercap.backends import BackendResult, SolveLimits
from tercap.model import LinearModel
from tercap.status import SolveStatus

MAX_POWER = 6
OBJECTIVE_RANGE = 1e12  # Σ|c| is scaled to this, unless the objective's reach would leave int64
INT64_ROOM = 4e18


def row_scales(matrix: sp.csr_matrix) -> np.ndarray:
    """Per row, the smallest power of ten that makes its coefficients integral (to 1e-6)."""
    scales = np.full(matrix.shape[0], 10.0**MAX_POWER)
    settled = np.zeros(matrix.shape[0], dtype=bool)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    for power in range(MAX_POWER + 1):
        scaled = matrix.data * 10.0**power
        off = np.abs(scaled - np.round(scaled)) > 1e-6 * np.maximum(1.0, np.abs(scaled))
        bad_rows = np.zeros(matrix.shape[0], dtype=bool)
        bad_rows[rows[off]] = True
        newly = ~bad_rows & ~settled
        scales[newly] = 10.0**power
        settled |= newly
    return scales


def scale_model(model: LinearModel) -> dict[str, np.ndarray | sp.csr_matrix | float]:
    """The integer data CP-SAT receives (see the module docstring)."""
    matrix = model.matrix.tocsr()
    s_row = row_scales(matrix)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    col_scale = np.ones(model.num_cols)
    continuous = ~model.integral
    if continuous.any():
        np.maximum.at(col_scale, matrix.indices, np.where(continuous[matrix.indices], s_row[rows], 1.0))
    data = np.round(matrix.data * s_row[rows] / col_scale[matrix.indices]).astype(np.int64)
    int_matrix = sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)
    lower = np.where(np.isfinite(model.row_lower), np.ceil(model.row_lower * s_row - 1e-6), -np.inf)
    upper = np.where(np.isfinite(model.row_upper), np.floor(model.row_upper * s_row + 1e-6), np.inf)
    col_lower = np.ceil(model.col_lower * col_scale - 1e-9)
    col_upper = np.floor(np.where(np.isfinite(model.col_upper), model.col_upper * col_scale + 1e-9, np.inf))
    if np.isinf(col_upper).any():  # bound free continuous columns by the largest activity of their rows
        finite_cols = np.isfinite(col_upper)
        abs_matrix = abs(int_matrix)
        reach = abs_matrix @ np.where(finite_cols, np.maximum(np.abs(col_upper), np.abs(col_lower)), 0)
        reach = reach + np.nan_to_num(np.maximum(np.abs(lower), np.abs(upper)), posinf=0, neginf=0)
        needed = abs_matrix.T @ reach
        col_upper = np.where(finite_cols, col_upper, np.ceil(needed) + 1)
    cost = model.cost / col_scale
    reach = float((np.abs(cost) * np.maximum(np.abs(col_upper), np.abs(col_lower))).sum())
    factor = min(OBJECTIVE_RANGE / max(float(np.abs(cost).sum()), 1e-12), INT64_ROOM / max(reach, 1e-12))
    rounding = float(np.abs(cost[continuous]).sum() + 0.5 * np.abs(col_upper - col_lower).sum() / factor)
    return {"matrix": int_matrix, "lower": lower, "upper": upper, "col_lower": col_lower, "col_upper": col_upper,
            "cost": np.round(cost * factor).astype(np.int64), "factor": factor, "col_scale": col_scale,
            "rounding": rounding}


class CpSatBackend:
    name = "cpsat"

    def is_installed(self) -> bool:
        return importlib.util.find_spec("ortools") is not None

    def solve(self, model: LinearModel, limits: SolveLimits, warm_start: np.ndarray | None = None
              ) -> BackendResult:
        from ortools.sat.python import cp_model

        scaled = scale_model(model)
        cp = cp_model.CpModel()
        col_lower, col_upper = scaled["col_lower"], scaled["col_upper"]
        variables = [cp.NewIntVar(int(lo), int(hi), "") for lo, hi in zip(col_lower, col_upper, strict=True)]
        matrix = scaled["matrix"]
        for i in range(matrix.shape[0]):
            start, end = matrix.indptr[i], matrix.indptr[i + 1]
            expression = cp_model.LinearExpr.WeightedSum([variables[j] for j in matrix.indices[start:end]],
                                                         matrix.data[start:end].tolist())
            lo, hi = scaled["lower"][i], scaled["upper"][i]
            if np.isfinite(lo):
                cp.Add(expression >= int(lo))
            if np.isfinite(hi):
                cp.Add(expression <= int(hi))
        nonzero = np.flatnonzero(scaled["cost"])
        cp.Minimize(cp_model.LinearExpr.WeightedSum([variables[j] for j in nonzero],
                                                    scaled["cost"][nonzero].tolist()))
        if warm_start is not None:
            hint = np.round(np.asarray(warm_start) * scaled["col_scale"]).astype(np.int64)
            for j in np.flatnonzero(model.integral):
                cp.AddHint(variables[j], int(hint[j]))
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = float(limits.time_limit)
        solver.parameters.num_workers = int(limits.threads)
        solver.parameters.random_seed = int(limits.seed)
        solver.parameters.relative_gap_limit = float(limits.mip_gap)
        began = time.perf_counter()
        code = solver.Solve(cp)
        seconds = time.perf_counter() - began
        word = solver.StatusName(code)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            values = np.array([solver.Value(v) for v in variables], dtype=float) / scaled["col_scale"]
            objective = model.objective(values)
            bound = solver.BestObjectiveBound() / scaled["factor"] + model.offset - scaled["rounding"]
            if code == cp_model.OPTIMAL:
                status = SolveStatus.OPTIMAL
            else:
                status = SolveStatus.TIME_LIMIT if seconds >= 0.98 * limits.time_limit else SolveStatus.FEASIBLE
            return BackendResult(status, values, objective, min(bound, objective), seconds, word, self.name)
        status = SolveStatus.INFEASIBLE if code == cp_model.INFEASIBLE else SolveStatus.NO_SOLUTION
        return BackendResult(status, None, None, None, seconds, word, self.name)
