"""Scores of a forecast given as samples (or as one number) against what happened."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)


def pinball_loss(samples: np.ndarray, actual: float, quantiles: Sequence[float] = QUANTILES) -> float:
    """Mean over `quantiles` of the pinball (quantile) loss of the samples' quantiles at `actual`."""
    values = np.quantile(np.asarray(samples, dtype=float), quantiles)
    losses = [max(q * (actual - v), (q - 1) * (actual - v)) for q, v in zip(quantiles, values, strict=True)]
    return float(np.mean(losses))


def crps(samples: np.ndarray, actual: float) -> float:
    """Continuous ranked probability score of the empirical distribution of `samples` at `actual`:
    E|X − y| − ½ E|X − X'| (lower is better; in the units of the samples). One sample: |x − y|."""
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    n = x.size
    spread = np.dot(2 * np.arange(1, n + 1) - n - 1, x) / n**2  # ½ E|X − X'|
    return float(np.abs(x - actual).mean() - spread)


def pit(samples: np.ndarray, actual: float, uniform: float = 0.5) -> float:
    """Probability integral transform: P(X < y) + `uniform` × P(X = y) (randomised where samples tie
    with the actual, e.g. a forecast of exactly 0). Uniform on [0, 1] for a calibrated forecast."""
    x = np.asarray(samples, dtype=float)
    return float(np.mean(x < actual) + uniform * np.mean(x == actual))
