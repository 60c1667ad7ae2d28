"""HiGHS (highspy): the model passed as arrays (CSC), never through modelling objects."""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from tercap.backends import BackendResult, SolveLimits
from tercap.model import LinearModel
from tercap.status import SolveStatus

HIGHS_INF = 1e30
OVERRUN_FACTOR, OVERRUN_SECONDS = 1.05, 1.0  # past time_limit × factor + seconds, the watchdog interrupts


class HighsBackend:
    name = "highs"

    def is_installed(self) -> bool:
        return importlib.util.find_spec("highspy") is not None

    def solve(self, model: LinearModel, limits: SolveLimits, warm_start: np.ndarray | None = None
              ) -> BackendResult:
        import highspy

        is_mip = bool(model.integral.any())
        # MIPs only: equilibration strengthens HiGHS's cuts, while its simplex scales LPs better itself
        # (the 50,000-account relaxation took 50 s equilibrated, 28 s as it is)
        model, col_factor = model.equilibrated() if is_mip else (model, np.ones(model.num_cols))
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(limits.time_limit))
        h.setOptionValue("mip_rel_gap", float(limits.mip_gap))
        if limits.absolute_gap > 0:
            h.setOptionValue("mip_abs_gap", float(limits.absolute_gap))
        h.setOptionValue("threads", int(limits.threads))
        h.setOptionValue("random_seed", int(limits.seed) % 2_147_483_647)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = model.num_cols, model.num_rows
        lp.col_cost_ = model.cost
        lp.offset_ = float(model.offset)
        lp.col_lower_ = np.clip(model.col_lower, -HIGHS_INF, HIGHS_INF)
        lp.col_upper_ = np.clip(model.col_upper, -HIGHS_INF, HIGHS_INF)
        lp.row_lower_ = np.clip(model.row_lower, -HIGHS_INF, HIGHS_INF)
        lp.row_upper_ = np.clip(model.row_upper, -HIGHS_INF, HIGHS_INF)
        csc = model.matrix.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data.astype(float)
        if is_mip:
            lp.integrality_ = np.where(model.integral, highspy.HighsVarType.kInteger,
                                       highspy.HighsVarType.kContinuous).tolist()
        h.passModel(lp)
        if warm_start is not None and is_mip:
            solution = highspy.HighsSolution()
            solution.col_value = (np.asarray(warm_start, dtype=float) / col_factor).tolist()
            solution.value_valid = True
            h.setSolution(solution)
        began = time.perf_counter()
        deadline = began + float(limits.time_limit) * OVERRUN_FACTOR + OVERRUN_SECONDS

        def watchdog(event: object) -> None:  # HiGHS checks its own time limit too rarely in some phases
            if time.perf_counter() > deadline:
                event.interrupt()  # type: ignore[attr-defined]

        improvements: list[tuple[float, float]] = []

        def improving(event: object) -> None:  # when each better solution was found, for progress figures
            improvements.append((time.perf_counter() - began, float(event.data_out.objective_function_value)))  # type: ignore[attr-defined]

        h.cbMipInterrupt.subscribe(watchdog)
        if is_mip:
            h.cbMipImprovingSolution.subscribe(improving)
        h.cbSimplexInterrupt.subscribe(watchdog)
        h.run()
        seconds = time.perf_counter() - began

        status = h.getModelStatus()
        info = h.getInfo()
        word = h.modelStatusToString(status)
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=float) * col_factor if has_solution else None
        objective = float(info.objective_function_value) if has_solution else None
        kind = highspy.HighsModelStatus
        if status == kind.kOptimal:
            bound = float(info.mip_dual_bound) if is_mip else objective
            result_status = SolveStatus.OPTIMAL
        elif status == kind.kInfeasible:
            bound, result_status = None, SolveStatus.INFEASIBLE
        else:
            bound = float(info.mip_dual_bound) if is_mip and np.isfinite(info.mip_dual_bound) else None
            if status in (kind.kTimeLimit, kind.kInterrupt):
                result_status = SolveStatus.TIME_LIMIT if has_solution else SolveStatus.NO_SOLUTION
            else:
                result_status = SolveStatus.FEASIBLE if has_solution else SolveStatus.NO_SOLUTION
        return BackendResult(result_status, x, objective, bound, seconds, word, self.name, tuple(improvements))
