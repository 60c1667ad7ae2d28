"""The `tercap` command. Thin: it parses arguments, calls the public API and prints.

Exit codes: 0 ok, 1 internal error, 2 bad input.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.table import Table

import tercap
from tercap.errors import Problem, ScenarioError, TercapError, count_problems

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
MAX_LISTED_PROBLEMS = 50

app = typer.Typer(
    name="tercap",
    help="Sales territory and quota design: exact optimisation and Monte Carlo stress tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
PIPED_WIDTH = 120  # a log or a pipe gets wide tables; a terminal gets its own width
out = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)

ScenarioPath = Annotated[Path, typer.Argument(help="Scenario file (YAML).", show_default=False)]


def _print_problems(problems: tuple[Problem, ...], title: str, style: str) -> None:
    if not problems:
        return
    err.print(f"[{style}]{title}[/]")
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        err.print(f"  • [bold]{problem.location()}[/]: {problem.message}", highlight=False, markup=True,
                  soft_wrap=True)
    if len(problems) > MAX_LISTED_PROBLEMS:
        err.print(f"  … and {count_problems(problems[MAX_LISTED_PROBLEMS:])} more")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          is_eager=True)] = False,
) -> None:
    if version:
        out.print(f"tercap {tercap.__version__}")
        raise typer.Exit(EXIT_OK)
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def validate(path: ScenarioPath) -> None:
    """Check a scenario file and its tables; list every error with file, row and column."""
    scenario = tercap.load(path)
    _print_problems(scenario.warnings, f"{count_problems(scenario.warnings)} warning(s):", "yellow")
    out.print(f"[green]✓[/] {path} is valid: {len(scenario.accounts):,} accounts, "
              f"{len(scenario.reps):,} reps.", highlight=False)


def _table(title: str, first: str, *numeric: str) -> Table:
    """A terminal table: a text column, then right-aligned figures that never wrap."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    table.add_column(first, no_wrap=True)
    for column in numeric:
        table.add_column(column, justify="right", no_wrap=True)
    return table


def _money(value: float) -> str:
    return f"{value:,.0f}"


@app.command()
def info(path: ScenarioPath) -> None:
    """Summarise a scenario: counts, workload against capacity, potential by segment and region."""
    scenario = tercap.load(path)
    period = scenario.period
    out.print(f"[bold]{scenario.name}[/]  {period.label}  {period.start} → {period.end} "
              f"({period.months} months)", highlight=False)
    if scenario.settings.description:
        out.print(scenario.settings.description, style="dim")

    figures = Table(show_header=False, box=None, padding=(0, 2))
    for name, value in scenario.counts().items():
        figures.add_row(name, f"{value:.1%}" if "rate" in name else _money(value))
    out.print(figures)

    segments = scenario.segment_summary()
    table = _table("By segment, over the period", "segment", "accounts", "potential", "workload h",
                   "reps", "hires", "capacity h", "used")
    for segment, row in zip(segments.index, segments.itertuples(index=False), strict=True):
        used = row.utilisation
        table.add_row(str(segment), f"{row.accounts:,}", _money(row.potential), _money(row.workload_h),
                      f"{row.reps:,}", f"{row.hires:,}", _money(row.capacity_h),
                      "—" if pd.isna(used) else f"{used:.0%}",
                      style="red" if pd.notna(used) and used > 1 else None,
                      end_section=segment == segments.index[-2])
    out.print(table)

    regions = scenario.region_summary()
    table = _table("By region", "region", "accounts", "potential", "workload h", "reps")
    for region, row in zip(regions.index, regions.itertuples(index=False), strict=True):
        table.add_row(str(region), f"{row.accounts:,}", _money(row.potential), _money(row.workload_h),
                      f"{row.reps:,}")
    out.print(table)
    _print_problems(scenario.warnings, f"{count_problems(scenario.warnings)} warning(s):", "yellow")


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the scenario into.", show_default=False)],
    accounts: Annotated[int, typer.Option(help="Number of accounts.", min=1)] = 3000,
    reps: Annotated[int, typer.Option(help="Number of reps.", min=1)] = 30,
    units: Annotated[int | None, typer.Option(help="Number of geo units (default: from accounts).",
                                              min=3)] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same files.", min=0)] = 0,
    table_format: Annotated[str, typer.Option("--format", help="Table format: csv or parquet.")] = "csv",
) -> None:
    """Write a realistic synthetic scenario: metros, segments, imbalanced books, pipeline, history."""
    from tercap.scenario.generate import generate_scenario

    if table_format not in ("csv", "parquet"):
        raise TercapError(f"--format must be csv or parquet, got {table_format!r}")
    started = time.perf_counter()
    with err.status(f"Generating {accounts:,} accounts and {reps:,} reps …"):
        path = generate_scenario(out_dir, accounts=accounts, reps=reps, units=units, seed=seed,
                                 table_format=table_format)  # type: ignore[arg-type]
    out.print(f"[green]✓[/] wrote {path} in {time.perf_counter() - started:.1f} s", highlight=False)


SolverOption = Annotated[str | None, typer.Option("--solver", help="Solver profile name (default, exact, quick, "
                                                  "cpsat, cbc) or path to a TOML file; default: the scenario's.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/SCENARIO_NAME).")]


@app.command("plan")
def plan_command(
    path: ScenarioPath,
    solver: SolverOption = None,
    out_dir: OutOption = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials (default: the scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed (default: the scenario's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the simulation.")] = 1,
) -> None:
    """The annual planning run: assign accounts, simulate the pipeline, allocate quotas, and write the run
    folder with report.html and plan.xlsx."""
    from tercap.report import write_run
    from tercap.run import run_plan

    scenario = tercap.load(path)
    _print_problems(scenario.warnings, f"{count_problems(scenario.warnings)} warning(s):", "yellow")
    started = time.perf_counter()
    with err.status("planning …") as status:
        def step(message: str) -> None:
            if not message.startswith("assignment") or "solving" in message or "compiling" in message:
                err.print(f"[dim]{time.perf_counter() - started:6.1f} s[/]  {message}", highlight=False)
            status.update(f"{message} …")

        run = run_plan(scenario, solver, trials=trials, seed=seed, workers=workers, progress=step)
        _refuse_without_plan(run.plan)
        target = out_dir or Path("runs") / scenario.name
        status.update("writing the run folder, report.html and plan.xlsx …")
        report = write_run(run, target)
    if run.territories is not None:
        _print_territories(run.territories, dict(run.steps)["territories"])
    _print_plan(run.plan, dict(run.steps)["assignment"], None)
    _print_run(run)
    for note in run.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"[green]✓[/] planning run in {time.perf_counter() - started:.1f} s · report: {report}",
              highlight=False)


@app.command("compare")
def compare_command(
    paths: Annotated[list[Path], typer.Argument(help="Two or more scenario files.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of compare.csv, compare.json, compare.html "
                                          "and the differences.")] = Path("runs/compare"),
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where each scenario's run folder is (runs/NAME): "
                                           "reused when its inputs are unchanged.")] = Path("runs"),
    solver: SolverOption = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials (default: each scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="One seed for all (default: the first "
                                             "scenario's): the same simulated market for every scenario.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the simulations.")] = 1,
    risk_threshold: Annotated[float, typer.Option("--risk-threshold", min=0.0, max=1.0, help="A rep whose "
                                                  "P(attain quota) is below this is at risk.")] = 0.3,
) -> None:
    """Plan each scenario (or reuse its run folder when nothing changed) and show them side by side:
    balance, travel, moves, quota, P(hit target), revenue range, reps at risk, cost."""
    from tercap.report.compare import compare, formatted, write_comparison

    started = time.perf_counter()
    with err.status("comparing …") as status:
        def step(message: str) -> None:
            if "solving" in message or "compiling" in message or "reusing" in message or "simulation" in message:
                err.print(f"[dim]{time.perf_counter() - started:6.1f} s[/]  {message}", highlight=False)
            status.update(f"{message} …")

        comparison = compare(paths, runs_dir=runs_dir, solver=solver, trials=trials, seed=seed, workers=workers,
                             risk_threshold=risk_threshold, progress=step)
        status.update("writing compare.html …")
        report = write_comparison(comparison, out_dir)
    table = _table(f"Scenarios side by side (seed {comparison.seed}: the same simulated market)", "measure",
                   *comparison.names)
    frame = comparison.table()
    for column, label, kind in comparison.measures():
        table.add_row(label, *(formatted(value, kind) for value in frame[column]))
    out.print(table)
    first = comparison.names[0]
    for k in range(1, len(comparison.names)):
        difference, error = comparison.difference_error(0, k)
        owners = comparison.owner_changes(0, k)
        out.print(f"{comparison.names[k]} vs {first}: P(hit target) {difference:+.1%} (± {1.96 * error:.1%}, "
                  f"paired trials); {len(owners):,} accounts change owner", highlight=False)
    reused = [r.name for r in comparison.records if r.reused]
    if reused:
        out.print(f"reused (inputs unchanged): {', '.join(reused)}", style="dim", highlight=False)
    out.print(f"[green]✓[/] compared in {time.perf_counter() - started:.1f} s · report: {report}", highlight=False)


@app.command("capacity")
def capacity_command(
    path: ScenarioPath,
    target_probability: Annotated[float, typer.Option("--target-probability", min=0.01, max=0.99,
                                                      help="P(hit target) to reach.")] = 0.8,
    segment: Annotated[list[str] | None, typer.Option("--segment", help="Segment hires may go to; repeat for "
                                                      "several (default: every segment).")] = None,
    max_hires: Annotated[int, typer.Option("--max-hires", min=0, help="Most reps to add.")] = 30,
    start_month: Annotated[int, typer.Option("--start-month", min=1, help="Earliest month of the period the "
                                             "hires can start.")] = 1,
    solver: SolverOption = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials (default: the scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed (default: the scenario's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the simulations.")] = 1,
    out_dir: OutOption = None,
) -> None:
    """How many reps to hire, and when: the fewest added reps for which the workload fits capacity and
    P(hit target) reaches the probability, each headcount judged by the engine (assignment + simulation
    with ramp and attrition). Writes capacity/headcount.csv, summary.json and headcount.png."""
    from tercap.headcount import plan_headcount
    from tercap.plotting import headcount_curve
    from tercap.runfolder import run_folder

    scenario = tercap.load(path)
    started = time.perf_counter()
    with err.status("capacity planning …") as status:
        def step(message: str) -> None:
            err.print(f"[dim]{time.perf_counter() - started:6.1f} s[/]  {message}", highlight=False)
            status.update(f"{message} …")

        result = plan_headcount(scenario, target_probability, segments=tuple(segment) if segment else None,
                                max_hires=max_hires, start_month=start_month, solver=solver, trials=trials,
                                seed=seed, workers=workers, progress=step)
    target = out_dir or Path("runs") / scenario.name
    with run_folder(target) as folder:
        folder.csv("capacity/headcount.csv", result.table)
        folder.json("capacity/summary.json", result.summary())
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7.5, 4.0), layout="constrained")
        headcount_curve(result, ax=figure.add_subplot())
        figure.savefig(folder.path("capacity/headcount.png"), dpi=110)
    table = _table(f"Headcount judged by the engine (seed {result.seed}, P(hit target) ≥ "
                   f"{target_probability:.0%} asked)", "hires", "segments", "start", "P(hit)", "util max",
                   "revenue P50", "cost")
    costed = scenario.settings.capacity.rep_annual_cost > 0
    for row in result.table.itertuples(index=False):
        chosen = result.answer is not None and row.hires == result.answer.hires and \
            row.start_month == result.answer.start_month
        table.add_row(f"{row.hires}", row.by_segment, f"{row.start_month}",
                      "—" if pd.isna(row.p_hit_target) else f"{row.p_hit_target:.1%}",
                      "no plan" if row.why_not else f"{row.utilisation_max:.0%}" + ("" if row.fits else " (over)"),
                      "—" if pd.isna(row.revenue_p50) else _money(row.revenue_p50),
                      _money(row.headcount_cost) if costed else f"{row.rep_months:,.0f} rep-months",
                      style="bold green" if chosen else None)
    out.print(table)
    out.print(result.sentence(), highlight=False)
    out.print(f"[green]✓[/] in {time.perf_counter() - started:.1f} s · {target}/capacity", highlight=False)


@app.command("sweep")
def sweep_command(
    path: ScenarioPath,
    grid: Annotated[Path, typer.Option("--grid", help="Grid file (YAML): `grid:` setting paths → lists of "
                                       "values; every combination is run.", show_default=False)],
    out_dir: OutOption = None,
    solver: SolverOption = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials (default: the scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="One seed for every point (default: the "
                                             "scenario's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Points run at once (joblib processes, or "
                                         "Dask workers with --dask local).")] = 1,
    dask: Annotated[str | None, typer.Option("--dask", help="Run the points on Dask: 'local' (a LocalCluster of "
                                             "--workers processes) or a scheduler address tcp://host:port.")
                    ] = None,
) -> None:
    """Run a grid of what-ifs over one scenario in parallel and write one comparison: sweep.csv (each
    point's values and figures), compare.csv/html, and each point's run folder under points/."""
    from tercap.report.compare import formatted
    from tercap.report.sweep import read_grid, run_sweep, write_sweep

    scenario = tercap.load(path)
    values = read_grid(grid)
    target = out_dir or Path("runs") / f"{scenario.name}-sweep"
    started = time.perf_counter()
    with err.status("sweeping …") as status:
        def step(message: str) -> None:
            err.print(f"[dim]{time.perf_counter() - started:6.1f} s[/]  {message}", highlight=False)
            status.update(f"{message} …")

        comparison, table = run_sweep(scenario, values, target, solver=solver, trials=trials, seed=seed,
                                      workers=workers, dask=dask, progress=step)
        report = write_sweep(comparison, table, target)
    shown = {"utilisation_cv": ("util CV", "ratio"), "potential_share_cv": ("potential CV", "ratio"),
             "accounts_moved": ("moved", "count"), "p_hit_target": ("P(hit)", "pct"),
             "revenue_p50": ("revenue P50", "money"), "reps_at_risk": ("at risk", "count"),
             "headcount_cost": ("cost", "money")}
    result = _table(f"Sweep of {len(table)} points (seed {comparison.seed}; all figures in {target}/sweep.csv)",
                    "point", *(key.split(".")[-1] for key in values), *(label for label, _ in shown.values()))
    for row in table.to_dict("records"):
        result.add_row(str(row["point"]).rsplit("-", 1)[-1], *(_short(row[k]) for k in values),
                       *(formatted(row[c], kind) for c, (_, kind) in shown.items()))
    out.print(result)
    out.print(f"[green]✓[/] sweep in {time.perf_counter() - started:.1f} s · report: {report}", highlight=False)


import_app = typer.Typer(help="Import tables from other systems.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("crm")
def import_crm_command(
    export: Annotated[Path, typer.Argument(help="Opportunity export (CSV) from the CRM.", show_default=False)],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write pipeline.csv and history.csv into.",
                                            show_default=False)],
    mapping: Annotated[Path, typer.Option("--mapping", "-m", help="Mapping file (YAML): columns and stages.",
                                          show_default=False)],
    scenario: Annotated[bool, typer.Option("--scenario", help="Also write reps.csv, accounts.csv and a "
                                           "scenario.yaml built from the export.")] = False,
) -> None:
    """Turn a CRM opportunity export into the scenario's pipeline (open deals) and history (closed deals)."""
    from tercap.scenario.crm import SUMMARY_FILE, CrmImportError, import_crm

    try:
        result = import_crm(export, mapping, out_dir, build_scenario=scenario)
    except CrmImportError as exc:
        _print_problems(exc.errors, f"✗ {exc.error_count} error(s) in the CRM import, nothing written:", "bold red")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    counts = result.counts()
    out.print(f"[green]✓[/] {counts['rows']:,} opportunities: {counts['open']:,} open → {result.pipeline_path}, "
              f"{counts['won'] + counts['lost']:,} closed ({counts['won']:,} won, {counts['lost']:,} lost) → "
              f"{result.history_path}", highlight=False)
    if result.footer_rows:
        out.print(f"{result.footer_rows} report footer line(s) left out", style="dim", highlight=False)
    if result.as_of is not None:
        origin = "the mapping" if result.as_of_from == "mapping" else "the latest date in the export"
        out.print(f"as of {result.as_of} ({origin})", highlight=False)
    for note in result.notes:
        out.print(f"[yellow]warning:[/] {note}" if note.warning else f"  • {note}", highlight=False)
    if result.scenario_path is not None and result.reps is not None and result.accounts is not None:
        out.print(f"scenario: {result.scenario_path} ({len(result.reps):,} reps, {len(result.accounts):,} accounts; "
                  "without coordinates, which assignment and territory design need)", highlight=False)
    out.print(f"summary: {out_dir / SUMMARY_FILE}", style="dim", highlight=False)


@app.command("territories")
def territories_command(
    path: ScenarioPath,
    out_dir: OutOption = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Territories (default: territory.count, "
                                                                      "else one per rep).")] = None,
    rebalance: Annotated[bool, typer.Option("--rebalance", help="Start from today's territories and move as "
                                                                "few units as possible.")] = False,
    time_limit: Annotated[float, typer.Option("--time-limit", min=1.0, help="Seconds.")] = 60.0,
) -> None:
    """Carve the geo units into contiguous, balanced, compact territories (or rebalance today's) and write
    territory/units.csv, territories.csv and map.png."""
    from tercap.report import write_territories
    from tercap.runfolder import run_folder
    from tercap.territory import design_territories, rebalance_territories

    scenario = tercap.load(path)
    started = time.perf_counter()
    with err.status("carving territories …"):
        plan = rebalance_territories(scenario, time_limit=time_limit) if rebalance else \
            design_territories(scenario, count, time_limit=time_limit)
    target = out_dir or Path("runs") / scenario.name
    with run_folder(target) as folder:
        write_territories(folder, plan, scenario)
    _print_territories(plan, time.perf_counter() - started)
    for line in plan.violations:
        err.print(f"[yellow]•[/] {line}", highlight=False)
    for note in plan.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"run folder: {target}/territory", highlight=False)


def _print_territories(plan: object, seconds: float) -> None:
    """The territory plan's balance, contiguity and moves, per segment when there are several."""
    from tercap.territory import TerritoryPlan

    assert isinstance(plan, TerritoryPlan)
    summary = plan.summary()
    segments = plan.segments
    table = _table(f"Territories in {seconds:.1f} s", "measure", "value")
    table.add_row("territories", f"{summary['territories']:,} of {len(plan.units['unit_id'].unique()):,} units"
                  + (f" ({', '.join(segments)}: one map each)" if len(segments) > 1 else ""))
    for measure, value in summary["worst_deviation"].items():
        limit = plan.tolerances.get(measure)
        table.add_row(f"worst {measure} deviation", f"{value:.2%}" + (f" (tolerance ±{limit:.2%})" if limit else ""))
    table.add_row("all contiguous", "yes" if summary["all_contiguous"] else "no")
    table.add_row("units moved from today", f"{summary['units_moved']:,}")
    out.print(table)


@app.command("assign")
def assign_command(path: ScenarioPath, solver: SolverOption = None, out_dir: OutOption = None) -> None:
    """Assign accounts to reps only and write plan/assignments.csv, reps.csv, summary.json."""
    from tercap.assign import plan as make_plan
    from tercap.runfolder import run_folder

    scenario = tercap.load(path)
    _print_problems(scenario.warnings, f"{count_problems(scenario.warnings)} warning(s):", "yellow")
    started = time.perf_counter()
    with err.status("planning …") as status:
        result = make_plan(scenario, solver, progress=lambda message: status.update(f"{message} …"))
    _refuse_without_plan(result)
    target = out_dir or Path("runs") / scenario.name
    with run_folder(target) as folder:
        folder.csv("plan/assignments.csv", result.assignments)
        folder.csv("plan/reps.csv", result.reps)
        folder.json("plan/summary.json", result.summary())
    _print_plan(result, time.perf_counter() - started, target)


def _short(value: object, width: int = 16) -> str:
    """A grid value in a table cell: cut to `width` characters."""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _refuse_without_plan(result: object) -> None:
    """Exit with the diagnosis when there is no plan, or with the checker's findings when it broke a rule."""
    from tercap.plan import Plan

    assert isinstance(result, Plan)
    stats = result.stats
    if not result.status.has_plan:
        err.print(f"[bold red]✗ no plan[/] ({stats.status.value}, {stats.solver_status}). Why:", highlight=False)
        for line in result.diagnosis:
            err.print(f"  • {line}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    if result.violations:
        err.print("[bold red]✗ the independent check found broken constraints:[/]")
        for line in result.violations:
            err.print(f"  • {line}", highlight=False)
        raise typer.Exit(EXIT_INTERNAL)


def _print_run(run: object) -> None:
    """The quota and risk headline of a planning run."""
    from tercap.run import PlanningRun

    assert isinstance(run, PlanningRun)
    head = run.headline()
    table = _table("Quotas and risk", "measure", "value")
    table.add_row("company target", f"{_money(head['target'])}")
    table.add_row("quotas", f"{_money(head['quota_total'])} ({head['quota_total'] / head['target']:.2f}× target, "
                            f"{head['quota_method']}; {head['flagged_quotas']} flagged)")
    table.add_row("revenue P10 / P50 / P90", f"{_money(head['revenue_p10'])} / {_money(head['revenue_p50'])} / "
                                             f"{_money(head['revenue_p90'])}")
    table.add_row("P(hit target)", f"{head['p_hit_target']:.1%}")
    table.add_row("expected attainment rate", f"{head['attainment_rate_mean']:.1%} "
                                              f"({head['expected_reps_at_quota']:.1f} of {head['reps_with_quota']})")
    table.add_row("reps at risk (P(attain) < 30%)", f"{head['reps_at_risk']}")
    table.add_row("steps", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.steps))
    out.print(table)


