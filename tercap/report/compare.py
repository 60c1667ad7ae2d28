"""Scenarios side by side: each scenario's planning run (or its run folder, reused when its inputs are
unchanged), the figures a director compares, and for two plans the differences by account and rep.

Every scenario is simulated with one seed, so they meet the same simulated market: the same market
factor in every trial and, where they share a pipeline (a base they all `extends`), the same fate of
every open deal and the same departures of the reps they share (common random numbers, see
`tercap.simulate.kernel`). A difference between two scenarios is then the plans', not noise; the
paired trials give its standard error (`Comparison.difference_error`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tercap.errors import TercapError
from tercap.profiles import SolverProfile
from tercap.report import COMPANY_TRIALS, INPUTS_FILE, RUN_FILES, write_run
from tercap.report.html import embedded_figure, html_table
from tercap.run import AT_RISK, run_inputs, run_plan
from tercap.runfolder import run_folder
from tercap.scenario import Scenario, load

# (column, label, format) of the comparison table; format: money, pct, ratio, count, km, hours
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("reps", "reps today", "count"),
    ("hires", "planned hires", "count"),
    ("capacity_hours", "capacity (hours)", "hours"),
    ("workload_hours", "workload (hours)", "hours"),
    ("utilisation_min", "utilisation min", "pct"),
    ("utilisation_max", "utilisation max", "pct"),
    ("utilisation_cv", "workload balance (utilisation CV)", "ratio"),
    ("potential_share_cv", "potential balance (CV vs target)", "ratio"),
    ("mean_travel_km", "mean travel (km)", "km"),
    ("accounts_moved", "accounts moved", "count"),
    ("potential_moved_share", "potential moved", "pct"),
    ("quota_total", "total quota", "money"),
    ("p_hit_target", "P(hit target)", "pct"),
    ("attainment_rate_mean", "expected attainment rate", "pct"),
    ("revenue_p10", "revenue P10", "money"),
    ("revenue_p50", "revenue P50", "money"),
    ("revenue_p90", "revenue P90", "money"),
    ("reps_at_risk", "reps at risk (P(attain) < {risk:.0%})", "count"),
    ("rep_months", "rep-months paid", "ratio"),
    ("headcount_cost", "headcount cost", "money"),
    ("plan_objective", "plan objective (solver cost)", "ratio"),
)
TOP_REPS = 10  # reps listed among those whose workload or quota moves most
PAIRS_SHOWN = 5  # scenarios whose differences against the first compare.html shows (all are in differences/)


@dataclass(frozen=True, eq=False)
class RunRecord:
    """A planning run as its run folder holds it: what a comparison reads."""

    name: str
    folder: Path
    reused: bool  # True: the folder's run was reused, its inputs unchanged
    headline: dict[str, Any]
    inputs: dict[str, Any]
    assignments: pd.DataFrame  # plan/assignments.csv
    reps: pd.DataFrame  # plan/reps.csv
    quotas: pd.DataFrame  # quota/quotas.csv
    simulated_reps: pd.DataFrame  # sim/reps.csv
    company_revenue: np.ndarray  # per trial

    @classmethod
    def read(cls, folder: Path, reused: bool) -> RunRecord:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        text = {"account_id": str, "rep_id": str, "previous_rep_id": str}
        trials = pd.read_parquet(folder / COMPANY_TRIALS)
        return cls(name=summary["headline"]["scenario"], folder=folder, reused=reused, headline=summary["headline"],
                   inputs=json.loads((folder / INPUTS_FILE).read_text(encoding="utf-8")),
                   assignments=pd.read_csv(folder / "plan/assignments.csv", dtype=text, keep_default_na=False),
                   reps=pd.read_csv(folder / "plan/reps.csv", dtype=text),
                   quotas=pd.read_csv(folder / "quota/quotas.csv", dtype=text),
                   simulated_reps=pd.read_csv(folder / "sim/reps.csv", dtype=text),
                   company_revenue=trials["revenue"].to_numpy(dtype=float))


def reusable(folder: Path, inputs: dict[str, Any]) -> bool:
    """Whether `folder` holds a complete run made from exactly `inputs`."""
    try:
        saved = json.loads((folder / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    complete = all((folder / name).is_file() for name in (*RUN_FILES, "summary.json", COMPANY_TRIALS))
    return complete and saved.get("fingerprint") == inputs["fingerprint"]


def run_or_reuse(scenario: Scenario, folder: Path, solver: str | SolverProfile | None = None, *,
                 trials: int | None = None, seed: int | None = None, workers: int = 1,
                 progress: Callable[[str], None] | None = None) -> RunRecord:
    """The planning run of `scenario` in `folder`: read back when the folder's inputs (the scenario's
    settings and tables, the solver profile, trials, seed, tercap's version) are unchanged, else run and
    written there first."""
    say = progress or (lambda _message: None)
    if reusable(folder, run_inputs(scenario, solver, trials=trials, seed=seed)):
        say(f"{scenario.name}: inputs unchanged, reusing {folder}")
        return RunRecord.read(folder, reused=True)
    run = run_plan(scenario, solver, trials=trials, seed=seed, workers=workers,
                   progress=lambda message: say(f"{scenario.name}: {message}"))
    if not run.complete:
        reasons = "; ".join(run.plan.diagnosis or run.plan.violations) or run.plan.status.value
        raise TercapError(f"{scenario.name}: no plan to compare ({reasons})")
    write_run(run, folder)
    return RunRecord.read(folder, reused=False)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Several scenarios' planning runs side by side."""

    records: tuple[RunRecord, ...]
    seed: int
    risk_threshold: float = AT_RISK  # a rep whose P(attain quota) is below this is at risk

    def measures(self) -> list[tuple[str, str, str]]:
        """(column, label, format) of the table, the risk threshold in its label."""
        return [(column, label.format(risk=self.risk_threshold), kind) for column, label, kind in MEASURES]

    @property
    def names(self) -> list[str]:
        return [record.name for record in self.records]

    def table(self) -> pd.DataFrame:
        """One row per scenario, one column per measure (MEASURES)."""
        rows = [{column: record.headline.get(column) for column, _, _ in MEASURES} for record in self.records]
        table = pd.DataFrame(rows, index=pd.Index(self.names, name="scenario"))
        table["reps_at_risk"] = [int((pd.to_numeric(r.simulated_reps["p_attain"], errors="coerce")
                                      < self.risk_threshold).sum()) for r in self.records]
        return table

    def difference_error(self, first: int, second: int) -> tuple[float, float]:
        """(P(hit target) of `second` − of `first`, its Monte Carlo standard error from the paired trials)."""
        a, b = self.records[first], self.records[second]
        target = a.headline.get("target") or 0.0
        trials = min(len(a.company_revenue), len(b.company_revenue))
        hit_a = (a.company_revenue[:trials] >= target).astype(float)
        hit_b = (b.company_revenue[:trials] >= (b.headline.get("target") or 0.0)).astype(float)
        paired = hit_b - hit_a
        return float(paired.mean()), float(paired.std(ddof=1) / np.sqrt(trials)) if trials > 1 else float("nan")

    def owner_changes(self, first: int = 0, second: int = 1) -> pd.DataFrame:
        """Accounts whose rep differs between two plans: account_id, rep in each, potential, workload."""
        a, b = self.records[first], self.records[second]
        left = a.assignments.set_index("account_id")
        right = b.assignments.set_index("account_id")
        common = left.index.intersection(right.index, sort=False)
        changed = common[left.loc[common, "rep_id"].to_numpy() != right.loc[common, "rep_id"].to_numpy()]
        frame = pd.DataFrame({"account_id": changed,
                              f"rep_id_{a.name}": left.loc[changed, "rep_id"].to_numpy(),
                              f"rep_id_{b.name}": right.loc[changed, "rep_id"].to_numpy(),
                              "potential": pd.to_numeric(right.loc[changed, "potential"]).to_numpy(),
                              "workload_hours": pd.to_numeric(right.loc[changed, "workload_hours"]).to_numpy()})
        return frame.sort_values("potential", ascending=False, kind="stable").reset_index(drop=True)

    def rep_changes(self, first: int = 0, second: int = 1) -> pd.DataFrame:
        """Per rep of either plan: workload, quota and P(attain) in each, and the moves; sorted by the
        larger of the workload and quota moves (relative to the first plan's means)."""
        a, b = self.records[first], self.records[second]

        def figures(record: RunRecord) -> pd.DataFrame:
            reps = record.reps.set_index("rep_id")[["workload_hours", "accounts"]].apply(pd.to_numeric)
            quotas = record.quotas.set_index("rep_id")["quota"].astype(float)
            attain = record.simulated_reps.set_index("rep_id")["p_attain"].astype(float)
            return reps.join(quotas, how="outer").join(attain, how="outer")

        left, right = figures(a), figures(b)
        frame = left.join(right, how="outer", suffixes=(f"_{a.name}", f"_{b.name}")).fillna(
            {f"{c}_{n}": 0.0 for c in ("workload_hours", "accounts", "quota") for n in (a.name, b.name)})
        frame["workload_change"] = frame[f"workload_hours_{b.name}"] - frame[f"workload_hours_{a.name}"]
        frame["quota_change"] = frame[f"quota_{b.name}"] - frame[f"quota_{a.name}"]
        scale_w = max(float(left["workload_hours"].mean()), 1e-9)
        scale_q = max(float(left["quota"].mean()), 1e-9)
        frame["moved_most"] = np.maximum((frame["workload_change"] / scale_w).abs(),
                                         (frame["quota_change"] / scale_q).abs())
        frame = frame.sort_values("moved_most", ascending=False, kind="stable").drop(columns="moved_most")
        return frame.reset_index(names="rep_id")

    def summary(self) -> dict[str, Any]:
        """What compare.json holds: the table, the runs, and the paired differences against the first."""
        table = self.table()
        out: dict[str, Any] = {"seed": self.seed, "scenarios": self.names, "risk_threshold": self.risk_threshold,
                               "runs": [{"scenario": r.name, "folder": str(r.folder), "reused": r.reused,
                                         "fingerprint": r.inputs.get("fingerprint")} for r in self.records],
                               "table": json.loads(table.reset_index().to_json(orient="records"))}
        out["p_hit_target_vs_first"] = [
            {"scenario": self.records[k].name, "difference": d, "standard_error": e}
            for k in range(1, len(self.records)) for d, e in [self.difference_error(0, k)]]
        return out

    def __repr__(self) -> str:
        return f"<Comparison of {', '.join(self.names)} (seed {self.seed})>"

    def _repr_html_(self) -> str:
        return comparison_table_html(self)


