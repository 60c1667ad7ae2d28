"""The classic sales metrics of a simulated plan: what ops reads off its pipeline and its paths.

Weighted pipeline value and win rate by stage come from the open deals and the stage model; the share
of each stage's deals won inside the period and the average size of a won deal are read off the
simulated paths (the first block of 256 trials, so that they do not depend on chunks or workers);
cycle length and ramp time come from the settings the simulation ran on. (Where deals are independent
and a rep's few open deals are drawn from their exact distribution, those deals are not counted by
stage.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tercap.scenario.schema import Settings
from tercap.simulate.book import DealBook

DAYS_PER_MONTH = 365.25 / 12


def classic_metrics(book: DealBook, settings: Settings, open_revenue: np.ndarray, new_won: np.ndarray,
                    stage_won: np.ndarray, company_revenue: np.ndarray) -> dict[str, Any]:
    """The metrics as a plain dict (see the module docstring)."""
    sim = settings.simulation
    stages = [stage.name for stage in sim.stages]
    conversion = np.array([stage.conversion for stage in sim.stages])
    win_from_stage = np.cumprod(conversion[::-1])[::-1]
    deal_stage = book.deal_stage
    amount = book.deal_amount * book.amount_ratio
    deals_in_stage = np.bincount(deal_stage, minlength=len(stages))
    won_share = np.divide(stage_won.mean(axis=0) if len(stage_won) else np.zeros(len(stages)), deals_in_stage,
                          out=np.full(len(stages), np.nan), where=deals_in_stage > 0)
    sample = len(stage_won)
    won_deals = float(stage_won.sum() + new_won[:sample].sum()) if sample else 0.0
    average_size = float(company_revenue[:sample].sum() / won_deals) if won_deals > 0 else None
    base_days = float(sum(stage.median_days for stage in sim.stages))
    curves = settings.capacity.ramp_curves
    ramp = {}
    for segment in sorted(sim.cycle_multiplier):
        curve = np.asarray(curves[settings.capacity.ramp_name_for(segment, "")], dtype=float)
        ramp[segment] = int(np.argmax(curve >= curve[-1] - 1e-12)) + 1
    return {
        "open_deals": int(book.num_deals),
        "open_pipeline_value": float(amount.sum()),
        "weighted_pipeline_value": float((amount * book.deal_win).sum()),
        "expected_open_revenue_in_period": float(open_revenue.mean()) if open_revenue.size else 0.0,
        "win_rate_new_opportunity": float(book.win_rate),
        "win_rate_by_stage": _win_rate_by_stage(book, stages, win_from_stage, deals_in_stage),
        "open_deals_by_stage": dict(zip(stages, (int(v) for v in deals_in_stage), strict=True)),
        "won_in_period_share_by_stage": dict(zip(stages, (None if np.isnan(v) else float(v) for v in won_share),
                                                 strict=True)),
        "new_deals_won_mean": float(new_won.mean()) if new_won.size else 0.0,
        "average_won_deal_size": average_size,
        "median_cycle_days_by_segment": {segment: base_days * float(multiplier)
                                         for segment, multiplier in sorted(sim.cycle_multiplier.items())}
        if book.open_deal_win is None else {"all": book.median_days_to_win},
        "ramp_months_by_segment": ramp,
        "metrics_sample_trials": sample,
    }


def _win_rate_by_stage(book: DealBook, stages: list[str], win_from_stage: np.ndarray,
                       deals_in_stage: np.ndarray) -> dict[str, float | None]:
    """By stage: the stage model's win rate from that stage on; by age, the mean P(won ever) of the open
    deals in the stage today (None where none is)."""
    if book.open_deal_win is None:
        return dict(zip(stages, (float(v) for v in win_from_stage), strict=True))
    total = np.bincount(book.deal_stage, book.open_deal_win, minlength=len(stages))
    return {stage: (float(total[k] / deals_in_stage[k]) if deals_in_stage[k] else None)
            for k, stage in enumerate(stages)}
