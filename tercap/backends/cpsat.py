"""OR-Tools CP-SAT on an integer-scaled copy of the model.

CP-SAT solves integer programmes only, so the model is scaled:
- each row i is multiplied by s_i = 10^k, the smallest power of ten (k ≤ 6) that makes its
  coefficients integral to 1e-6 (hours with one decimal: 10; whole currency units: 1); its bounds are
  then rounded inward (lower up, upper down), so a CP-SAT solution satisfies the original rows;
- a continuous column j (deviations, slacks) becomes an integer counting 1/S_j of its unit, with S_j
  the finest power of ten that keeps its scaled coefficients integral, no finer than its rows' scales
  nor than its cost can see (see column_scales), and gets a finite upper bound from those rows;
- the objective is multiplied by F = 10^15 / Σ|c| (less when the objective could then leave int64)
  and rounded.
The reported objective is the original model's at the solution found. The bound is CP-SAT's best
bound divided by F, lowered by the most that rounding can have raised it (one unit of each
continuous column at its cost, and each column's cost rounding error over its range), so it stays a
bound.
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
OBJECTIVE_RANGE = 1e15  # Σ|c| is scaled to this, unless the objective's reach would leave int64: a penalty
#                         column (unassigned, 10^4 per account) must not round a balance term to nothing
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


def column_scales(model: LinearModel, matrix: sp.csr_matrix, s_row: np.ndarray) -> np.ndarray:
    """Per column, S_j: an integer column is 1; a continuous one counts 1/S_j of its unit, S_j the
    finest power of ten that its rows' scales allow (every a_ij · s_i / S_j stays integral) and that
    its cost can still see (one unit of it worth at least one unit of the scaled objective, or the
    solver is blind to it: a potential deviation in micro-currency beside a penalty of 10^4)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    continuous = ~model.integral
    finest = np.ones(model.num_cols)
    np.maximum.at(finest, matrix.indices, np.where(continuous[matrix.indices], s_row[rows], 1.0))
    seen = OBJECTIVE_RANGE / max(float(np.abs(model.cost).sum()), 1e-12) * np.abs(model.cost)
    finest = np.where(model.cost != 0, np.minimum(finest, 10.0 ** np.floor(np.log10(np.maximum(seen, 1.0)))),
                      finest)
    scale = np.ones(model.num_cols)
    settled = ~continuous
    scaled_data = matrix.data * s_row[rows]
    for power in range(MAX_POWER, -1, -1):
        ratio = scaled_data / 10.0**power
        off = np.abs(ratio - np.round(ratio)) > 1e-6 * np.maximum(1.0, np.abs(ratio))
        bad = np.zeros(model.num_cols, dtype=bool)
        bad[matrix.indices[off]] = True
        fits = ~settled & ~bad & (finest >= 10.0**power)
        scale[fits] = 10.0**power
        settled |= fits
    return scale


def scale_model(model: LinearModel) -> dict[str, np.ndarray | sp.csr_matrix | float]:
    """The integer data CP-SAT receives (see the module docstring)."""
    matrix = model.matrix.tocsr()
    s_row = row_scales(matrix)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    continuous = ~model.integral
    col_scale = column_scales(model, matrix, s_row) if continuous.any() else np.ones(model.num_cols)
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
        # a one-sided row counts its finite side (a row left with one column, e.g. a deviation whose
        # pairs are all held in a neighbourhood, bounds that column by its finite side alone)
        reach = reach + np.maximum(np.where(np.isfinite(lower), np.abs(lower), 0.0),
                                   np.where(np.isfinite(upper), np.abs(upper), 0.0))
        needed = abs_matrix.T @ reach
        col_upper = np.where(finite_cols, col_upper, np.ceil(needed) + 1)
    cost = model.cost / col_scale
    reach = float((np.abs(cost) * np.maximum(np.abs(col_upper), np.abs(col_lower))).sum())
    factor = min(OBJECTIVE_RANGE / max(float(np.abs(cost).sum()), 1e-12), INT64_ROOM / max(reach, 1e-12))
    int_cost = np.round(cost * factor)
    rounding = float(np.abs(cost[continuous]).sum()
                     + (np.abs(int_cost - cost * factor) * np.abs(col_upper - col_lower)).sum() / factor)
    return {"matrix": int_matrix, "lower": lower, "upper": upper, "col_lower": col_lower, "col_upper": col_upper,
            "cost": int_cost.astype(np.int64), "factor": factor, "col_scale": col_scale,
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
            # every column, continuous ones too: a hint without its deviations leaves CP-SAT to find them
            hint = np.clip(np.round(np.asarray(warm_start) * scaled["col_scale"]), col_lower, col_upper)
            for j in range(model.num_cols):
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