def compare(scenarios: Sequence[str | Path | Scenario], *, runs_dir: str | Path = "runs",
            solver: str | SolverProfile | None = None, trials: int | None = None, seed: int | None = None,
            workers: int = 1, risk_threshold: float = AT_RISK,
            progress: Callable[[str], None] | None = None) -> Comparison:
    """Plan (or reuse) each scenario's run in `runs_dir/NAME` and put them side by side; a rep is at risk
    when P(attain quota) < `risk_threshold`.

    All are simulated with one seed (`seed`, else the first scenario's), so they meet the same market."""
    loaded = [item if isinstance(item, Scenario) else load(item) for item in scenarios]
    if len(loaded) < 2:
        raise TercapError("compare needs at least two scenarios")
    names = [scenario.name for scenario in loaded]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise TercapError(f"scenario name(s) {', '.join(twice)} appear more than once: each needs its own run "
                          "folder (give them different `name:`s)")
    common_seed = int(loaded[0].settings.simulation.seed if seed is None else seed)
    records = tuple(run_or_reuse(scenario, Path(runs_dir) / scenario.name, solver, trials=trials,
                                 seed=common_seed, workers=workers, progress=progress) for scenario in loaded)
    return Comparison(records, common_seed, risk_threshold)


def write_comparison(comparison: Comparison, root: str | Path) -> Path:
    """compare.csv, compare.json, compare.html (with overlaid figures) and, for each scenario after the
    first, the accounts that change owner and the reps' moves against the first; returns compare.html."""
    root = Path(root)
    with run_folder(root) as folder:
        folder.csv("compare.csv", comparison.table().reset_index())
        folder.json("compare.json", comparison.summary())
        for k in range(1, len(comparison.records)):
            name = comparison.records[k].name
            folder.csv(f"differences/{name}/owner_changes.csv", comparison.owner_changes(0, k))
            folder.csv(f"differences/{name}/rep_changes.csv", comparison.rep_changes(0, k))
        folder.path("compare.html").write_text(render_comparison(comparison), encoding="utf-8")
    return root / "compare.html"


