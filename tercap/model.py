"""The solver-neutral linear model: arrays a backend hands to its solver as they are.

    minimise   c·x + offset
    subject to row_lower ≤ A x ≤ row_upper,  col_lower ≤ x ≤ col_upper,  x_j integer where integral[j]

Rows carry a constraint family (e.g. "capacity") and an owner index (the rep or account they are
about), so that infeasibility can be diagnosed and violations named. Objective terms are kept
separately (c = Σ weight × term) so that each term can be reported on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

INF = np.inf


@dataclass(frozen=True, eq=False)
class LinearModel:
    """A mixed-integer linear programme in arrays (minimisation)."""

    cost: np.ndarray  # (n,)
    matrix: sp.csr_matrix  # (m, n)
    row_lower: np.ndarray  # (m,)
    row_upper: np.ndarray  # (m,)
    col_lower: np.ndarray  # (n,)
    col_upper: np.ndarray  # (n,)
    integral: np.ndarray  # (n,) bool
    offset: float = 0.0
    row_family: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # (m,) str
    row_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (m,)
    terms: Mapping[str, tuple[np.ndarray, float]] = field(default_factory=dict)  # name -> (vector, offset)
    weights: Mapping[str, float] = field(default_factory=dict)

    @property
    def num_cols(self) -> int:
        return len(self.cost)

    @property
    def num_rows(self) -> int:
        return self.matrix.shape[0]

    def objective(self, x: np.ndarray) -> float:
        return float(self.cost @ x + self.offset)

    def term_values(self, x: np.ndarray) -> dict[str, float]:
        """Each objective term at `x`, before its weight."""
        return {name: float(vector @ x + offset) for name, (vector, offset) in self.terms.items()}

    def relaxed(self) -> LinearModel:
        """The LP relaxation: no integrality."""
        return replace(self, integral=np.zeros_like(self.integral))

    def without_families(self, families: set[str]) -> LinearModel:
        """The model with every row of the named families removed (for diagnosis)."""
        keep = ~np.isin(self.row_family, list(families))
        return replace(self, matrix=self.matrix[keep], row_lower=self.row_lower[keep],
                       row_upper=self.row_upper[keep], row_family=self.row_family[keep],
                       row_owner=self.row_owner[keep])

    def with_bounds(self, col_lower: np.ndarray, col_upper: np.ndarray) -> LinearModel:
        return replace(self, col_lower=col_lower, col_upper=col_upper)

    def blocks(self) -> np.ndarray:
        """Per column, the label of its independent block: columns linked through shared rows are in the
        same block, so each block can be optimised apart and the optimum is the sum of the blocks'."""
        from scipy.sparse.csgraph import connected_components

        m, n = self.matrix.shape
        incidence = sp.csr_matrix((np.ones(self.matrix.nnz), self.matrix.indices, self.matrix.indptr), shape=(m, n))
        graph = sp.bmat([[None, incidence], [incidence.T, None]], format="csr")
        _, labels = connected_components(graph, directed=False)
        return labels[m:]

    def equilibrated(self) -> tuple[LinearModel, np.ndarray]:
        """The same programme with coefficients near 1, and the column factors `f` with x = f · x_scaled.

        Each row is divided by its largest |coefficient|, then each continuous column by its largest
        after that (integer columns keep their values); factors are powers of two, so rows of whole
        coefficients stay exact. A MIP solver's cuts and tolerances work on the scaled model: a balance
        row on potential in the millions next to a deviation column of coefficient 1 otherwise weakens
        HiGHS's root bound and slows its search."""
        m, n = self.matrix.shape
        if m == 0 or n == 0:
            return self, np.ones(n)
        magnitude = np.asarray(abs(self.matrix).max(axis=1).todense()).ravel()
        row_factor = _power_of_two(magnitude)
        scaled = sp.diags(1.0 / row_factor) @ self.matrix
        col_magnitude = np.asarray(abs(scaled).max(axis=0).todense()).ravel()
        col_factor = np.where(self.integral, 1.0, 1.0 / _power_of_two(col_magnitude))
        scaled = (scaled @ sp.diags(col_factor)).tocsr()
        return replace(self, cost=self.cost * col_factor, matrix=scaled, row_lower=self.row_lower / row_factor,
                       row_upper=self.row_upper / row_factor, col_lower=self.col_lower / col_factor,
                       col_upper=self.col_upper / col_factor), col_factor

    def restricted(self, free: np.ndarray, values: np.ndarray) -> LinearModel:
        """The model over the `free` columns only, the others held at `values` (their contribution
        moves into the row bounds and the objective's constant). Rows left without a free column
        are dropped."""
        fixed = ~free
        held = np.where(fixed, values, 0.0)
        contribution = self.matrix @ held
        sub = self.matrix[:, np.flatnonzero(free)].tocsr()
        keep = np.diff(sub.indptr) > 0
        return LinearModel(cost=self.cost[free], matrix=sub[keep], row_lower=(self.row_lower - contribution)[keep],
                           row_upper=(self.row_upper - contribution)[keep], col_lower=self.col_lower[free],
                           col_upper=self.col_upper[free], integral=self.integral[free],
                           offset=self.offset + float(self.cost @ held), row_family=self.row_family[keep],
                           row_owner=self.row_owner[keep])

    def violations(self, x: np.ndarray, tolerance: float = 1e-6) -> list[tuple[str, int, float]]:
        """Rows and bounds that `x` breaks: (family, owner, amount), largest first."""
        activity = self.matrix @ x
        scale = 1.0 + np.abs(activity)
        below = (self.row_lower - activity) / scale
        above = (activity - self.row_upper) / scale
        amount = np.maximum(below, above)
        found = [(str(self.row_family[i]), int(self.row_owner[i]), float(amount[i]))
                 for i in np.flatnonzero(amount > tolerance)]
        bound_breach = np.maximum(self.col_lower - x, x - self.col_upper)
        found += [("bounds", int(j), float(bound_breach[j])) for j in np.flatnonzero(bound_breach > tolerance)]
        fractional = self.integral & (np.abs(x - np.round(x)) > tolerance)
        found += [("integrality", int(j), float(abs(x[j] - round(x[j])))) for j in np.flatnonzero(fractional)]
        return sorted(found, key=lambda item: -item[2])


