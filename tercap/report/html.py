"""report.html: one self-contained page a director reads in five minutes.

Figures are PNGs embedded as data URIs (no file or network beside the page); every text that comes
from the scenario's data is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tercap.run import PlanningRun
    from tercap.scenario import Scenario

MOVED_SHOWN = 25  # moved accounts listed, largest potential first
DPI = 110

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2733;background:#f4f6f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #d5dde8;padding-bottom:4px}
.lede{color:#4a5868;margin:0 0 18px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#66758a}
.kpi .value{font-size:24px;font-weight:600;margin-top:4px}.kpi .note{font-size:12px;color:#66758a;margin-top:2px}
.kpi.warn .value{color:#b03a2e}.kpi.good .value{color:#2e7d4f}
figure{background:#fff;border-radius:8px;padding:10px;margin:12px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:13px;color:#4a5868;margin-top:6px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:5px 8px;border-bottom:1px solid #e3e8ef;text-align:left}th{background:#eef2f7;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.flag td{background:#fdf0ee}
.scroll{max-height:460px;overflow:auto;border-radius:8px}
.notes{font-size:13px;color:#4a5868}
"""


def render_report(run: PlanningRun) -> str:
    """The report of a planning run as one HTML document."""
    scenario = run.scenario
    settings = scenario.settings
    head = run.headline()
    title = f"{scenario.name}: {settings.period.label or settings.period.start}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)} · tercap plan</title>", f"<style>{STYLE}</style>", "</head>", "<body>", "<main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="lede">{escape(scenario.settings.description or "")} Plan of {len(scenario.accounts):,} '
        f"accounts and {len(run.plan.reps):,} reps, {settings.period.months} months from "
        f"{escape(str(settings.period.start))}; made {dt.date.today().isoformat()} by tercap.</p>",
        _kpis(run, head)]
    if run.territories is not None:
        parts += _territory_section(run)
    parts += _balance_section(run)
    parts += _map_section(run)
    if run.quotas is not None:
        parts += _quota_section(run)
    if run.simulation is not None:
        parts += _risk_section(run)
    parts += _moved_section(run)
    parts += _about_section(run)
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


# -- pieces -----------------------------------------------------------------------------------------


def _kpi(label: str, value: str, note: str = "", tone: str = "") -> str:
    return (f'<div class="kpi {tone}"><div class="label">{escape(label)}</div><div class="value">{escape(value)}'
            f'</div><div class="note">{escape(note)}</div></div>')


def _kpis(run: PlanningRun, head: dict[str, Any]) -> str:
    cards = [
        _kpi("workload balance", f"{_pct(head['utilisation_min'])} – {_pct(head['utilisation_max'])}",
             f"utilisation range; spread (CV) {head['utilisation_cv']:.3f}"),
        _kpi("accounts moved", f"{head['accounts_moved']:,}",
             f"{_pct(head['accounts_moved_share'])} of accounts, {_pct(head['potential_moved_share'])} of potential"),
    ]
    if run.territories is not None:
        worst = head["territory_worst_deviation"]
        limit = next(iter(run.territories.tolerances.values()), None)
        cards.append(_kpi("territories", f"{head['territories']:,}",
                          f"worst {next(iter(run.territories.tolerances), 'workload')} deviation {worst:.1%}"
                          + (f" (±{limit:.1%} asked)" if limit is not None else "")
                          + ("" if head["territories_contiguous"] else "; not all contiguous"),
                          "warn" if not run.territories.balanced else ""))
    if run.complete:
        hit = head["p_hit_target"]
        tone = "good" if hit is not None and hit >= 0.7 else "warn" if hit is not None and hit < 0.5 else ""
        cards += [
            _kpi("target vs quotas", _money(head["target"]),
                 f"quotas sum to {_money(head['quota_total'])} "
                 f"({head['quota_total'] / head['target']:.2f}× target; {head['quota_method']})"),
            _kpi("P(hit target)", _pct(hit), f"over {head['trials']:,} simulated periods", tone),
            _kpi("expected attainment rate", _pct(head["attainment_rate_mean"]),
                 f"{head['expected_reps_at_quota']:.1f} of {head['reps_with_quota']} reps at quota; "
                 f"{head['reps_at_risk']} below {_pct(0.3)} odds"),
            _kpi("revenue P10 / P50 / P90", _money(head["revenue_p50"]),
                 f"P10 {_money(head['revenue_p10'])} · P90 {_money(head['revenue_p90'])}"),
        ]
    return '<section class="kpis">' + "".join(cards) + "</section>"


def _balance_section(run: PlanningRun) -> list[str]:
    from tercap.plotting import balance, potential_and_quota

    width = max(7.0, 0.2 * len(run.plan.reps) + 2)
    out = ["<h2>Balance</h2>",
           _figure(lambda ax: balance(run.plan, ax=ax), (width, 3.8),
                   "Utilisation (workload ÷ capacity) of each rep in the plan (bars) and today (circles).")]
    if run.quotas is not None:
        out.append(_figure(lambda ax: potential_and_quota(run.quotas, ax=ax), (width, 3.6),  # type: ignore[arg-type]
                           "Each rep's book potential over the period and its quota; a flagged quota in red."))
    return out


def _territory_section(run: PlanningRun) -> list[str]:
    from tercap.plotting import territory_maps

    plan = run.territories
    assert plan is not None
    names = rep_names(run.scenario)
    reps = plan.territories["rep_id"].fillna("").str.split(";")
    table = plan.territories.assign(name=reps.map(lambda ids: ", ".join(names.get(r, r) for r in ids if r)),
                                    contiguous=plan.territories["contiguous"].map({True: "yes", False: "no"}))
    settings = run.scenario.settings.territory
    inside = settings is not None and settings.account_level
    rebalanced = plan.trade_off is not None
    tolerances = ", ".join(f"{escape(m)} ±{t:.1%}" for m, t in plan.tolerances.items())
    lede = (f"<p>{len(plan.territories):,} territories "
            + ("rebalanced from today's" if rebalanced else "carved from the geo units")
            + (f", one map per segment ({escape(', '.join(plan.segments))})" if len(plan.segments) > 1 else "")
            + f"; balance asked: {tolerances}; {int(plan.units['moved'].sum()):,} units change rep. "
            + ("Accounts are assigned among their territory's reps." if inside else
               "Accounts follow their unit's territory.") + "</p>")
    out = ["<h2>Territories</h2>", lede, embedded_figure(territory_maps(plan, run.scenario),
                                                       "Units coloured by territory, borders in black, rep homes "
                                                       "as triangles.")]
    if plan.violations:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(v)}</li>" for v in plan.violations[:20]) + "</ul>")
    out.append(html_table(table, [
        ("segment", "segment", "text"), ("territory_id", "territory", "text"), ("name", "rep", "text"),
        ("units", "units", "number"), ("workload", "workload h", "number"), ("potential", "potential", "money"),
        ("accounts", "accounts", "number"), ("compactness", "radius km", "number"),
        ("contiguous", "contiguous", "text")]))
    return out


def _map_section(run: PlanningRun) -> list[str]:
    from tercap.plotting import account_map

    return ["<h2>Map</h2>",
            _figure(lambda ax: account_map(run.plan, run.scenario, ax=ax), (10.0, 6.0),
                    "Accounts coloured by their rep in the plan (size: potential); ringed: moved; "
                    "triangles: rep homes.")]


def _quota_section(run: PlanningRun) -> list[str]:
    quotas = run.quotas
    assert quotas is not None
    names = rep_names(run.scenario)
    table = quotas.table.copy()
    table.insert(1, "name", table["rep_id"].map(names).fillna(""))
    summary = quotas.summary()
    lede = (f"<p>Method <b>{escape(quotas.method)}</b>; target {_money(quotas.target)} "
            f"({escape(quotas.target_source)}) × over-assignment {summary['over_assignment']:.2f}. "
            f"Last year: {escape(quotas.last_year_source)}."
            + (f" Every rep's probability of reaching quota: {_pct(quotas.probability)}." if quotas.probability
               else "") + f" {summary['flagged_reps']} quota(s) flagged.</p>")
    columns = [("rep_id", "rep", "text"), ("name", "name", "text"), ("quota", "quota", "money"),
               ("potential", "potential", "money"), ("last_year_actual", "last year", "money"),
               ("weighted_pipeline", "weighted pipeline", "money"), ("ramp_factor", "ramp", "pct"),
               ("p_attain", "P(attain)", "pct"), ("basis", "basis", "text"), ("flag", "check", "text")]
    return ["<h2>Quotas</h2>", lede, html_table(table, columns, flag_column="flag")]


def _risk_section(run: PlanningRun) -> list[str]:
    from tercap.plotting import attainment_odds, attainment_rate, revenue_fan

    simulation = run.simulation
    assert simulation is not None
    width = max(7.0, 0.2 * len(simulation.rep_ids) + 2)
    return ["<h2>Risk</h2>",
            f"<p>{simulation.trials:,} simulated periods (seed {simulation.seed}); pipeline model: "
            f"{escape(simulation.parameters)}.</p>",
            '<div class="pair">',
            _figure(lambda ax: revenue_fan(simulation, ax=ax), (6.4, 4.0),
                    "Cumulative closed revenue: median, P25–P75 and P10–P90 bands, and the target."),
            _figure(lambda ax: attainment_rate(simulation, ax=ax), (6.4, 4.0),
                    "Share of reps at or above quota, across simulated periods."),
            "</div>",
            _figure(lambda ax: attainment_odds(simulation, ax=ax, threshold=0.5), (width, 3.6),
                    "Each rep's probability of reaching quota (red: below 50%).")]