def formatted(value: Any, kind: str) -> str:
    """A figure of the comparison as a reader wants it."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "ratio":
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{value:,.0f}"


def comparison_table_html(comparison: Comparison) -> str:
    """The measures × scenarios table as HTML (names escaped)."""
    table = comparison.table()
    head = "".join(f"<th>{html.escape(name)}</th>" for name in comparison.names)
    rows = []
    for column, label, kind in comparison.measures():
        cells = "".join(f"<td style='text-align:right'>{formatted(value, kind)}</td>" for value in table[column])
        rows.append(f"<tr><th style='text-align:left'>{html.escape(label)}</th>{cells}</tr>")
    return f"<table class='compare'><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_comparison(comparison: Comparison) -> str:
    """compare.html: the table, the paired differences, overlaid figures, and per pair the moves."""
    from matplotlib.figure import Figure

    from tercap.plotting import attainment_curves, revenue_curves, utilisation_spread

    parts = [f"<h1>Scenario comparison: {html.escape(', '.join(comparison.names))}</h1>",
             f"<p>Every scenario is simulated with seed {comparison.seed}: they meet the same simulated market "
             "(common random numbers), so differences are the plans', not noise.</p>",
             comparison_table_html(comparison)]
    first = comparison.records[0]
    if len(comparison.records) > 1:
        lines = []
        for k in range(1, len(comparison.records)):
            difference, error = comparison.difference_error(0, k)
            lines.append(f"<li>{html.escape(comparison.records[k].name)}: P(hit target) {difference:+.1%} "
                         f"against {html.escape(first.name)} (± {1.96 * error:.1%} at 95%, paired trials)</li>")
        parts.append(f"<h2>Against {html.escape(first.name)}</h2><ul>{''.join(lines)}</ul>")
    for draw, caption in ((revenue_curves, "Probability of at least each revenue; the dashed line is the target."),
                          (utilisation_spread, "Each rep's utilisation; the dashed line is full capacity."),
                          (attainment_curves, "Each rep's simulated odds of reaching quota, sorted.")):
        figure = Figure(figsize=(7.5, 4.0), layout="constrained")
        draw(comparison, ax=figure.add_subplot())
        parts.append(embedded_figure(figure, caption))
    for k in range(1, min(len(comparison.records), PAIRS_SHOWN + 1)):
        other = comparison.records[k]
        owners = comparison.owner_changes(0, k)
        reps = comparison.rep_changes(0, k).head(TOP_REPS)
        reps = reps.rename(columns={**{c: c.removesuffix(f"_{first.name}") + " (A)" for c in reps.columns
                                       if c.endswith(f"_{first.name}")},
                                    **{c: c.removesuffix(f"_{other.name}") + " (B)" for c in reps.columns
                                       if c.endswith(f"_{other.name}")}})
        owners_shown = owners.rename(columns={f"rep_id_{first.name}": "rep (A)", f"rep_id_{other.name}": "rep (B)"})
        parts.append(f"<h2>{html.escape(other.name)} (B) against {html.escape(first.name)} (A)</h2>"
                     f"<p>{len(owners):,} accounts change owner "
                     f"({owners['potential'].sum():,.0f} of potential); the reps whose workload or quota moves "
                     f"most:</p>" + _frame_html(reps) +
                     (f"<p>Accounts that change owner, largest potential first (all {len(owners):,} in "
                      f"differences/{html.escape(other.name)}/owner_changes.csv):</p>"
                      + _frame_html(owners_shown.head(25)) if len(owners) else ""))
    if len(comparison.records) > PAIRS_SHOWN + 1:
        parts.append(f"<p>The differences of the other {len(comparison.records) - PAIRS_SHOWN - 1} scenarios against "
                     f"{html.escape(first.name)} are in differences/NAME/.</p>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}"
             "td,th{padding:.25em .7em;border-bottom:1px solid #ddd;white-space:nowrap}"
             "figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}.num{text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tercap comparison</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def _frame_html(frame: pd.DataFrame) -> str:
    """A table of rep or account figures: ids as text, P(attain) as percentages, other numbers whole."""

    def kind(column: str) -> str:
        if column.startswith("p_attain"):
            return "pct"
        return "number" if pd.api.types.is_numeric_dtype(frame[column]) else "text"

    return html_table(frame, [(str(c), str(c), kind(str(c))) for c in frame.columns])
