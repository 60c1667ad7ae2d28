"""How evenly a plan spreads the work: utilisation of each rep in the plan and today."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.plan import Plan

TOP = 200.0  # % shown; books fuller than this today are drawn at the top as triangles


def balance(plan: Plan, ax: Axes | None = None, show_today: bool = True) -> Axes:
    """Bars: each rep's utilisation (workload ÷ capacity) in the plan, busiest first; hollow
    circles: the same for the books today (current owners)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(plan.reps) + 2), 3.6))
    reps = plan.reps[plan.reps["capacity_hours"] > 0].sort_values("utilisation", ascending=False)
    positions = np.arange(len(reps))
    ax.bar(positions, reps["utilisation"] * 100, color="#3b6ea8", label="plan")
    mean = float(reps["utilisation"].mean() * 100)
    ax.axhline(mean, color="#444444", linestyle="--", linewidth=1, label=f"plan mean {mean:.0f}%")
    ax.axhline(100, color="#b03a2e", linewidth=1, label="capacity")
    if show_today:
        assignments = plan.assignments
        load = assignments.groupby("previous_rep_id")["workload_hours"].sum()
        today = (load.reindex(reps["rep_id"]).fillna(0.0).to_numpy() / reps["capacity_hours"].to_numpy()) * 100
        inside = today <= TOP
        ax.scatter(positions[inside], today[inside], marker="o", facecolors="none", edgecolors="#e08e0b",
                   zorder=3, label="today")
        ax.scatter(positions[~inside], np.full((~inside).sum(), TOP * 0.97), marker="^", color="#e08e0b", zorder=3,
                   label=f"today, over {TOP:.0f}%" if (~inside).any() else None)
    ax.set_ylim(0, TOP if show_today else max(110.0, float(reps["utilisation"].max() * 110)))
    ax.set_xticks(positions)
    ax.set_xticklabels(reps["rep_id"], rotation=90, fontsize=7)
    ax.set_ylabel("utilisation (%)")
    ax.set_title(f"Workload balance: {plan.scenario}")
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
    ax.margins(x=0.01)
    return ax
