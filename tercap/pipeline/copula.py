"""The one-factor Gaussian copula's quarterly variance, the ρ that gives a variance, and ρ's own spread.

A period's rate of a proportion p under the copula is Φ((t − √ρ Z)/√(1 − ρ)) with t = Φ⁻¹(p) and
Z ~ N(0, 1); calibration measures ρ through the variance of that rate across quarters, and the
simulation draws ρ per trial from the sampling distribution of that measurement.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, stats

MAX_CORRELATION = 0.999  # ρ is clipped to [0, MAX_CORRELATION]: the schema wants ρ < 1
CORRELATION_LEVELS = 32  # equally likely values of ρ that a trial draws from when ρ is uncertain


def copula_variance(rho: float, threshold: float) -> float:
    """Var of Φ((t − √ρ Z) / √(1 − ρ)) over Z: Φ₂(t, t; ρ) − Φ(t)², by Plackett's identity
    ∂Φ₂/∂ρ = φ₂(t, t; ρ), integrated from 0."""
    if rho <= 0:
        return 0.0
    return float(integrate.quad(lambda r: copula_density(r, threshold), 0.0, rho)[0])


def copula_density(rho: float, threshold: float) -> float:
    """φ₂(t, t; ρ): the derivative of the copula variance with respect to ρ."""
    return math.exp(-threshold**2 / (1 + rho)) / (2 * math.pi * math.sqrt(1 - rho**2))


def correlation_for(variance: float, threshold: float) -> float:
    """The ρ whose quarterly rates have `variance`, clipped to [0, MAX_CORRELATION]."""
    if not math.isfinite(variance) or variance <= 0:
        return 0.0
    if variance >= copula_variance(MAX_CORRELATION, threshold):
        return MAX_CORRELATION
    return float(optimize.brentq(lambda r: copula_variance(r, threshold) - variance, 0.0, MAX_CORRELATION,
                                 xtol=1e-8))


def correlation_levels(rho: float, probability: float, quarters: int,
                       levels: int = CORRELATION_LEVELS) -> np.ndarray:
    """Equally likely values of ρ for a ρ measured over `quarters` quarters of a rate near `probability`.

    The quarterly variance V(ρ) of the rate is a mean square with Q − 1 degrees of freedom, so the
    true variance given the measured one is V(ρ̂)·(Q − 1)/χ²(Q − 1) (the interval calibration reports
    comes from the same distribution). Level i takes the χ² quantile at (i + ½)/levels. With fewer than
    two quarters, or ρ̂ = 0 (no spread beyond the binomial), ρ is taken as measured: one level."""
    if quarters < 2 or rho <= 0:
        return np.array([rho])
    threshold = float(stats.norm.ppf(min(max(probability, 1e-9), 1 - 1e-9)))
    variance = copula_variance(rho, threshold)
    freedom = quarters - 1
    chi2 = stats.chi2.ppf((np.arange(levels) + 0.5) / levels, freedom)
    return np.array([correlation_for(variance * freedom / c, threshold) for c in chi2[::-1]])
