"""The figure of a capacity plan: P(hit target) and cost against headcount."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.headcount import HeadcountPlan


def headcount_curve(plan: HeadcountPlan, ax: Axes | None = None) -> Axes:
    """P(hit target) by number of added reps (first start month), the probability asked for, the answer,
    and the headcount cost on a second axis."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7.5, 4.0))
    first = int(plan.table["start_month"].min())
    rows = plan.table[plan.table["start_month"] == first].sort_values("hires")
    ax.plot(rows["hires"], rows["p_hit_target"] * 100, marker="o", color="#1f3f66", label="P(hit target)")
    ax.axhline(plan.target_probability * 100, color="#b03a2e", linestyle="--", linewidth=1.2,
               label=f"asked: {plan.target_probability:.0%}")
    if plan.answer is not None:
        ax.axvline(plan.answer.hires, color="#2e7d32", linewidth=1, label=f"answer: {plan.answer.hires} hires")
    ax.set_xlabel(f"reps added (starting in month {first})")
    ax.set_ylabel("P(hit target) %")
    ax.set_title(f"Headcount against the odds of the target: {plan.scenario}")
    ax.grid(alpha=0.3)
    cost = rows["headcount_cost"].astype(float)
    if cost.max() > 0:
        twin = ax.twinx()
        twin.plot(rows["hires"], cost / 1e6, color="#888888", linestyle=":", marker=".", label="headcount cost")
        twin.set_ylabel("headcount cost in the period (millions)")
        twin.legend(loc="lower right", fontsize=8, frameon=False)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax
