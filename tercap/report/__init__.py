"""Reports of a planning run: the run folder, report.html and plan.xlsx. At the edge: the core never
imports this package."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tercap.report.excel import write_workbook
from tercap.report.html import render_report
from tercap.run import PlanningRun
from tercap.runfolder import RunFolder, run_folder
from tercap.scenario import Scenario
from tercap.territory import TerritoryPlan

__all__ = ["RUN_FILES", "TERRITORY_FILES", "render_report", "write_run", "write_territories", "write_workbook"]

# What a complete run folder holds (DESIGN.md contracts), besides summary.json.
RUN_FILES = ("plan/assignments.csv", "plan/reps.csv", "plan/summary.json", "quota/quotas.csv", "sim/reps.csv",
             "sim/company.json", "report.html", "plan.xlsx")
INPUTS_FILE = "inputs.json"  # what made the run, with its fingerprint (tercap.run.run_inputs)
COMPANY_TRIALS = "sim/company_trials.parquet"  # company revenue per trial: what comparisons overlay
# and, when the scenario has a territory: section
TERRITORY_FILES = ("territory/units.csv", "territory/territories.csv", "territory/summary.json", "territory/map.png")


def write_territories(folder: RunFolder, plan: TerritoryPlan, scenario: Scenario) -> None:
    """The territory files of a run folder: units, territories, summary, the trade-off of a rebalancing,
    and the map (one panel per segment)."""
    from tercap.plotting import territory_maps

    folder.csv("territory/units.csv", plan.units)
    folder.csv("territory/territories.csv", plan.territories)
    folder.json("territory/summary.json", plan.summary())
    if plan.trade_off is not None:
        folder.csv("territory/trade_off.csv", plan.trade_off)
    territory_maps(plan, scenario).savefig(folder.path("territory/map.png"), dpi=110)


def write_run(run: PlanningRun, root: str | Path) -> Path:
    """Write the run folder of `run` to `root` (all files appear together, or none); returns the path of
    report.html."""
    root = Path(root)
    with run_folder(root) as folder:
        folder.csv("plan/assignments.csv", run.plan.assignments)
        folder.csv("plan/reps.csv", run.plan.reps)
        folder.json("plan/summary.json", run.plan.summary())
        if run.quotas is not None:
            folder.csv("quota/quotas.csv", run.quotas.table)
        if run.simulation is not None:
            folder.csv("sim/reps.csv", run.simulation.reps())
            folder.json("sim/company.json", run.simulation.company())
            folder.parquet(COMPANY_TRIALS, pd.DataFrame({"trial": range(run.simulation.trials),
                                                        "revenue": run.simulation.company_revenue}))
        if run.territories is not None:
            write_territories(folder, run.territories, run.scenario)
        folder.json("summary.json", run.summary())
        folder.json(INPUTS_FILE, run.inputs)
        folder.path("report.html").write_text(render_report(run), encoding="utf-8")
        write_workbook(run, folder.path("plan.xlsx"))
    return root / "report.html"
