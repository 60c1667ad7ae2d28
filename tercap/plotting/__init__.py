"""Figures: one function per figure, `(result, ..., ax=None) -> Axes`. The core never imports this."""

from tercap.plotting.balance import balance
from tercap.plotting.simulation import attainment_odds, attainment_spread, revenue_fan

__all__ = ["attainment_odds", "attainment_spread", "balance", "revenue_fan"]
