"""Figures of a plan with its quotas: where the accounts go, and how quota lines up with potential."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.plan import Plan
    from tercap.quota import Quotas
    from tercap.scenario import Scenario

PALETTE = "tab20"  # reps cycle through its 20 colours; neighbouring reps rarely share one


def account_map(plan: Plan, scenario: Scenario, ax: Axes | None = None, moved_only: bool = False) -> Axes:
    """Accounts at their coordinates coloured by the rep the plan gives them (size: potential), rep
    homes as black triangles; moved accounts ringed. `moved_only` draws only the accounts that move."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8.0, 5.0))
    accounts = scenario.accounts.set_index("account_id")
    table = plan.assignments.set_index("account_id").join(accounts[["lat", "lon"]])
    if moved_only:
        table = table[table["moved"]]
    reps = scenario.reps
    codes = {rep: i for i, rep in enumerate(reps["rep_id"])}
    colour_index = table["rep_id"].map(codes).fillna(-1).to_numpy(dtype=float)
    cmap = plt.get_cmap(PALETTE)
    colours = np.where(colour_index[:, None] >= 0, cmap(np.mod(colour_index, 20).astype(int)), (0.6, 0.6, 0.6, 1.0))
    potential = table["potential"].to_numpy(dtype=float)
    size = 4 + 40 * np.sqrt(potential / max(float(potential.max(initial=0.0)), 1e-9))
    ax.scatter(table["lon"], table["lat"], s=size, c=colours, alpha=0.75, linewidths=0)
    moved = table["moved"].to_numpy(dtype=bool)
    if moved.any() and not moved_only:
        ax.scatter(table["lon"][moved], table["lat"][moved], s=size[moved] + 10, facecolors="none",
                   edgecolors="#222222", linewidths=0.4, label=f"moved ({int(moved.sum()):,})")
    ax.scatter(reps["lon"], reps["lat"], marker="^", s=40, color="black", label="rep home")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Accounts by rep: {plan.scenario}" + (" (moved accounts)" if moved_only else ""))
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.set_aspect(1.0 / max(np.cos(np.radians(float(np.nanmean(table["lat"])) if len(table) else 0.0)), 0.2))
    return ax


def potential_and_quota(quotas: Quotas, ax: Axes | None = None) -> Axes:
    """Bars: each rep's book potential over the period; dots: its quota (both in millions), reps by
    potential, largest first; a flagged quota in red."""
    import matplotlib.pyplot as plt

    table = quotas.table[quotas.table["quota"] > 0].sort_values("potential", ascending=False)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(table) + 2), 3.6))
    positions = np.arange(len(table))
    ax.bar(positions, table["potential"] / 1e6, color="#c9d8ea", label="book potential")
    flagged = (table["flag"] != "").to_numpy()
    ax.scatter(positions[~flagged], table["quota"][~flagged] / 1e6, color="#1f3f66", zorder=3, s=14, label="quota")
    if flagged.any():
        ax.scatter(positions[flagged], table["quota"][flagged] / 1e6, color="#b03a2e", zorder=3, s=18,
                   label="quota flagged")
    ax.set_xticks(positions)
    ax.set_xticklabels(table["rep_id"], rotation=90, fontsize=7)
    ax.set_ylabel("millions")
    ax.set_title(f"Potential and quota per rep ({quotas.method})")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.margins(x=0.01)
    return ax
