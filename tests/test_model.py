"""The solver-neutral model: independent blocks, equilibration, and CP-SAT's integer scaling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tercap.backends import SolveLimits, get_backend
from tercap.backends.cpsat import scale_model
from tercap.model import INF, LinearModel


def _model(matrix: np.ndarray, integral: np.ndarray, lower: np.ndarray, upper: np.ndarray, cost: np.ndarray
           ) -> LinearModel:
    n = matrix.shape[1]
    m = matrix.shape[0]
    return LinearModel(cost=cost, matrix=sp.csr_matrix(matrix), row_lower=lower, row_upper=upper,
                       col_lower=np.zeros(n), col_upper=np.where(integral, 1.0, INF), integral=integral,
                       row_family=np.full(m, "row", dtype=object), row_owner=np.arange(m))


def test_blocks_follow_shared_rows():
    matrix = np.array([[1, 1, 0, 0, 0],
                       [0, 0, 1, 1, 0],
                       [0, 0, 0, 0, 0]], dtype=float)
    model = _model(matrix, np.ones(5, dtype=bool), np.zeros(3), np.ones(3), np.ones(5))
    labels = model.blocks()
    assert labels[0] == labels[1] and labels[2] == labels[3]
    assert len({labels[0], labels[2], labels[4]}) == 3  # column 4 is in no row: a block of its own
    coupled = _model(np.vstack([matrix, [1, 0, 0, 1, 0]]), np.ones(5, dtype=bool), np.zeros(4), np.ones(4),
                     np.ones(5))
    labels = coupled.blocks()
    assert labels[0] == labels[1] == labels[2] == labels[3] != labels[4]


def test_equilibrated_model_is_the_same_programme():
    """Rows of potential in the millions beside a deviation column: scaled to coefficients near 1, the
    same points are feasible, with the same objective, and HiGHS's optimum is CBC's."""
    rng = np.random.default_rng(3)
    potential = rng.integers(100_000, 3_000_000, 12).astype(float)
    target = potential.sum() / 3
    matrix = np.zeros((5, 13))
    matrix[0, :12] = potential  # a band on potential
    matrix[1, :12], matrix[1, 12] = potential, -1.0  # deviation above target: Σ p x − d ≤ target
    matrix[2, :12] = 1.0
    matrix[3, :6] = rng.integers(10, 200, 6)
    matrix[4, 6:12] = rng.integers(10, 200, 6)
    integral = np.r_[np.ones(12, dtype=bool), False]
    lower = np.array([0.8 * target, -INF, 3, -INF, -INF])
    upper = np.array([1.3 * target, target, 5, 300, 300])
    cost = np.r_[rng.uniform(-1, 1, 12), 1e-6]
    model = _model(matrix, integral, lower, upper, cost)
    scaled, factor = model.equilibrated()
    assert np.all(factor[:12] == 1.0) and factor[12] != 1.0
    magnitude = abs(scaled.matrix).max(axis=1).toarray().ravel()
    assert np.all((magnitude >= 0.5) & (magnitude <= 2.0))
    for _ in range(200):
        x = np.r_[rng.integers(0, 2, 12), rng.uniform(0, 2 * target)].astype(float)
        assert model.objective(x) == scaled.objective(x / factor) or \
            abs(model.objective(x) - scaled.objective(x / factor)) <= 1e-9 * (1 + abs(model.objective(x)))
        assert bool(model.violations(x)) == bool(scaled.violations(x / factor))
    limits = SolveLimits(time_limit=30, mip_gap=0.0)
    highs, cbc = get_backend("highs").solve(model, limits), get_backend("cbc").solve(model, limits)
    assert highs.objective is not None and cbc.objective is not None
    assert abs(highs.objective - cbc.objective) <= 1e-6 * (1 + abs(cbc.objective))
    assert not model.violations(highs.x)


def test_cpsat_bounds_a_free_column_by_the_finite_side_of_its_rows():
    """A deviation left alone in its rows (its pairs held, as in a neighbourhood): d ≥ 7.4 − 2 and
    d ≥ 2 − 7.4. CP-SAT needs a finite range for d; it must reach 5.4, not stop at one unit."""
    matrix = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    model = LinearModel(cost=np.array([1.0, -1.0]), matrix=sp.csr_matrix(matrix),
                        row_lower=np.array([5.4, -INF, 0.0]), row_upper=np.array([INF, -5.4, 1.0]),
                        col_lower=np.zeros(2), col_upper=np.array([INF, 1.0]), integral=np.array([False, True]),
                        row_family=np.full(3, "row", dtype=object), row_owner=np.arange(3))
    limits = SolveLimits(time_limit=10, mip_gap=0.0)
    highs, cpsat = get_backend("highs").solve(model, limits), get_backend("cpsat").solve(model, limits)
    assert highs.objective == pytest.approx(4.4)
    assert cpsat.x is not None and not model.violations(cpsat.x)
    assert cpsat.objective == pytest.approx(4.4, abs=1.0) and cpsat.bound <= highs.objective + 1e-9


def _small(matrix: list[list[float]], lower: list[float], upper: list[float], cost: list[float],
           integral: list[bool]) -> LinearModel:
    n = len(cost)
    return LinearModel(cost=np.array(cost), matrix=sp.csr_matrix(np.array(matrix)), row_lower=np.array(lower),
                       row_upper=np.array(upper), col_lower=np.zeros(n),
                       col_upper=np.where(np.array(integral), 1.0, INF), integral=np.array(integral),
                       row_family=np.full(len(lower), "row", dtype=object), row_owner=np.arange(len(lower)))


def test_cpsat_keeps_a_continuous_column_in_rows_of_different_scales():
    """d sits in a row of tenths (scale 10) and a row of whole numbers (scale 1): counted in tenths it
    would round out of the second row (0.1 → 0) and force x = 1. Optimum: x = 0, d = 1, cost 0.5."""
    model = _small([[0.5, -1.0], [1.0, 1.0]], [-INF, 1.0], [0.2, INF], [1.0, 0.5], [True, False])
    cpsat = get_backend("cpsat").solve(model, SolveLimits(time_limit=10, mip_gap=0.0))
    assert cpsat.objective == pytest.approx(0.5) and not model.violations(cpsat.x)


def test_cpsat_sees_a_small_cost_beside_a_large_penalty():
    """A deviation costing 1e-7 per unit beside an unassigned penalty of 1e8: the deviation must still
    count in CP-SAT's objective (x = 1, d = 2,000,000, cost 0.2), not be left where the warm start put it."""
    model = _small([[1.0, 1.0, 0.0], [0.0, 3e6, -1.0], [0.0, 3e6, 1.0]], [1.0, -INF, 1e6], [1.0, 1e6, INF],
                   [1e8, 0.0, 1e-7], [True, True, False])
    assert scale_model(model)["cost"][2] >= 1  # one unit of d is worth at least one unit of the objective
    warm = np.array([0.0, 1.0, 5e6])  # a plan whose deviation is far above the least it can be
    cpsat = get_backend("cpsat").solve(model, SolveLimits(time_limit=10, mip_gap=0.0), warm_start=warm)
    assert cpsat.objective == pytest.approx(0.2, rel=1e-6) and not model.violations(cpsat.x)
    assert cpsat.bound <= 0.2 + 1e-9