def _moved_section(run: PlanningRun) -> list[str]:
    assignments = run.plan.assignments
    moved = assignments[assignments["moved"]].copy()
    names = rep_names(run.scenario)
    accounts = run.scenario.accounts.set_index("account_id")
    moved["account"] = moved["account_id"].map(accounts["name"]).fillna("")
    moved["from"] = moved["previous_rep_id"].map(lambda r: f"{r} ({names.get(r, '')})" if pd.notna(r) and r else "")
    moved["to"] = moved["rep_id"].map(lambda r: f"{r} ({names.get(r, '')})" if pd.notna(r) and r else "unassigned")
    moved = moved.sort_values("potential", ascending=False)
    reps = run.plan.reps
    busiest = reps.assign(net=reps["moved_in"] - reps["moved_out"]).sort_values("net", key=np.abs, ascending=False)
    out = ["<h2>What moved</h2>",
           f"<p>{len(moved):,} accounts change owner ({_money(float(moved['potential'].sum()))} of potential). "
           f"The {min(MOVED_SHOWN, len(moved))} largest:</p>"]
    if len(moved):
        out.append(html_table(moved.head(MOVED_SHOWN), [
            ("account_id", "account", "text"), ("account", "name", "text"), ("from", "from", "text"),
            ("to", "to", "text"), ("potential", "potential", "money"), ("workload_hours", "hours / year", "number"),
            ("distance_km", "km from new rep", "number")]))
        out.append("<p>Reps whose books change most (accounts in and out):</p>")
        out.append(html_table(busiest.head(10), [("rep_id", "rep", "text"), ("moved_in", "in", "number"),
                                             ("moved_out", "out", "number"), ("accounts", "accounts now", "number"),
                                             ("utilisation", "utilisation", "pct")]))
    return out


def _about_section(run: PlanningRun) -> list[str]:
    stats = run.plan.stats
    gap = "—" if stats.gap is None else f"{stats.gap:.2%}"
    steps = ", ".join(f"{escape(step)} {seconds:.1f} s" for step, seconds in run.steps)
    notes = "".join(f"<li>{escape(note)}</li>" for note in run.notes)
    return ["<h2>About this run</h2>",
            f'<p class="notes">Assignment: {escape(stats.status.value)} ({escape(stats.backend)}, '
            f"{escape(stats.profile)} profile), objective {stats.objective or 0:,.3f}, "
            f"within {gap} of the proven bound; every hard constraint checked independently. Steps: {steps}.</p>"
            + (f'<ul class="notes">{notes}</ul>' if notes else "")]


# -- helpers ----------------------------------------------------------------------------------------


def _figure(draw: Callable[[Axes], object], size: tuple[float, float], caption: str) -> str:
    """Draw on a fresh figure (no pyplot state) and embed it as a PNG data URI."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    draw(figure.add_subplot())
    return embedded_figure(figure, caption)


def embedded_figure(figure: Figure, caption: str) -> str:
    """A figure drawn elsewhere, embedded as a PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def html_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]], flag_column: str | None = None) -> str:
    """`frame` as an HTML table: columns (name, label, kind), kind text, money, pct or a number; names
    escaped; rows whose `flag_column` is set are marked."""
    head = "".join(f"<th>{escape(label)}</th>" for _, label, _ in columns)
    rows = []
    for record in frame.to_dict("records"):
        flagged = flag_column is not None and bool(record.get(flag_column))
        cells = "".join(_cell(record.get(name), kind) for name, _, kind in columns)
        rows.append(f'<tr class="flag">{cells}</tr>' if flagged else f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _cell(value: Any, kind: str) -> str:
    if kind == "text":
        return f"<td>{escape('' if value is None or value != value else str(value))}</td>"
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return '<td class="num">—</td>'
    text = {"money": _money, "pct": _pct}.get(kind, lambda v: f"{v:,.0f}")(float(value))
    return f'<td class="num">{escape(text)}</td>'


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.2f} M"
    return f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.0%}"


def rep_names(scenario: Scenario) -> dict[str, str]:
    """rep_id → display name, planned hires included."""
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    return dict(zip(reps["rep_id"], reps["name"].fillna(reps["rep_id"]), strict=True))
