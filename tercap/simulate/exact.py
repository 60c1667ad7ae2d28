"""The exact distribution of a rep's closed revenue when deals are independent.

Each deal closes won with its own probability and then brings its amount; amounts are rounded to the
nearest multiple of a grid (ties to even), so that revenue lives on 0, grid, 2·grid, … and a dynamic
program over those cells gives its distribution exactly: start from a point mass at 0 and, for each
deal, `pmf ← (1 − p)·pmf + p·shift(pmf, k)`, where k is the deal's amount in grid cells. Rounding moves
any outcome's revenue by at most Σ|amount − grid·k| ≤ n·grid/2 (`RevenueDistribution.rounding_error`).

The cost is two passes over the current support per deal (deals are taken in increasing amount, so the
support grows as late as possible); for a rep with a few dozen deals this is faster than sampling, and
it is the reference the Monte Carlo sampler is tested against (`kolmogorov_smirnov`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

MAX_CELLS = 10_000_000  # largest revenue support (in grid cells) built by default: 80 MB of float64
RESCALE_ABOVE = 1e150  # the unnormalised pmf is scaled back to mass 1 when its mass passes this
SNAP_ABSOLUTE = 1e-9  # a value this close to a grid value (in grid cells) counts as that grid value…
SNAP_RELATIVE = 1e-12  # …plus this share of its size, for float sums of many amounts


@dataclass(frozen=True, eq=False)
class RevenueDistribution:
    """Revenue on 0, grid, 2·grid, …: `pmf[j]` is P(revenue = j·grid); the array is read-only.

    `rounding_error` bounds, in every outcome, the difference between the revenue of the rounded
    amounts described here and that of the true amounts.
    """

    grid: float
    pmf: np.ndarray
    rounding_error: float = 0.0

    def __post_init__(self) -> None:
        pmf = np.array(self.pmf, dtype=float)
        if not (np.isfinite(self.grid) and self.grid > 0):
            raise ValueError(f"grid must be a positive number, got {self.grid}")
        if pmf.ndim != 1 or pmf.size == 0:
            raise ValueError(f"pmf must be a non-empty 1-D array, got shape {pmf.shape}")
        if not np.isfinite(pmf).all() or (pmf < 0).any() or abs(pmf.sum() - 1.0) > 1e-9:
            raise ValueError("pmf must hold non-negative probabilities summing to 1")
        pmf.setflags(write=False)
        object.__setattr__(self, "grid", float(self.grid))
        object.__setattr__(self, "pmf", pmf)

    @property
    def values(self) -> np.ndarray:
        """The revenue of each cell: 0, grid, 2·grid, …"""
        return self.grid * np.arange(self.pmf.size)

    def mean(self) -> float:
        """Expected revenue."""
        return float(self.grid * (np.arange(self.pmf.size) @ self.pmf))

    def cdf(self, x: ArrayLike) -> np.ndarray | float:
        """P(revenue ≤ x), elementwise; a float for a scalar x."""
        cells = np.floor(np.clip(_in_grid_cells(x, self.grid), -1, self.pmf.size - 1)).astype(np.int64)
        return _shaped(self._at_most[cells + 1], x)

    def prob_at_least(self, x: ArrayLike) -> np.ndarray | float:
        """P(revenue ≥ x), elementwise (P(attain quota) for x = quota); a float for a scalar x.

        Summed from the top, so that small probabilities in the upper tail keep their precision."""
        cells = np.ceil(np.clip(_in_grid_cells(x, self.grid), 0, self.pmf.size)).astype(np.int64)
        return _shaped(self._at_least[cells], x)

    def quantile(self, q: ArrayLike) -> np.ndarray | float:
        """The smallest grid value whose cdf is ≥ q, elementwise; a float for a scalar q."""
        levels = np.asarray(q, dtype=float)
        if not ((levels >= 0) & (levels <= 1)).all():
            raise ValueError("quantile levels must lie in [0, 1]")
        cells = np.minimum(np.searchsorted(self._cumulative, levels, side="left"), self.pmf.size - 1)
        return _shaped(self.grid * cells, q)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """`size` independent draws, by inverse-cdf sampling of uniforms from `rng`."""
        cells = np.searchsorted(self._cumulative, rng.random(size), side="right")
        return self.grid * np.minimum(cells, self.pmf.size - 1)

    @cached_property
    def _cumulative(self) -> np.ndarray:
        """P(revenue ≤ j·grid) for each cell j, monotone and ending at exactly 1."""
        cumulative = np.minimum(np.cumsum(self.pmf), 1.0)
        cumulative[-1] = 1.0
        return cumulative

    @cached_property
    def _at_most(self) -> np.ndarray:
        """`_cumulative` with a leading 0 for cell −1."""
        return np.concatenate([[0.0], self._cumulative])

    @cached_property
    def _at_least(self) -> np.ndarray:
        """P(revenue ≥ j·grid) for cells 0 … len(pmf), the last one 0."""
        at_least = np.minimum(np.cumsum(self.pmf[::-1])[::-1], 1.0)
        at_least[0] = 1.0
        return np.concatenate([at_least, [0.0]])


def revenue_distribution(win_probability: np.ndarray, amount: np.ndarray, grid: float,
                         max_cells: int = MAX_CELLS) -> RevenueDistribution:
    """The exact distribution of Σ amount·won over independent deals, amounts rounded to the grid.

    Each amount is rounded to the nearest multiple of `grid` (ties to even), so any outcome's revenue
    is off by at most n·grid/2 (the actual bound is `rounding_error`). Raises ValueError when the
    support, Σ amount/grid over deals that can be won, would exceed `max_cells` cells.
    """
    probability = np.asarray(win_probability, dtype=float)
    amount = np.asarray(amount, dtype=float)
    _check_deals(probability, amount, grid)
    can_win = probability > 0
    amount_cells = amount[can_win] / grid
    total_cells = float(np.rint(amount_cells).sum())
    if total_cells > max_cells:
        coarser = grid * np.ceil(total_cells / max_cells)
        raise ValueError(f"the revenue support would need {total_cells:,.0f} cells of {grid:g} (Σ amount / grid over "
                         f"deals that can be won), more than the limit of {max_cells:,}; use a grid of at least "
                         f"{coarser:g}")
    shift = np.rint(amount_cells).astype(np.int64)
    probability = probability[can_win]
    rounding_error = float(np.abs(amount[can_win] - grid * shift).sum())

    certain = probability == 1.0
    uncertain = ~certain & (shift > 0)
    sure_cells = int(shift[certain].sum())
    pmf = np.zeros(int(shift.sum()) + 1)
    pmf[sure_cells] = 1.0
    support = pmf[sure_cells:]  # a view: the deals still open add to the certain revenue
    scratch = np.empty_like(support)
    order = np.argsort(shift[uncertain], kind="stable")  # smallest amounts first: the support grows late
    open_probability, open_shift = probability[uncertain][order], shift[uncertain][order]
    odds = open_probability / (1.0 - open_probability)
    length, mass = 1, 1.0
    for won_odds, k in zip(odds.tolist(), open_shift.tolist(), strict=True):
        # (1 − p)·pmf + p·shift(pmf, k) is proportional to pmf + odds·shift(pmf, k): two passes, not three
        won = np.multiply(support[:length], won_odds, out=scratch[:length])
        support[k:k + length] += won
        length += k
        mass *= 1.0 + won_odds
        if mass > RESCALE_ABOVE:
            support[:length] /= mass
            mass = 1.0
    return RevenueDistribution(grid=grid, pmf=pmf / pmf.sum(), rounding_error=rounding_error)


def kolmogorov_smirnov(samples: np.ndarray, dist: RevenueDistribution) -> float:
    """sup over x of |F_emp(x) − F(x)| between a sample of revenues and an exact distribution.

    Both are step functions, so the sup is reached at a jump of one of them (a grid value with mass, or
    a sampled value), either at the jump or just before it: both are compared there, which makes the
    distance exact for a discrete distribution (a continuous-case formula would overstate it).
    """
    values = np.asarray(samples, dtype=float).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("samples must be a non-empty array of finite revenues")
    sampled = np.sort(_in_grid_cells(values, dist.grid))
    jumps = np.union1d(np.flatnonzero(dist.pmf), sampled)
    last = dist.pmf.size - 1
    at = dist._at_most[np.floor(np.clip(jumps, -1, last)).astype(np.int64) + 1]
    before = dist._at_most[(np.ceil(np.clip(jumps, -1, last + 1)).astype(np.int64) - 1).clip(-1, last) + 1]
    empirical_at = np.searchsorted(sampled, jumps, side="right") / values.size
    empirical_before = np.searchsorted(sampled, jumps, side="left") / values.size
    return float(max(np.abs(empirical_at - at).max(), np.abs(empirical_before - before).max()))


def _check_deals(probability: np.ndarray, amount: np.ndarray, grid: float) -> None:
    """Raise ValueError unless the deals are 1-D arrays of the same length with sane values."""
    if probability.ndim != 1 or probability.shape != amount.shape:
        raise ValueError(f"win_probability and amount must be 1-D arrays of the same length, got shapes "
                         f"{probability.shape} and {amount.shape}")
    if not (np.isfinite(grid) and grid > 0):
        raise ValueError(f"grid must be a positive number, got {grid}")
    if not ((probability >= 0) & (probability <= 1)).all():
        raise ValueError("win probabilities must lie in [0, 1]")
    if not (np.isfinite(amount) & (amount >= 0)).all():
        raise ValueError("amounts must be finite and non-negative")


def _in_grid_cells(x: ArrayLike, grid: float) -> np.ndarray:
    """x in grid cells, values within float noise of a grid value snapped onto it; NaN refused."""
    cells = np.asarray(x, dtype=float) / grid
    if np.isnan(cells).any():
        raise ValueError("revenue values must not be NaN")
    nearest = np.rint(cells)
    with np.errstate(invalid="ignore"):  # ±inf stays as it is
        close = np.abs(cells - nearest) <= SNAP_ABSOLUTE + SNAP_RELATIVE * np.abs(nearest)
    return np.where(close, nearest, cells)


def _shaped(result: np.ndarray, like: ArrayLike) -> np.ndarray | float:
    """`result` as a float when `like` is a scalar, else as an array."""
    return float(result) if np.ndim(like) == 0 else result
