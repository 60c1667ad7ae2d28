"""Territory design: geo units → contiguous, balanced, compact territories → reps.

`design_territories(scenario)` carves the units into one territory per rep (or `territory.count`),
`rebalance_territories(scenario)` starts from today's territories (each unit with the rep who owns
most of its workload) and moves as few units as it can. Both are checked independently
(`check.check_territories`): every territory contiguous, balance within tolerance, pinned units held.

With `territory.by_segment` (the default) each segment's reps share the units among themselves,
measured by that segment's accounts only: an enterprise map overlays the SMB map, as sales teams
are organised. `account_owners(plan, scenario)` turns a plan into an owner per account (an account
follows its unit's territory in its segment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from tercap.errors import TercapError
from tercap.scenario import Scenario
from tercap.scenario.schema import Territory
from tercap.scenario.validation import require_coordinates
from tercap.territory.carve import CarveSettings, Carving, _Search, carve, refine
from tercap.territory.check import check_territories
from tercap.territory.exact import EXACT_MAX_UNITS, exact_carving
from tercap.territory.labeling import cut_edge_carving
from tercap.territory.units import UnitGraph, planar_km, unit_graph

__all__ = ["TerritoryPlan", "design_territories", "rebalance_partition", "rebalance_territories", "unit_graph"]


@dataclass(frozen=True, eq=False)
class TerritoryPlan:
    """Units → territories → reps, with per-territory figures and the independent check's findings."""

    scenario: str
    units: pd.DataFrame  # unit_id, territory_id, rep_id, moved, segment ("all": one carving of every account)
    territories: pd.DataFrame  # territory_id, rep_id, units, workload, potential, accounts, compactness,
    #                            contiguous, target_share (of each measure in its segment), segment
    tolerances: dict[str, float]
    seconds: float
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    trade_off: pd.DataFrame | None = field(default=None)  # rebalancing: units moved → worst deviation
    method: str = "heuristic"  # or "exact" (the MIP of tercap.territory.exact)
    objective: float | None = None  # exact: the model's objective, its bound and their gap
    bound: float | None = None

    @property
    def balanced(self) -> bool:
        return not self.violations

    @property
    def segments(self) -> list[str]:
        return list(dict.fromkeys(self.territories["segment"]))

    def worst_deviation(self, measure: str = "workload") -> float:
        """The largest |load ÷ target − 1| over territories; a target is the territory's share of its
        segment's total."""
        load = self.territories[measure]
        target = load.groupby(self.territories["segment"]).transform("sum") * self.territories["target_share"]
        deviation = np.abs(load / target.where(target > 0) - 1.0)
        return float(deviation.max()) if deviation.notna().any() else 0.0

    def summary(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "method": self.method, "objective": self.objective, "bound": self.bound,
                "territories": len(self.territories), "units": len(self.units),
                "segments": self.segments, "units_moved": int(self.units["moved"].sum()),
                "seconds": round(self.seconds, 3),
                "tolerances": self.tolerances,
                "worst_deviation": {m: self.worst_deviation(m) for m in ("workload", "potential", "accounts")},
                "all_contiguous": bool(self.territories["contiguous"].all()),
                "violations": list(self.violations), "notes": list(self.notes)}

    def __repr__(self) -> str:
        return (f"<TerritoryPlan {self.scenario!r}: {len(self.territories)} territories of {len(self.units):,} units, "
                f"worst workload deviation {self.worst_deviation():.2%}"
                + ("" if self.balanced else f", {len(self.violations)} violation(s)") + ">")

    def _repr_html_(self) -> str:
        return (f"<div><b>{len(self.territories)} territories</b> of {len(self.units):,} units; worst workload "
                f"deviation {self.worst_deviation():.2%}"
                + self.territories.to_html(index=False, escape=True, float_format=lambda v: f"{v:,.2f}") + "</div>")


def _settings(scenario: Scenario) -> Territory:
    return scenario.settings.territory or Territory()


ALL = "all"  # the segment name of a carving that covers every account
REP_SEPARATOR = ";"  # between the reps of a territory that has several
EXPERIENCE_FIT = 1.0  # weight of experience × demand in placing reps (distance counts 1 per median distance)
MAX_EXPERIENCE_YEARS = 10.0  # experience beyond this counts the same
FINISH_SHARE = 0.05  # of the time limit kept for building and checking the plan once the carving stops


@dataclass(frozen=True, eq=False)
class _Team:
    """The reps and accounts one carving covers: one segment's, or everyone's (segment "all")."""

    scenario: Scenario
    segment: str
    reps: pd.DataFrame  # active reps and planned hires
    accounts: pd.DataFrame  # each with a geo_unit of the scenario's units

    @property
    def rep_ids(self) -> list[str]:
        return self.reps["rep_id"].tolist()

    def capacity_shares(self) -> np.ndarray:
        """Each rep's share of the team's capacity over the period (ramp, start and end dates)."""
        from tercap.scenario.capacity import period_capacity_hours

        hours = period_capacity_hours(self.scenario.settings, self.reps).to_numpy(dtype=float)
        return hours / hours.sum() if hours.sum() > 0 else np.full(len(hours), 1.0 / max(len(hours), 1))


def _teams(scenario: Scenario) -> tuple[list[_Team], list[str]]:
    """The carvings the scenario asks for, and notes on accounts no carving covers."""
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    reps = reps[reps["capacity_hours"].fillna(0) > 0].reset_index(drop=True)
    require_coordinates(reps, "reps", "rep_id", "territory design")
    accounts = _located_accounts(scenario)
    segments = reps["segment"].dropna().unique().tolist() if "segment" in reps else []
    if not _settings(scenario).by_segment or not segments or "segment" not in accounts:
        return [_Team(scenario, ALL, reps, accounts)], []
    teams, notes = [], []
    for segment in sorted(segments):
        teams.append(_Team(scenario, str(segment), reps[reps["segment"] == segment].reset_index(drop=True),
                           accounts[accounts["segment"] == segment].reset_index(drop=True)))
    orphans = accounts[~accounts["segment"].isin(segments)]
    if len(orphans):
        names = ", ".join(sorted(map(str, orphans["segment"].unique())))
        notes.append(f"{len(orphans):,} account(s) of segment(s) {names} have no rep of their segment and are in "
                     "no territory")
    return teams, notes


def _located_accounts(scenario: Scenario) -> pd.DataFrame:
    """The accounts, each with a geo unit: its own, else the unit whose centroid is nearest."""
    accounts = scenario.accounts
    units = scenario.geo_units
    if units is None or units.empty:
        raise TercapError("territory design needs a geo_units table (units with centroids)")
    known = accounts["geo_unit"].isin(units["unit_id"]) if "geo_unit" in accounts else \
        pd.Series(False, index=accounts.index)
    if known.all():
        return accounts
    lost = accounts.loc[~known]
    require_coordinates(lost, "accounts", "account_id", "territory design")
    xy = planar_km(units["lat"].to_numpy(dtype=float), units["lon"].to_numpy(dtype=float),
                   float(units["lat"].mean()))
    points = planar_km(lost["lat"].to_numpy(dtype=float), lost["lon"].to_numpy(dtype=float), float(units["lat"].mean()))
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(xy).query(points)
    accounts = accounts.copy()
    accounts.loc[~known, "geo_unit"] = units["unit_id"].to_numpy(dtype=object)[nearest]
    return accounts


def _nearest_unit(graph: UnitGraph, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    xy = graph.project(lat, lon)
    return np.argmin(((xy[:, None, :] - graph.xy[None, :, :]) ** 2).sum(axis=2), axis=1)


def _current_rep_of_units(team: _Team, graph: UnitGraph) -> np.ndarray:
    """Per unit, the rep of the team who owns most of its workload today ('' where nobody does)."""
    table = team.accounts.dropna(subset=["current_owner", "geo_unit"])
    if table.empty:
        return np.full(graph.size, "", dtype=object)
    load = table.groupby(["geo_unit", "current_owner"])["workload_hours"].sum().reset_index()
    top = load.sort_values(["geo_unit", "workload_hours", "current_owner"], ascending=[True, False, True])
    owner = top.drop_duplicates("geo_unit").set_index("geo_unit")["current_owner"]
    return pd.Series(graph.unit_ids).map(owner).fillna("").to_numpy(dtype=object)


def _pinned(team: _Team, graph: UnitGraph, rep_ids: list[str], keep_home: bool
            ) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """Home units (fixed) and units holding locked accounts (locked), as unit → territory (rep order)."""
    notes: list[str] = []
    fixed: dict[int, int] = {}
    if keep_home:
        for territory, unit in enumerate(_home_units(team, graph, rep_ids).tolist()):
            if unit in fixed:
                notes.append(f"{rep_ids[territory]} shares home unit {graph.unit_ids[unit]} with "
                             f"{rep_ids[fixed[unit]]}: only the first keeps it")
                continue
            fixed[unit] = territory
    locked: dict[int, int] = {}
    units = team.scenario.geo_units
    if units is not None and "locked" in units:
        owner = _current_rep_of_units(team, graph)
        rep_position = {rep: i for i, rep in enumerate(rep_ids)}
        for unit in np.flatnonzero(units["locked"].fillna(False).astype(bool).to_numpy()).tolist():
            if owner[unit] == "":
                if team.segment == ALL:
                    raise TercapError(f"geo unit {graph.unit_ids[unit]} is locked but no rep owns accounts there "
                                      "today")
                continue  # none of this segment's accounts there: nothing of this segment to lock
            if owner[unit] not in rep_position:
                raise TercapError(f"geo unit {graph.unit_ids[unit]} is locked to {owner[unit]}, who is not an "
                                  "active rep" + ("" if team.segment == ALL else f" of segment {team.segment}"))
            territory = rep_position[owner[unit]]
            if fixed.get(unit, territory) != territory:
                raise TercapError(f"geo unit {graph.unit_ids[unit]} is locked to {owner[unit]} and is the home of "
                                  f"{rep_ids[fixed[unit]]}")
            locked[unit] = territory
    return fixed, locked, notes


def design_territories(scenario: Scenario, count: int | None = None, *, time_limit: float = 60.0,
                       seed: int = 0, starts: int = 4, method: str = "auto") -> TerritoryPlan:
    """Carve the scenario's geo units into territories and place a rep in each.

    One territory per rep (territory_id = rep_id) unless `count` (or `territory.count`) says otherwise;
    then territories are T001, T002, … and reps are matched to them (home distance, continuity) when the
    counts agree. With `territory.by_segment` each segment is carved for its own reps from its own
    accounts (the time limit is shared out by units × territories). `method`: "exact" (the MIP, around
    the reps' home units when they are kept), "heuristic", or "auto": exact up to EXACT_MAX_UNITS units
    without locked units, else heuristic."""
    teams, notes = _teams(scenario)
    count = count or _settings(scenario).count
    if count is not None and len(teams) > 1:
        raise TercapError(f"territory count {count} applies to one carving of every account; the scenario carves "
                          f"each of its {len(teams)} segments for its own reps (territory.by_segment): set "
                          "by_segment: false to give a count")
    plans = []
    for team in teams:
        share = time_limit * len(team.reps) / max(sum(len(t.reps) for t in teams), 1)
        plans.append(_design_team(team, count, time_limit=share if len(teams) > 1 else time_limit, seed=seed,
                                  starts=starts, method=method))
    return _combined(plans, notes)


def _combined(plans: list[TerritoryPlan], notes: list[str]) -> TerritoryPlan:
    """One plan of the segments' plans; violations and notes name their segment."""
    if len(plans) == 1:
        plan = plans[0]
        return dataclasses.replace(plan, notes=tuple(notes) + plan.notes) if notes else plan

    def named(plan: TerritoryPlan, lines: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{plan.segments[0]}: {line}" for line in lines)

    trade_offs = [p.trade_off.assign(segment=p.segments[0]) for p in plans if p.trade_off is not None]
    objectives = [p.objective for p in plans]
    bounds = [p.bound for p in plans]
    methods = sorted({p.method for p in plans})
    return TerritoryPlan(
        plans[0].scenario, pd.concat([p.units for p in plans], ignore_index=True),
        pd.concat([p.territories for p in plans], ignore_index=True), plans[0].tolerances,
        sum(p.seconds for p in plans), tuple(line for p in plans for line in named(p, p.violations)),
        tuple(notes) + tuple(line for p in plans for line in named(p, p.notes)),
        pd.concat(trade_offs, ignore_index=True) if trade_offs else None, "+".join(methods),
        sum(objectives) if None not in objectives else None,  # type: ignore[arg-type]
        sum(bounds) if None not in bounds else None)  # type: ignore[arg-type]


def _design_team(team: _Team, count: int | None, *, time_limit: float, seed: int, starts: int, method: str
                 ) -> TerritoryPlan:
    """One team's carving (see design_territories)."""
    began = time.perf_counter()
    settings = _settings(team.scenario)
    graph = unit_graph(team.scenario, team.accounts)
    rep_ids = team.rep_ids
    if not rep_ids:
        raise TercapError("territory design: no active rep" + ("" if team.segment == ALL else
                                                              f" in segment {team.segment}"))
    count = count or len(rep_ids)
    per_rep = count == len(rep_ids)
    fixed, locked, notes = _pinned(team, graph, rep_ids, settings.keep_home_units) if per_rep else ({}, {}, [])
    carve_settings = CarveSettings(count=count, tolerances=dict(settings.balance), compactness=settings.compactness,
                                   starts=starts, time_limit=time_limit * (1 - FINISH_SHARE), seed=seed,
                                   shares=tuple(team.capacity_shares()) if per_rep and settings.shares == "capacity"
                                   else None)
    if graph.derived:
        notes.append("no adjacency table: units are adjacent along the Delaunay triangulation of their centroids")
    notes += _component_diagnosis(graph, count, dict(settings.balance))
    homes = _home_units(team, graph, rep_ids) if per_rep else None
    # unequal shares tie each territory to its rep: the exact model then needs every rep's home as a centre
    exact_fits = carve_settings.equal_shares or (homes is not None and len(set(homes.tolist())) == count)
    if method == "exact" or (method == "auto" and graph.size <= EXACT_MAX_UNITS and not locked and exact_fits):
        return _exact_plan(team, graph, carve_settings, rep_ids, fixed, homes, began, notes, per_rep)
    matched = per_rep and not fixed and not locked  # reps are placed after the carving
    try:
        if matched and not carve_settings.equal_shares:
            territory = _carve_for_reps(team, graph, carve_settings, began)
        else:
            territory = carve(graph, carve_settings, fixed, locked).territory
    except ValueError as exc:
        where = "" if team.segment == ALL else f" of segment {team.segment}"
        raise TercapError(f"territory design{where}: {exc}") from exc
    if matched and carve_settings.equal_shares:
        position = {rep: i for i, rep in enumerate(rep_ids)}
        territory = np.array([position[rep] for rep in _match_reps(team, graph, territory, rep_ids)])[territory]
    if per_rep:
        names, reps_of = rep_ids, rep_ids
    else:
        names = [f"T{t + 1:03d}" for t in range(count)]
        reps_of = [REP_SEPARATOR.join(group) for group in _group_reps(team, graph, territory, count)]
    plan = _plan(team, graph, territory, names, reps_of, {**locked, **fixed}, settings, began, notes,
                 carve_settings.share_array())
    if fixed and not plan.balanced:
        plan = dataclasses.replace(plan, notes=(*plan.notes, _without_homes(team, graph, carve_settings, locked),
                                                *_home_catchments(graph, carve_settings, fixed, names)))
    return plan


def _without_homes(team: _Team, graph: UnitGraph, settings: CarveSettings, locked: dict[int, int]) -> str:
    """A note on how far balance gets when the reps' home units are not kept (a short carving)."""
    free = dataclasses.replace(settings, time_limit=max(settings.time_limit / 4, 1.0))
    if locked or settings.equal_shares:
        territory = carve(graph, free, {}, locked).territory
    else:
        territory = _carve_for_reps(team, graph, free, time.perf_counter())
    search = _Search(graph, free, territory, set())
    first = next(iter(free.tolerances))
    return (f"keeping every rep's home unit in the rep's territory, the carving found is out of tolerance; "
            f"without that rule (territory.keep_home_units: false) the worst {first} deviation found is "
            f"{_worst(search):.2%} against ±{free.tolerances[first]:.2%}")


def _home_catchments(graph: UnitGraph, settings: CarveSettings, fixed: dict[int, int], names: list[str],
                     shown: int = 3) -> list[str]:
    """A note on where the kept homes lie against where the work is: each home's catchment (the units
    nearer to it than to any other kept home) holds a share of the first measure, set beside its
    territory's share; the `shown` furthest above and below, when some lie beyond the tolerance."""
    first = next(iter(settings.tolerances))
    values = np.asarray(graph.measures[first], dtype=float)
    if len(fixed) < 2 or values.sum() <= 0:
        return []
    home_units = np.fromiter(fixed.keys(), dtype=np.int64)
    home_territory = np.fromiter(fixed.values(), dtype=np.int64)
    distance = ((graph.xy[:, None, :] - graph.xy[home_units][None, :, :]) ** 2).sum(axis=2)
    catchment = np.bincount(np.argmin(distance, axis=1), values, minlength=home_units.size) / values.sum()
    share = settings.share_array()[home_territory]
    ratio = catchment / share
    tolerance = settings.tolerances[first]
    order = np.argsort(ratio, kind="stable")
    above = [i for i in order[::-1][:shown] if ratio[i] > 1 + tolerance]
    below = [i for i in order[:shown] if ratio[i] < 1 - tolerance]
    if not above and not below:
        return []

    def listed(indices: list[int]) -> str:
        return ", ".join(f"{names[home_territory[i]]} {catchment[i]:.1%} against {share[i]:.1%}" for i in indices)

    parts = [f"most above: {listed(above)}" if above else "", f"most below: {listed(below)}" if below else ""]
    return [f"the units nearer to a rep's home than to any other kept home hold {first} far from that rep's "
            f"share ({'; '.join(p for p in parts if p)}): territories that keep these homes must reach past "
            "other reps' homes, or the homes lie where the work is not"]


def _carve_for_reps(team: _Team, graph: UnitGraph, settings: CarveSettings, began: float) -> np.ndarray:
    """Territories of unequal shares belong to their reps: carve equal shares, place the reps (home
    distance, continuity), refine towards each rep's share; again from other seeds while a territory
    is out of tolerance and time is left. Territory t is rep t's."""
    rep_ids = team.rep_ids
    position = {rep: i for i, rep in enumerate(rep_ids)}
    deadline = began + settings.time_limit
    best: Carving | None = None
    attempt = 0
    while best is None or (best.excess > 0 and deadline - time.perf_counter() > 0):
        left = deadline - time.perf_counter()
        equal = carve(graph, dataclasses.replace(settings, shares=None, starts=1, seed=settings.seed + attempt,
                                                 time_limit=max(left / 4, 0.5), recombine=False))
        territory = np.array([position[rep] for rep in _match_reps(team, graph, equal.territory, rep_ids)]
                             )[equal.territory]
        result = refine(graph, settings, territory, set(), max(deadline - time.perf_counter(), 1.0) / 2)
        if best is None or (result.excess, result.compactness) < (best.excess, best.compactness):
            best = result
        attempt += 1
    assert best is not None
    return best.territory


def _home_units(team: _Team, graph: UnitGraph, rep_ids: list[str]) -> np.ndarray:
    """Per rep, the unit whose centroid is nearest the rep's home."""
    reps = team.reps.set_index("rep_id").loc[rep_ids]
    return _nearest_unit(graph, reps["lat"].to_numpy(dtype=float), reps["lon"].to_numpy(dtype=float))


def _exact_plan(team: _Team, graph: UnitGraph, carving: CarveSettings, rep_ids: list[str], fixed: dict[int, int],
                home_units: np.ndarray | None, began: float, notes: list[str], per_rep: bool) -> TerritoryPlan:
    """The exact model's plan: around the home units when every rep keeps one (or when the shares are
    unequal: each territory is its rep's), else free centres."""
    settings = _settings(team.scenario)
    count, time_limit = carving.count, carving.time_limit
    homes = None
    if fixed and len(fixed) == count:
        homes = np.array([unit for unit, _ in sorted(fixed.items(), key=lambda item: item[1])])
    elif not carving.equal_shares and home_units is not None and len(set(home_units.tolist())) == count:
        homes = home_units
    elif fixed:
        notes.append("reps share home units: the exact model places the centres freely")
    shares = None if carving.equal_shares or homes is None else carving.share_array()
    if shares is None and not carving.equal_shares:
        raise TercapError("territory design (exact model): territories of unequal capacity shares need each rep's "
                          "own home unit as a centre, and reps share home units; use the heuristic")
    # the heuristic's plan first (a few seconds), handed to the solver as its first incumbent
    start = None
    with contextlib.suppress(ValueError):  # no heuristic plan (e.g. too few territories): the solver alone
        start = carve(graph, dataclasses.replace(carving, starts=2, time_limit=min(10.0, time_limit / 4)),
                      {int(u): j for j, u in enumerate(homes)} if homes is not None else {}).territory
    if settings.compactness == "boundary" and homes is None:  # free territories, fewest cut edges: labels
        result = cut_edge_carving(graph, count, dict(settings.balance), time_limit, start=start)
    else:
        result = exact_carving(graph, count, dict(settings.balance), settings.compactness, homes, time_limit,
                               start=start, shares=shares)
    if result.territory is None:
        word = "proven infeasible" if result.status.value == "infeasible" else "no plan in the time limit"
        raise TercapError(f"territory design (exact model): {word} ({result.solver_status}); "
                          + ("; ".join(notes) if notes else "widen the balance tolerance or use more territories"))
    territory = result.territory
    if homes is not None:  # territory j is centred at homes[j], the home of rep j
        order = {int(unit): j for j, unit in enumerate(homes)}
        territory = np.array([order[int(result.centres[t])] for t in territory])
        names, reps_of = rep_ids, rep_ids
    elif per_rep:
        names = rep_ids
        reps_of = _match_reps(team, graph, territory, rep_ids)
    else:
        names, reps_of = [f"T{t + 1:03d}" for t in range(count)], [""] * count
    gap = result.gap
    notes.append(f"exact model: {result.status.value} ({result.solver_status}), objective {result.objective:.6g}, "
                 f"bound {result.bound:.6g}" + (f", gap {gap:.2%}" if gap is not None else ""))
    plan = _plan(team, graph, territory, names, reps_of, fixed if homes is not None else {}, settings, began,
                 notes, carving.share_array() if shares is not None else None)
    return dataclasses.replace(plan, method="exact", objective=result.objective, bound=result.bound)


def _component_diagnosis(graph: UnitGraph, count: int, tolerances: dict[str, float]) -> list[str]:
    """Parts of the unit graph whose whole territories cannot be within tolerance, in words: a part with
    k territories holds its own total, so its territories average total ÷ k whatever the carving."""
    from tercap.territory.carve import territories_per_component

    first = next(iter(tolerances))
    measure = graph.measures[first]
    share = territories_per_component(graph, count, measure)
    mean = float(measure.sum()) / count
    lines = []
    for component, k in enumerate(share.tolist()):
        units = np.flatnonzero(graph.component == component)
        average = float(measure[units].sum()) / k
        off = average / mean - 1.0 if mean > 0 else 0.0
        if abs(off) > tolerances[first] + 1e-12:
            lines.append(f"{len(units):,} unit(s) from {graph.unit_ids[units[0]]} are not connected to the rest: "
                         f"their {k} territor{'y' if k == 1 else 'ies'} average {off:+.2%} {first} against the mean, "
                         f"beyond ±{tolerances[first]:.2%}; declare an adjacency link (e.g. a bridge or ferry) or "
                         "widen the tolerance")
    return lines


def _group_reps(team: _Team, graph: UnitGraph, territory: np.ndarray, count: int) -> list[list[str]]:
    """Several reps per territory (fewer territories than reps): each territory gets ⌊R/K⌋ or ⌈R/K⌉ reps
    by a linear assignment on home distance to its workload centre less the workload they own there;
    none when there are more territories than reps."""
    rep_ids = team.rep_ids
    if count > len(rep_ids):
        return [[] for _ in range(count)]
    cost = _placement_cost(team, graph, territory, rep_ids, count)  # reps × territories
    floor = len(rep_ids) // count
    extra = len(rep_ids) - floor * count
    # ⌊R/K⌋ slots a territory must fill (a large credit), and one optional slot each for the remainder
    columns = [cost - 1e6] * floor + ([cost] if extra else [])
    rows, picked = linear_sum_assignment(np.hstack(columns))
    groups: list[list[str]] = [[] for _ in range(count)]
    for r, column in zip(rows.tolist(), picked.tolist(), strict=True):
        groups[column % count].append(rep_ids[r])
    return [sorted(group) for group in groups]


def _placement_cost(team: _Team, graph: UnitGraph, territory: np.ndarray, rep_ids: list[str], count: int
                    ) -> np.ndarray:
    """Reps × territories: distance from home to the territory's workload centre (÷ the median), less
    the share of a territory's workload the rep owns there today, less EXPERIENCE_FIT × the rep's
    experience (0–1 over MAX_EXPERIENCE_YEARS) × how demanding the territory is (its potential and its
    complex-process workload, each ÷ the mean, averaged, minus one): senior reps to the territories
    with the most potential and the most complex buying."""
    reps = team.reps.set_index("rep_id").loc[rep_ids]
    weight = graph.measures["workload"] + 1e-9
    centre = np.zeros((count, 2))
    np.add.at(centre, territory, weight[:, None] * graph.xy)
    centre /= np.maximum(np.bincount(territory, weight, minlength=count), 1e-12)[:, None]
    home = graph.project(reps["lat"].to_numpy(dtype=float), reps["lon"].to_numpy(dtype=float))
    distance = np.linalg.norm(home[:, None, :] - centre[None, :, :], axis=2)
    owner = _current_rep_of_units(team, graph)
    kept = np.zeros((len(rep_ids), count))
    for r, rep in enumerate(rep_ids):
        np.add.at(kept[r], territory[owner == rep], weight[owner == rep])
    kept /= max(float(weight.sum()) / count, 1e-12)
    potential = np.bincount(territory, graph.measures["potential"], minlength=count)
    accounts = team.accounts
    complex_process = accounts["buying_process"].eq("complex").to_numpy(dtype=bool) if "buying_process" in \
        accounts else np.zeros(len(accounts), dtype=bool)
    unit = pd.Index(graph.unit_ids).get_indexer(accounts["geo_unit"].astype(object))
    placed = (unit >= 0) & complex_process
    hard = np.bincount(territory[unit[placed]], accounts["workload_hours"].to_numpy(dtype=float)[placed],
                       minlength=count)
    demand = 0.5 * (_relative(potential) + _relative(hard)) - 1.0
    experience = np.clip(reps["experience_years"].fillna(0.0).to_numpy(dtype=float), 0, MAX_EXPERIENCE_YEARS)
    fit = EXPERIENCE_FIT * (experience / MAX_EXPERIENCE_YEARS)[:, None] * demand[None, :]
    return distance / max(float(np.median(distance)), 1e-9) - kept - fit


def _relative(values: np.ndarray) -> np.ndarray:
    """Values ÷ their mean (ones where the mean is zero)."""
    mean = float(values.mean()) if len(values) else 0.0
    return values / mean if mean > 0 else np.ones(len(values))


def _match_reps(team: _Team, graph: UnitGraph, territory: np.ndarray, rep_ids: list[str]) -> list[str]:
    """Rep per territory by a linear assignment on `_placement_cost` (home distance, continuity,
    experience against the territory's potential and complexity)."""
    rows, columns = linear_sum_assignment(_placement_cost(team, graph, territory, rep_ids, len(rep_ids)))
    result = [""] * len(rep_ids)
    for r, t in zip(rows.tolist(), columns.tolist(), strict=True):
        result[t] = rep_ids[r]
    return result


def rebalance_territories(scenario: Scenario, *, time_limit: float = 60.0) -> TerritoryPlan:
    """Today's territories (each unit with the rep owning most of its workload), brought within tolerance
    by moving as few units as possible: one unit at a time, each time the boundary move that lowers the
    balance excess most while every territory stays connected. `trade_off` lists units moved against
    the worst deviation reached (per segment with `territory.by_segment`)."""
    teams, notes = _teams(scenario)
    total = max(sum(len(t.reps) for t in teams), 1)
    return _combined([_rebalance_team(team, time_limit * len(team.reps) / total if len(teams) > 1 else time_limit)
                      for team in teams], notes)


def _rebalance_team(team: _Team, time_limit: float) -> TerritoryPlan:
    began = time.perf_counter()
    settings = _settings(team.scenario)
    graph = unit_graph(team.scenario, team.accounts)
    rep_ids = team.rep_ids
    owner = _current_rep_of_units(team, graph)
    position = {rep: i for i, rep in enumerate(rep_ids)}
    territory = np.array([position.get(rep, -1) for rep in owner], dtype=np.int64)
    if (territory < 0).any():  # units nobody owns today: the nearest owned neighbour's territory
        territory = _fill_unowned(graph, territory)
    fixed, locked, notes = _pinned(team, graph, rep_ids, settings.keep_home_units)
    pinned = {**locked, **fixed}
    for unit, t in pinned.items():
        territory[unit] = t
    carving = CarveSettings(count=len(rep_ids), tolerances=dict(settings.balance), compactness=settings.compactness,
                            shares=tuple(team.capacity_shares()) if settings.shares == "capacity" else None)
    balanced, trade_off, stuck = rebalance_partition(graph, carving, territory, set(pinned), began + time_limit)
    if stuck:
        notes.append("no single boundary move lowers the imbalance further: tolerance not reached by moves "
                     "that keep every territory connected")
    plan = _plan(team, graph, balanced, rep_ids, rep_ids, pinned, settings, began, notes, carving.share_array())
    return dataclasses.replace(plan, trade_off=trade_off)


def rebalance_partition(graph: UnitGraph, carving: CarveSettings, territory: np.ndarray, pinned: set[int],
                        deadline: float) -> tuple[np.ndarray, pd.DataFrame, bool]:
    """A partition of `graph` (territory index per unit, every territory connected) brought within
    `carving`'s tolerances by moving as few units as possible: one at a time, each time the connected
    boundary move that lowers the balance excess most. Returns the partition, the trade-off curve (units
    moved, worst deviation of the first measure) and whether it stopped for want of a move that helps."""
    search = _Search(graph, carving, territory.copy(), pinned)
    first = next(iter(carving.tolerances))
    curve = [(0, _worst(search))]
    moved_units: set[int] = set()
    stuck = False
    while search.excess() > 1e-12 and time.perf_counter() < deadline:
        step = _best_balancing_move(search, moved_units)
        if step is None:
            stuck = True
            break
        unit, donor, taker = step
        search._move(unit, donor, taker)
        moved_units.add(unit)
        curve.append((len(moved_units), _worst(search)))
    return search.territory, pd.DataFrame(curve, columns=["units_moved", f"worst_{first}_deviation"]), stuck


def _worst(search: Any) -> float:
    """The largest |load ÷ target − 1| of the first balance measure."""
    return float(np.max(np.abs(search.deviation())))


def _best_balancing_move(search: Any, moved: set[int]) -> tuple[int, int, int] | None:
    """The connected boundary move that lowers the balance excess most (ties: the better compactness)."""
    edges = search.g.edges
    territory = search.territory
    cut = territory[edges[:, 0]] != territory[edges[:, 1]]
    candidates = []
    for a, b in edges[cut].tolist():
        for unit, taker in ((a, int(territory[b])), (b, int(territory[a]))):
            if unit in search.pinned:
                continue
            donor = int(territory[unit])
            if search.size[donor] <= 1:
                continue
            excess, compact = search._delta(unit, donor, taker)
            if excess < -1e-12:
                candidates.append((excess, compact, unit, donor, taker))
    for _excess, _compact, unit, donor, taker in sorted(candidates):
        if search._stays_connected(unit, donor):
            return unit, donor, taker
    return None


def _fill_unowned(graph: UnitGraph, territory: np.ndarray) -> np.ndarray:
    territory = territory.copy()
    lists = graph.adjacency_lists
    changed = True
    while changed and (territory < 0).any():
        changed = False
        for unit in np.flatnonzero(territory < 0).tolist():
            owned = [int(territory[v]) for v in lists[unit] if territory[v] >= 0]
            if owned:
                territory[unit] = min(owned)
                changed = True
    if (territory < 0).any():
        raise TercapError("some geo units are in a part of the unit graph where nobody owns an account today: "
                          "carve from scratch (design_territories) instead")
    return territory


def _plan(team: _Team, graph: UnitGraph, territory: np.ndarray, names: list[str], reps_of: list[str],
          pinned: dict[int, int], settings: Territory, began: float, notes: list[str],
          shares: np.ndarray | None = None) -> TerritoryPlan:
    """The plan's tables, judged by the independent checker (against `shares` of each measure, default
    equal)."""
    count = len(names)
    shares = np.full(count, 1.0 / count) if shares is None else shares
    owner = _current_rep_of_units(team, graph)
    rep_of_unit = np.array(reps_of, dtype=object)[territory]
    units = pd.DataFrame({"unit_id": graph.unit_ids, "territory_id": np.array(names, dtype=object)[territory],
                          "rep_id": rep_of_unit, "moved": (owner != "") & (owner != rep_of_unit),
                          "segment": team.segment})
    measures = {m: np.bincount(territory, graph.measures[m], minlength=count) for m in ("workload", "potential",
                                                                                        "accounts")}
    weight = graph.measures["workload"] + 1e-9
    compactness = np.zeros(count)
    for t in range(count):
        members = territory == t
        centre = (weight[members, None] * graph.xy[members]).sum(axis=0) / weight[members].sum()
        compactness[t] = float(np.sqrt((weight[members] * ((graph.xy[members] - centre) ** 2).sum(axis=1)).sum()
                                       / weight[members].sum()))  # workload-weighted radius, km
    edges = pd.DataFrame({"unit_a": graph.unit_ids[graph.edges[:, 0]], "unit_b": graph.unit_ids[graph.edges[:, 1]]})
    pinned_named = {str(graph.unit_ids[u]): names[t] for u, t in pinned.items()}
    violations = check_territories(units, team.accounts, edges, dict(settings.balance), pinned_named,
                                   dict(zip(names, shares.tolist(), strict=True)))
    broken = {line.split(" ")[1].rstrip(":") for line in violations if "not contiguous" in line}
    territories = pd.DataFrame({
        "territory_id": names, "rep_id": reps_of, "units": np.bincount(territory, minlength=count),
        "workload": measures["workload"], "potential": measures["potential"],
        "accounts": measures["accounts"].astype(int), "compactness": compactness,
        "contiguous": [name not in broken for name in names], "target_share": shares, "segment": team.segment})
    return TerritoryPlan(team.scenario.name, units, territories, dict(settings.balance), time.perf_counter() - began,
                         tuple(violations), tuple(notes))


def account_owners(plan: TerritoryPlan, scenario: Scenario) -> pd.Series:
    """Per account (indexed by account_id), the rep of its unit's territory in its segment: accounts
    follow their unit; a locked account keeps its current owner. An account in no territory (its
    segment has no reps) has no owner (<NA>)."""
    accounts = _located_accounts(scenario)
    owner = pd.Series(_of_account_unit(plan, accounts, "rep_id"), index=accounts.index).replace("", pd.NA)
    if "locked" in accounts:
        locked = accounts["locked"].fillna(False).astype(bool) & accounts["current_owner"].notna()
        owner = owner.where(~locked.to_numpy(), accounts["current_owner"].to_numpy())
    return pd.Series(owner.to_numpy(), index=pd.Index(accounts["account_id"], name="account_id"), name="rep_id",
                     dtype="string")


def _of_account_unit(plan: TerritoryPlan, accounts: pd.DataFrame, column: str) -> np.ndarray:
    """Per account, `column` of plan.units for the account's unit (in the account's segment when the
    plan was carved per segment)."""
    units = plan.units
    if set(units["segment"]) == {ALL}:
        return accounts["geo_unit"].map(units.set_index("unit_id")[column]).to_numpy()
    keys = pd.MultiIndex.from_arrays([accounts["segment"].astype(object), accounts["geo_unit"].astype(object)])
    return units.set_index(["segment", "unit_id"])[column].reindex(keys).to_numpy()


def territory_members(plan: TerritoryPlan, scenario: Scenario) -> tuple[pd.Series, pd.Series]:
    """territory_id by account_id (its unit's territory in its segment) and by rep_id (the reps placed
    in each territory): what assignment inside territories needs."""
    accounts = _located_accounts(scenario)
    by_account = pd.Series(_of_account_unit(plan, accounts, "territory_id"),
                           index=pd.Index(accounts["account_id"], name="account_id"), name="territory_id")
    reps = plan.territories[["territory_id", "rep_id"]].assign(rep_id=plan.territories["rep_id"].str.split(
        REP_SEPARATOR)).explode("rep_id")
    reps = reps[reps["rep_id"].fillna("") != ""]
    by_rep = pd.Series(reps["territory_id"].to_numpy(), index=pd.Index(reps["rep_id"], name="rep_id"),
                       name="territory_id")
    return by_account, by_rep


__all__ += ["Carving", "UnitGraph", "account_owners", "territory_members"]