class RowBuilder:
    """Collects constraint rows as COO triplets, one block at a time, vectorised."""

    def __init__(self, num_cols: int) -> None:
        self.num_cols = num_cols
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._lower: list[np.ndarray] = []
        self._upper: list[np.ndarray] = []
        self._family: list[np.ndarray] = []
        self._owner: list[np.ndarray] = []
        self.count = 0

    def add(self, family: str, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
            lower: np.ndarray, upper: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Add a block of len(lower) rows; `rows` index within the block. Returns the row numbers."""
        size = len(lower)
        self._rows.append(np.asarray(rows, dtype=np.int64) + self.count)
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.asarray(vals, dtype=float))
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (size,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (size,)))
        self._family.append(np.full(size, family, dtype=object))
        self._owner.append(np.broadcast_to(np.asarray(owner, dtype=np.int64), (size,)))
        numbers = np.arange(self.count, self.count + size)
        self.count += size
        return numbers

    def build(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        matrix = sp.csr_matrix((cat(self._vals, float), (cat(self._rows, np.int64), cat(self._cols, np.int64))),
                               shape=(self.count, self.num_cols))
        matrix.sum_duplicates()
        return (matrix, cat(self._lower, float), cat(self._upper, float), cat(self._family, object),
                cat(self._owner, np.int64))


def _power_of_two(magnitude: np.ndarray) -> np.ndarray:
    """The power of two nearest each magnitude (1 where it is zero or not finite)."""
    usable = np.isfinite(magnitude) & (magnitude > 0)
    return np.where(usable, np.exp2(np.round(np.log2(np.where(usable, magnitude, 1.0)))), 1.0)
