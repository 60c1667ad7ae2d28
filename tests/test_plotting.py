"""Figures draw from a plan without a display."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import tercap.plotting as plotting
from tercap.profiles import SolverProfile

from .assign.instances import tiny_scenario


def test_balance_figure_has_a_bar_per_active_rep():
    import tercap

    plan = tercap.plan(tiny_scenario(0, accounts=12, reps=4), SolverProfile(name="t", strategy="decompose"))
    ax = plotting.balance(plan)
    active = (plan.reps["capacity_hours"] > 0).sum()
    assert len(ax.patches) == active
    assert [t.get_text() for t in ax.get_xticklabels()][:1] != [""]
    ax.figure.savefig(__import__("io").BytesIO(), format="png")
