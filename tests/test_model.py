"""The solver-neutral model: independent blocks and equilibration."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tercap.backends import SolveLimits, get_backend
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
