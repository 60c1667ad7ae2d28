"""Figures of a comparison: scenarios overlaid on one axis each."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.report.compare import Comparison


def _axes(ax: Axes | None, size: tuple[float, float] = (7.5, 4.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size)
    return ax


def revenue_curves(comparison: Comparison, ax: Axes | None = None) -> Axes:
    """P(company revenue ≥ x) for each scenario, with the target: the curve to the right is the better."""
    ax = _axes(ax)
    target = 0.0
    for record in comparison.records:
        revenue = np.sort(record.company_revenue) / 1e6
        above = 1.0 - np.arange(len(revenue)) / max(len(revenue), 1)
        ax.step(revenue, above, where="post", linewidth=1.6, label=record.name)
        target = record.headline.get("target") or target
    if target:
        ax.axvline(target / 1e6, color="#b03a2e", linestyle="--", linewidth=1.2, label=f"target {target / 1e6:,.1f} M")
    ax.set_xlabel("company revenue in the period (millions)")
    ax.set_ylabel("probability of at least this revenue")
    ax.set_title("Revenue: the same simulated market for every scenario")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


def utilisation_spread(comparison: Comparison, ax: Axes | None = None) -> Axes:
    """Each rep's utilisation (workload ÷ capacity) per scenario: the tighter the box, the better balanced."""
    ax = _axes(ax)
    data = [pd.to_numeric(record.reps["utilisation"], errors="coerce").dropna().to_numpy() * 100
            for record in comparison.records]
    ax.boxplot(data, tick_labels=comparison.names, whis=(0, 100), widths=0.5)
    for k, values in enumerate(data, start=1):
        ax.scatter(np.full(len(values), k) + np.linspace(-0.15, 0.15, len(values)), values, s=8, alpha=0.5)
    ax.axhline(100, color="#b03a2e", linestyle="--", linewidth=1)
    ax.set_ylabel("utilisation (% of capacity)")
    ax.set_title("Workload balance by rep")
    ax.grid(axis="y", alpha=0.3)
    return ax


def attainment_curves(comparison: Comparison, ax: Axes | None = None) -> Axes:
    """Each rep's P(attain quota), sorted, per scenario: who is at risk in each plan."""
    ax = _axes(ax)
    for record in comparison.records:
        odds = np.sort(pd.to_numeric(record.simulated_reps["p_attain"], errors="coerce").dropna().to_numpy())
        ax.plot(np.arange(1, len(odds) + 1), odds * 100, marker="o", markersize=3, linewidth=1.2, label=record.name)
    ax.set_xlabel("reps with a quota, from least to most likely to attain")
    ax.set_ylabel("P(attain quota) %")
    ax.set_title("Each rep's odds of quota")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax
