"""Figure of a backtest: the PIT histogram of tercap's forecasts, one set of bars per target."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tercap.pipeline.backtest import Backtest

PIT_BINS = 10
COLOURS = {"open": "#3b6ea8", "total": "#c9812b"}


def pit_histogram(backtest: Backtest, ax: Axes | None = None) -> Axes:
    """Share of origins whose actual fell in each tenth of the forecast distribution (the PIT), by target.

    A calibrated forecast gives flat bars at 10%; bars high at both ends say the ranges are too narrow,
    high at the right that the forecast is too low."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.5))
    ours = backtest.forecasts[backtest.forecasts["method"] == "tercap"]
    edges = np.linspace(0.0, 1.0, PIT_BINS + 1)
    width = 1.0 / PIT_BINS / 2.2
    tallest = 1.0 / PIT_BINS
    for offset, (target, colour) in enumerate(COLOURS.items()):
        values = ours.loc[ours["target"] == target, "pit"].to_numpy(dtype=float)
        if not len(values):
            continue
        share = np.histogram(values, bins=edges)[0] / len(values)
        tallest = max(tallest, float(share.max()))
        ax.bar(edges[:-1] + (offset + 0.5) * width + 0.005, share, width=width, color=colour,
               label=f"{target} ({len(values)} origins)", align="edge")
    ax.axhline(1.0 / PIT_BINS, color="#444444", linestyle="--", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, tallest * 1.45)  # room above the bars for the legend
    ax.set_xlabel("PIT: share of simulated outcomes below the actual")
    ax.set_ylabel("share of origins")
    ax.set_title(f"Backtest of {backtest.scenario}".replace("$", r"\$"), fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax
