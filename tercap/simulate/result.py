"""SimulationResult: simulated closed revenue per rep and trial, and what a director reads off it."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

REP_COLUMNS = ("rep_id", "quota", "mean", "p10", "p50", "p90", "p_attain", "expected_attainment")


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per-trial outcomes of a plan and their summaries; arrays are read-only."""

    scenario: str
    rep_ids: np.ndarray
    quota: np.ndarray  # per rep (0: no quota)
    quota_basis: str
    target: float | None  # company target
    rep_revenue: np.ndarray  # (trials × reps)
    company_monthly: np.ndarray  # (trials × months)
    month_labels: tuple[str, ...]
    seed: int
    departures: np.ndarray = field(default_factory=lambda: np.zeros(0))
    parameters: str = "the scenario's settings"  # where the pipeline model's values come from
    metrics: dict[str, Any] = field(default_factory=dict)  # the classic sales metrics (simulate.metrics)
    allocation: Any = None  # the Quotas behind `quota` when the simulation allocated them itself

    def __post_init__(self) -> None:
        for array in (self.rep_revenue, self.company_monthly, self.quota):
            array.flags.writeable = False

    def with_quotas(self, quotas: pd.Series, basis: str, target: float | None = None,
                    allocation: Any = None) -> SimulationResult:
        """The same trials judged against `quotas` (rep_id → quota; a rep left out has none), and
        against `target` where given (else this result's); `allocation` is the Quotas they came from."""
        quota = quotas.reindex(self.rep_ids).fillna(0.0).to_numpy(dtype=float)
        return dataclasses.replace(self, quota=quota, quota_basis=basis, allocation=allocation,
                                   target=self.target if target is None else float(target))

    @property
    def trials(self) -> int:
        return self.rep_revenue.shape[0]

    @property
    def company_revenue(self) -> np.ndarray:
        """Closed revenue of the company per trial."""
        return self.company_monthly.sum(axis=1)

    def reps(self) -> pd.DataFrame:
        """Per rep: quota, mean, P10/P50/P90 of closed revenue, P(attain quota), mean attainment."""
        revenue = self.rep_revenue
        quota = self.quota
        has_quota = quota > 0
        attained = revenue >= quota[None, :]
        p10, p50, p90 = np.percentile(revenue, [10, 50, 90], axis=0)
        return pd.DataFrame({
            "rep_id": self.rep_ids,
            "quota": quota,
            "mean": revenue.mean(axis=0),
            "p10": p10, "p50": p50, "p90": p90,
            "p_attain": np.where(has_quota, attained.mean(axis=0), np.nan),
            "expected_attainment": np.where(has_quota, revenue.mean(axis=0) / np.where(has_quota, quota, 1), np.nan),
        }, columns=list(REP_COLUMNS))

    def trials_frame(self) -> pd.DataFrame:
        """Per trial: its number, each rep's closed revenue (a column per rep_id) and the company's."""
        frame = pd.DataFrame(self.rep_revenue, columns=[str(rep) for rep in self.rep_ids])
        frame.insert(0, "trial", np.arange(self.trials))
        frame["company"] = self.company_revenue
        return frame

    def monthly_frame(self) -> pd.DataFrame:
        """Per trial: the company's closed revenue in each month (a column per month, YYYY-MM)."""
        frame = pd.DataFrame(self.company_monthly, columns=list(self.month_labels))
        frame.insert(0, "trial", np.arange(self.trials))
        return frame

    def attainment_rate(self) -> np.ndarray:
        """Per trial, the share of reps with a quota who reach it."""
        has_quota = self.quota > 0
        if not has_quota.any():
            return np.full(self.trials, np.nan)
        return (self.rep_revenue[:, has_quota] >= self.quota[has_quota][None, :]).mean(axis=1)

    def company(self) -> dict[str, Any]:
        """Company figures: revenue distribution, P(hit target), attainment rate, reps at quota."""
        revenue = self.company_revenue
        p10, p50, p90 = (float(v) for v in np.percentile(revenue, [10, 50, 90]))
        rate = self.attainment_rate()
        has_quota = self.quota > 0
        monthly_mean = self.company_monthly.mean(axis=0)
        return {
            "scenario": self.scenario, "trials": self.trials, "seed": self.seed,
            "target": self.target, "quota_total": float(self.quota.sum()), "quota_basis": self.quota_basis,
            "parameters": self.parameters,
            "revenue_mean": float(revenue.mean()), "revenue_std": float(revenue.std()),
            "revenue_p10": p10, "revenue_p50": p50, "revenue_p90": p90,
            "p_hit_target": float((revenue >= self.target).mean()) if self.target else None,
            "attainment_rate_mean": float(np.nanmean(rate)) if has_quota.any() else None,
            "attainment_rate_p10": float(np.percentile(rate, 10)) if has_quota.any() else None,
            "attainment_rate_p90": float(np.percentile(rate, 90)) if has_quota.any() else None,
            "expected_reps_at_quota": float((self.rep_revenue[:, has_quota] >= self.quota[has_quota]).sum(axis=1)
                                            .mean()) if has_quota.any() else None,
            "reps_with_quota": int(has_quota.sum()),
            "mean_departures": float(self.departures.mean()) if self.departures.size else 0.0,
            "monthly_mean": dict(zip(self.month_labels, (float(v) for v in monthly_mean), strict=True)),
            "metrics": self.metrics,
        }

    def summary(self) -> dict[str, Any]:
        """What sim/company.json holds."""
        return self.company()

    def __repr__(self) -> str:
        figures = self.company()
        hit = figures["p_hit_target"]
        return (f"<SimulationResult {self.scenario!r}: {self.trials:,} trials, P50 revenue "
                f"{figures['revenue_p50']:,.0f}" + (f", P(hit target) {hit:.0%}" if hit is not None else "") + ">")

    def _repr_html_(self) -> str:
        figures = self.company()
        rows = [(key, figures[key]) for key in ("trials", "target", "revenue_p10", "revenue_p50", "revenue_p90",
                                               "p_hit_target", "attainment_rate_mean", "expected_reps_at_quota")]
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
                        for k, v in rows)
        reps = self.reps().head(20).to_html(index=False, float_format=lambda v: f"{v:,.2f}", escape=True)
        return (f"<div><h4>Simulation of {html.escape(self.scenario)}</h4><table>{cells}</table>"
                f"<p><b>Reps</b> (first 20)</p>{reps}</div>")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1%}" if abs(value) <= 1 else f"{value:,.0f}"
    return html.escape(str(value))
