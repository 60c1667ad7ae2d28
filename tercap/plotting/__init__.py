"""Figures: one function per figure, `(result, ..., ax=None) -> Axes`. The core never imports this."""

from tercap.plotting.backtest import pit_histogram
from tercap.plotting.balance import balance
from tercap.plotting.compare import attainment_curves, revenue_curves, utilisation_spread
from tercap.plotting.headcount import headcount_curve
from tercap.plotting.plan_figures import account_map, potential_and_quota
from tercap.plotting.simulation import attainment_odds, attainment_rate, attainment_spread, revenue_fan
from tercap.plotting.territory import territory_map, territory_maps

__all__ = ["account_map", "attainment_curves", "attainment_odds", "attainment_rate", "attainment_spread", "balance",
           "headcount_curve", "pit_histogram", "potential_and_quota", "revenue_curves", "revenue_fan", "territory_map",
           "territory_maps", "utilisation_spread"]
