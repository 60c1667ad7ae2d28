"""Figures of a simulation: the company's revenue fan against target, and each rep's odds of quota."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.simulate import SimulationResult

BANDS = ((10, 90, 0.18), (25, 75, 0.32))  # (low percentile, high percentile, shade)


def revenue_fan(result: SimulationResult, ax: Axes | None = None) -> Axes:
    """Cumulative company revenue by month: median line, P25–P75 and P10–P90 bands, and the target."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.0))
    cumulative = np.cumsum(result.company_monthly, axis=1) / 1e6
    months = np.arange(1, cumulative.shape[1] + 1)
    for low, high, shade in BANDS:
        lo, hi = np.percentile(cumulative, [low, high], axis=0)
        ax.fill_between(months, lo, hi, color="#3b6ea8", alpha=shade, linewidth=0, label=f"P{low}–P{high}")
    ax.plot(months, np.median(cumulative, axis=0), color="#1f3f66", linewidth=2, label="P50")
    if result.target:
        ax.axhline(result.target / 1e6, color="#b03a2e", linestyle="--", linewidth=1.2,
                   label=f"target {result.target / 1e6:,.1f} M")
    ax.set_xticks(months)
    ax.set_xticklabels(result.month_labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("closed revenue, cumulative (millions)")
    ax.set_title(f"Company revenue, {result.trials:,} simulated periods")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def attainment_odds(result: SimulationResult, ax: Axes | None = None, threshold: float = 0.5) -> Axes:
    """Bars: each rep's probability of reaching quota, lowest first; reps below `threshold` in red."""
    import matplotlib.pyplot as plt

    reps = result.reps()
    reps = reps[reps["quota"] > 0].sort_values("p_attain")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(reps) + 2), 3.6))
    positions = np.arange(len(reps))
    colours = np.where(reps["p_attain"] < threshold, "#b03a2e", "#3b6ea8")
    ax.bar(positions, reps["p_attain"] * 100, color=colours)
    ax.axhline(threshold * 100, color="#444444", linestyle="--", linewidth=1)
    ax.set_xticks(positions)
    ax.set_xticklabels(reps["rep_id"], rotation=90, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("P(reach quota), %")
    ax.set_title("Probability that each rep reaches quota")
    return ax


def attainment_spread(result: SimulationResult, ax: Axes | None = None, reps: int = 30) -> Axes:
    """Box per rep (the `reps` with the largest quotas): simulated revenue ÷ quota, P10–P90 whiskers."""
    import matplotlib.pyplot as plt

    has_quota = np.flatnonzero(result.quota > 0)
    chosen = has_quota[np.argsort(-result.quota[has_quota], kind="stable")[:reps]]
    ratio = result.rep_revenue[:, chosen] / result.quota[chosen][None, :] * 100
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(chosen) + 2), 3.8))
    ax.boxplot(ratio, whis=(10, 90), showfliers=False, tick_labels=list(result.rep_ids[chosen]))
    ax.axhline(100, color="#b03a2e", linewidth=1)
    ax.tick_params(axis="x", rotation=90, labelsize=7)
    ax.set_ylabel("revenue ÷ quota, %")
    ax.set_title("Simulated attainment per rep (box: P25–P75, whiskers: P10–P90)")
    return ax


def attainment_rate(result: SimulationResult, ax: Axes | None = None) -> Axes:
    """Histogram over trials of the share of reps who reach quota, with its mean."""
    import matplotlib.pyplot as plt

    rate = result.attainment_rate() * 100
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.4))
    reps = int((result.quota > 0).sum())
    edges = np.linspace(0, 100, min(reps, 50) + 2) if reps else np.linspace(0, 100, 21)
    ax.hist(rate[np.isfinite(rate)], bins=edges, color="#3b6ea8")
    if np.isfinite(rate).any():
        mean = float(np.nanmean(rate))
        ax.axvline(mean, color="#1f3f66", linestyle="--", linewidth=1.2, label=f"mean {mean:.0f}%")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_xlabel("reps at or above quota, %")
    ax.set_ylabel("trials")
    ax.set_title("Attainment rate across simulated periods")
    return ax