@app.command("simulate")
def simulate_command(
    path: ScenarioPath,
    plan_dir: Annotated[Path | None, typer.Option("--plan", help="Run folder of a plan (its "
                                                  "plan/assignments.csv); default: today's owners.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials (default: the scenario's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed (default: the scenario's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes on this machine.")] = 1,
    dask: Annotated[str | None, typer.Option("--dask", help="Run on Dask: 'local' (a LocalCluster of --workers "
                                             "processes) or a scheduler address tcp://host:port.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/SCENARIO_NAME).")
                       ] = None,
    per_trial: Annotated[bool, typer.Option("--per-trial", help="Also write every trial: sim/trials.parquet "
                                            "(revenue per rep and company) and sim/monthly.parquet.")] = False,
) -> None:
    """Stress-test a plan by Monte Carlo: writes sim/reps.csv and sim/company.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tercap.runfolder import run_folder

    scenario = tercap.load(path)
    plan = _read_plan(plan_dir) if plan_dir else None
    started = time.perf_counter()
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("simulate", total=None)
        result = tercap.stress_test(scenario, plan, trials=trials, seed=seed, workers=workers, dask=dask,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    target = out_dir or Path("runs") / scenario.name
    with run_folder(target) as folder:
        folder.csv("sim/reps.csv", result.reps())
        folder.json("sim/company.json", result.company())
        if per_trial:
            folder.parquet("sim/trials.parquet", result.trials_frame())
            folder.parquet("sim/monthly.parquet", result.monthly_frame())
    figures = result.company()
    table = _table(f"Simulation: {result.trials:,} trials in {time.perf_counter() - started:.1f} s", "measure",
                   "value")
    table.add_row("revenue P10 / P50 / P90", f"{_money(figures['revenue_p10'])} / {_money(figures['revenue_p50'])} "
                                             f"/ {_money(figures['revenue_p90'])}")
    if figures["target"]:
        table.add_row("company target", _money(figures["target"]))
        table.add_row("P(hit target)", f"{figures['p_hit_target']:.1%}")
    if figures["attainment_rate_mean"] is not None:
        table.add_row("expected attainment rate", f"{figures['attainment_rate_mean']:.1%} "
                                                  f"({figures['expected_reps_at_quota']:.1f} of "
                                                  f"{figures['reps_with_quota']} reps at quota)")
    metrics = figures["metrics"]
    table.add_row("weighted pipeline", f"{_money(metrics['weighted_pipeline_value'])} of "
                                       f"{_money(metrics['open_pipeline_value'])} open")
    if metrics["average_won_deal_size"]:
        table.add_row("average won deal", _money(metrics["average_won_deal_size"]))
    out.print(table)
    out.print(f"quotas: {figures['quota_basis']}", highlight=False)
    out.print(f"pipeline model: {figures['parameters']}", highlight=False)
    out.print(f"run folder: {target}", highlight=False)


@app.command("calibrate")
def calibrate_command(path: ScenarioPath) -> None:
    """Fit the pipeline model to the scenario's deals: win and loss by deal age from every deal (open
    ones included), the market factor and arrivals; then the stage settings fitted from the closed deals,
    each with its uncertainty, and the notes of both."""
    from tercap.pipeline import TooLittleHistory, deal_table, fit_deal_model
    from tercap.pipeline.calibrate import calibrate

    scenario = tercap.load(path)
    if scenario.history is None or scenario.history.empty:
        raise TercapError(f"{path}: the scenario has no history table to calibrate from")
    try:
        model = fit_deal_model(deal_table(scenario))
    except TooLittleHistory as exc:
        raise TercapError(f"{path}: {exc}") from None
    summary = model.summary()
    deals = _table(f"Deal model as of {model.as_of} ({summary['won']:,} won, {summary['lost']:,} lost, "
                   f"{summary['open']:,} open)", "figure", "value")
    deals.add_row("new opportunity won, ever", f"{summary['win_rate_new_opportunity']:.1%}")
    deals.add_row("median days to a win", f"{summary['median_days_to_win']}")
    deals.add_row("oldest age at a win (days)", f"{summary['oldest_won_age_days']:,}")
    low, high = summary["market_sigma_interval"]
    measured = f" ({low:.0%} – {high:.0%}, {summary['market_months']} months)" \
        if summary["market_measured"] else " (assumed)"
    deals.add_row("market swing σ (a month's wins)", f"{summary['market_sigma']:.0%}{measured}")
    deals.add_row("new opportunities a day", f"{summary['arrivals_per_day']:.2f}")
    out.print(deals)
    open_now = deal_table(scenario).open
    if len(open_now):
        stale = model.is_stale(open_now["age"].to_numpy())
        out.print(f"open deals: {len(open_now):,}, of which stale (older than every won deal): {int(stale.sum()):,}",
                  highlight=False)
    calibration = calibrate(scenario)
    fitted = calibration.to_frame()
    table = _table(f"Stage settings from {len(scenario.history):,} closed opportunities", "parameter", "estimate",
                   "std error", "95% interval", "n")
    for row in fitted.itertuples(index=False):
        name = " ".join(str(part) for part in (row.parameter, row.segment, row.key) if part and part != "all")
        table.add_row(name, _figure(row.estimate), _figure(row.std_error), f"{_figure(row.low)} – {_figure(row.high)}",
                      f"{row.n:,}")
    out.print(table)
    for note in (*model.notes, *calibration.notes):
        out.print(f"[yellow]note:[/] {note}", highlight=False)


@app.command("backtest")
def backtest_command(
    path: ScenarioPath,
    as_of: Annotated[list[str] | None, typer.Option("--as-of", help="Origin date (YYYY-MM-DD), any day; repeat for "
                                                    "several (default: the quarter starts with a whole window "
                                                    "of data after them, at most 8).")] = None,
    months: Annotated[int, typer.Option("--months", min=1, max=24, help="Months forecast from each origin.")] = 3,
    trials: Annotated[int, typer.Option("--trials", min=100, help="Trials per forecast.")] = 2_000,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed (default: the scenario's).")] = None,
    samples: Annotated[bool, typer.Option("--samples", help="Also write every trial's value "
                                          "(backtest/samples.parquet), to score another target.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/SCENARIO_NAME).")
                       ] = None,
) -> None:
    """Forecast past windows from what was known at each origin (the deal model refitted there) and score
    them against what was won, beside the baselines: won from the pipeline open at the origin, and total
    won. Writes backtest/forecasts.csv, backtest/metrics.csv, backtest/summary.json and backtest/pit.png."""
    import datetime as dt

    from tercap.pipeline.backtest import backtest
    from tercap.plotting import pit_histogram
    from tercap.runfolder import run_folder

    origins = None
    if as_of:
        try:
            origins = [dt.date.fromisoformat(text.strip()) for text in as_of]
        except ValueError as exc:
            raise TercapError(f"--as-of: {exc} (expected YYYY-MM-DD)") from exc
    scenario = tercap.load(path)
    started = time.perf_counter()
    with err.status("backtesting …") as status:
        result = backtest(scenario, origins, months, trials=trials, seed=seed, keep_samples=samples,
                          progress=lambda done, total: status.update(f"backtesting: origin {done} of {total} …"))
    target = out_dir or Path("runs") / scenario.name
    metrics = result.metrics()
    with run_folder(target) as folder:
        folder.csv("backtest/forecasts.csv", result.forecasts)
        folder.csv("backtest/metrics.csv", metrics)
        folder.json("backtest/summary.json", result.summary())
        if result.samples is not None:
            folder.parquet("backtest/samples.parquet", result.samples)
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6.5, 3.5), layout="constrained")
        pit_histogram(result, ax=figure.add_subplot())
        figure.savefig(folder.path("backtest/pit.png"), dpi=110)
    forecasts = result.forecasts
    for name, label in (("open", "won from the pipeline open at the origin"), ("total", "total won")):
        rows = forecasts[(forecasts["target"] == name) & (forecasts["method"] == "tercap")]
        table = _table(f"{label.capitalize()}, {months} month(s)", "origin", "actual", "P10", "P50", "P90",
                       "P50 error", "in P10–P90")
        for row in rows.itertuples(index=False):
            table.add_row(str(row.origin), _short_money(row.actual), _short_money(row.p10), _short_money(row.p50),
                          _short_money(row.p90), "—" if row.error != row.error else f"{row.error:+.0%}",
                          "yes" if row.covered80 else "[yellow]no[/]")
        out.print(table)
    accuracy = _table(f"Accuracy ({result.trials:,} trials, {time.perf_counter() - started:.1f} s)", "target · method",
                      "MAPE", "bias", "CRPS", "P10–90", "P05–95", "tercap better")
    for row in metrics.itertuples(index=False):
        better = "—" if row.beats is None else \
            f"{'yes' if row.beats else '[yellow]no[/]'} ({int(row.origins - row.origins_better)}/{int(row.origins)})"
        accuracy.add_row(f"{row.target} · {row.method}", _percent(row.mape), _percent(row.bias, signed=True),
                         f"{row.crps:.3f}", _percent(row.coverage80), _percent(row.coverage90), better)
    out.print(accuracy)
    out.print("CRPS is relative to the mean actual (lower is better).", highlight=False)
    out.print("P10–P90 should hold the actual about 80% of the time, P05–P95 90%.", highlight=False)
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"run folder: {target}", highlight=False)


def _short_money(value: float) -> str:
    """An amount in at most 7 characters: 950, 12.3k, 4.56M."""
    if value != value:
        return "—"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:,.0f}"


def _percent(value: float, signed: bool = False) -> str:
    if value != value:
        return "—"
    return f"{value:+.0%}" if signed else f"{value:.0%}"


def _figure(value: float) -> str:
    """A fitted value as a reader wants it: whole numbers with separators, small ones to 3 decimals."""
    if value != value:  # NaN
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.4g}"


class _SavedPlan:
    """A plan read back from a run folder: what simulation needs of it."""

    def __init__(self, assignments: pd.DataFrame) -> None:
        self.assignments = assignments


def _read_plan(run_dir: Path) -> _SavedPlan:
    path = run_dir / "plan" / "assignments.csv"
    if not path.is_file():
        raise TercapError(f"{path}: no plan there (run `tercap plan` first)")
    table = pd.read_csv(path, dtype={"account_id": str, "rep_id": str}, keep_default_na=False)
    missing = {"account_id", "rep_id"} - set(table.columns)
    if missing:
        raise TercapError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    table["rep_id"] = table["rep_id"].replace("", None)
    return _SavedPlan(table)


def _print_plan(result: object, seconds: float, target: Path | None) -> None:
    from tercap.plan import Plan

    assert isinstance(result, Plan)
    stats, kpis = result.stats, result.kpis
    gap = "—" if stats.gap is None else f"{stats.gap:.2%}"
    bound = "none" if stats.bound is None else f"{stats.bound:,.2f}"
    how = (f"{stats.backend}, {stats.profile} profile" if stats.backend != "none" else
           f"{stats.solver_status}")
    out.print(f"[green]✓[/] plan [bold]{stats.status.value}[/] in {seconds:.1f} s: objective "
              f"{stats.objective:,.2f}, bound {bound}, gap {gap} ({how})", highlight=False)
    table = _table("Plan", "measure", "value")
    rows = [("utilisation min – max", f"{kpis['utilisation_min']:.0%} – {kpis['utilisation_max']:.0%}"),
            ("utilisation CV", f"{kpis['utilisation_cv']:.3f}"),
            ("potential vs target CV", f"{kpis['potential_share_cv']:.3f}"),
            ("accounts moved", f"{kpis['accounts_moved']:,} ({kpis['accounts_moved_share']:.0%}; "
                               f"{kpis['potential_moved_share']:.0%} of potential)"),
            ("mean travel", f"{kpis['mean_travel_km']:,.0f} km"),
            ("unassigned accounts", f"{kpis['unassigned_accounts']:,}")]
    if stats.reached_accounts:
        rows.append(("accounts beyond their nearest reps", f"{stats.reached_accounts:,} (where the bands need it)"))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    terms = _table("Objective terms", "term", "value", "weight", "weighted")
    for name, value in stats.terms.items():
        weight = stats.weights.get(name, 0.0)
        terms.add_row(name, f"{value:,.3f}", f"{weight:g}", f"{weight * value:,.3f}")
    out.print(terms)
    if target is not None:
        out.print(f"run folder: {target}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=argv, prog_name="tercap")  # usage errors are printed by typer and exit with 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except ScenarioError as exc:
        _print_problems(exc.errors, f"✗ the scenario has {exc.error_count} error(s):", "bold red")
        _print_problems(exc.warnings, f"and {exc.warning_count} warning(s):", "yellow")
        return EXIT_BAD_INPUT
    except (TercapError, FileExistsError) as exc:
        err.print(f"[bold red]✗[/] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence: no traceback reaches a user
        if os.environ.get("TERCAP_DEBUG"):
            raise
        err.print(f"[bold red]internal error[/]: {type(exc).__name__}: {exc}\n"
                  "This is a bug in tercap; set TERCAP_DEBUG=1 to see the traceback.", highlight=False)
        return EXIT_INTERNAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
