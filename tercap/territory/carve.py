"""Carving geo units into contiguous, balanced, compact territories: the scalable heuristic.

1. Territories are shared among the graph's connected components in proportion to their workload (a
   territory never spans two components).
2. Random spanning-tree cuts (as redistricting tools seed their chains): from a part that must hold
   k territories, one territory is cut off at the edge of a random spanning tree whose subtree holds
   1/k of the part's first measure within half to all of the tolerance; the rest stays connected and
   goes on with k − 1; pinned units of one territory stay together. Where no such edge turns up in
   BISECT_ATTEMPTS trees (units too coarse
   for the tolerance), region growing instead: seeds from the pinned units and weighted k-means++,
   and the territory with the least load takes the free neighbouring unit nearest its seed.
3. Both give contiguous territories by construction.
4. Local search: a boundary unit moves to a neighbouring territory when the donor stays connected (a
   breadth-first search within the donor; a unit with one neighbour in it is a leaf) and the score
   falls. The score is lexicographic: first the balance excess Σ_t Σ_m max(|load − target| ÷ target −
   tolerance, 0)² (zero once every territory is within tolerance; a territory's target is its share of
   the total: equal, or e.g. its rep's share of the team's capacity), then the compactness (`distance`:
   the moment of inertia Σ w·|x − centre|² about each territory's weighted centre, kept exactly by
   running sums; `boundary`: the length of cut adjacency edges).
   A territory boxed in by others (no single move helps) passes load along an ejection chain: units
   move one step at a time along a shortest path of neighbouring territories from one with too much
   to one with room, each step keeping its donor connected; a chain stays only if the excess falls.
5. Multi-start: several seedings (within a quarter of the time limit); the best plan (balance excess,
   then compactness) goes on to recombination.
6. Recombination (the move of redistricting's ReCom chains, here kept only when it improves): each
   pair of neighbouring territories in turn is merged and split again along an edge of one of
   RECOMBINE_TREES random spanning trees; the split with the least balance excess, then the best
   compactness, both parts keeping their pinned units, replaces the pair when it is better. A pass
   that gains less than RECOMBINE_MIN_GAIN doubles the trees; it ends after such a pass with
   RECOMBINE_MOST_TREES, after RECOMBINE_PASSES passes, or at the time limit (the only end that
   depends on the machine: the same seed gives the same territories unless the limit cuts in). A
   subtree is a run of the tree's depth-first order, so running sums judge every cut edge at once.
7. Iterated local search: SHAKES rounds, each recombining count ÷ SHAKE_SHARE random pairs along
   random balanced cuts (better or not), settling again with moves and SHAKE_PASSES recombination
   passes, and keeping the result only when it beats the best so far.
8. MIP polish. `boundary`: each pair of neighbouring territories of at most POLISH_MAX_UNITS units
   is re-split by the exact labeling model (tercap.territory.labeling), its split taken when proven
   optimal and shorter. `distance`: each pair of at most DISTANCE_POLISH_MAX_UNITS units, both within
   tolerance, is re-split exactly around the two territories' own weighted centres (contiguous by
   flows, within tolerance: tercap.territory.exact.split_around_centres), taken when proven optimal
   and of lower moment of inertia; passes repeat while one improves.
Fixed and locked units never move.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from tercap.status import SolveStatus
from tercap.territory.units import UnitGraph

EXCESS_TOLERANCE = 1e-12  # balance excess below this counts as none
BISECT_ATTEMPTS = 40  # random spanning trees tried per cut before the part gives up
BISECT_RESTARTS = 25  # fresh starts of a component's cuts before region growing takes over
CHAIN_SHARES = (1.0, 0.5, 0.25, 0.1)  # of the room at a chain's ends, tried in turn as its size
RECOMBINE_TREES = 8  # random spanning trees tried per pair of neighbouring territories in recombination
RECOMBINE_MOST_TREES = 64  # a pass that gains little doubles the trees, up to this many
RECOMBINE_MIN_GAIN = 0.002  # a pass gains little below this share of the compactness
RECOMBINE_PASSES = 20  # passes at most: a budget of work, so that a result does not hang on the clock
SHAKES = 30  # rounds of iterated local search after recombination settles
SHAKE_SHARE = 5  # a shake recombines count ÷ this random pairs at random
SHAKE_PASSES = 5  # recombination passes to settle after a shake
POLISH_MAX_UNITS = 40  # `boundary`: pairs of territories up to this many units are polished by the exact model
POLISH_SECONDS = 3.0  # the exact model's time per pair; only a split it proves optimal is taken
DISTANCE_POLISH_MAX_UNITS = 400  # `distance`: pairs up to this many units are re-split around their centres
POLISH_PASSES = 5  # `distance`: passes over the pairs while one improves
STARTS_SHARE = 0.25  # of the time limit, at most, for the starts before the best is recombined


@dataclass(frozen=True)
class CarveSettings:
    """What a carving must reach and how hard it tries."""

    count: int
    tolerances: dict[str, float]  # measure → ± share of the mean
    compactness: str = "distance"  # or "boundary"
    starts: int = 4
    max_passes: int = 200
    time_limit: float = 60.0
    seed: int = 0
    shares: tuple[float, ...] | None = None  # each territory's share of every measure (None: equal shares)
    recombine: bool = True  # finish with recombination (False: boundary moves and chains only)

    @property
    def equal_shares(self) -> bool:
        return self.shares is None or bool(np.allclose(self.shares, 1.0 / self.count, rtol=1e-9, atol=0.0))

    def share_array(self) -> np.ndarray:
        """Each territory's share of every measure, summing to 1."""
        if self.shares is None:
            return np.full(self.count, 1.0 / self.count)
        shares = np.asarray(self.shares, dtype=float)
        return shares / shares.sum()


@dataclass(frozen=True, eq=False)
class Carving:
    """A territory per unit and the figures it was judged by."""

    territory: np.ndarray  # per unit, territory index 0..count-1
    excess: float  # balance excess (0: every measure within tolerance everywhere)
    compactness: float
    passes: int
    starts: int


def territories_per_component(graph: UnitGraph, count: int, measure: np.ndarray) -> np.ndarray:
    """How many territories each connected component gets: at least one each, the rest by largest
    remainder of its share of the measure (of units, where the measure is zero everywhere)."""
    components = int(graph.component.max(initial=-1)) + 1
    if count < components:
        raise ValueError(f"{count} territories cannot cover {components} disconnected parts of the unit graph "
                         "(a territory spans parts only through a declared adjacency link)")
    weight = np.bincount(graph.component, measure, minlength=components)
    if weight.sum() <= 0:
        weight = np.bincount(graph.component, minlength=components).astype(float)
    share = weight / weight.sum() * count
    given = np.maximum(np.floor(share), 1).astype(int)
    while given.sum() > count:  # the floors of one were too generous: take back from the largest surplus
        surplus = np.where(given > 1, given - share, -np.inf)
        given[int(np.argmax(surplus))] -= 1
    remainder = share - given
    for index in np.argsort(-remainder, kind="stable")[: count - given.sum()]:
        given[index] += 1
    return given


def carve(graph: UnitGraph, settings: CarveSettings, fixed: dict[int, int] | None = None,
          locked: dict[int, int] | None = None) -> Carving:
    """Carve `graph` into `settings.count` territories; `fixed` and `locked` map unit → territory.
    Unequal `settings.shares`: carved into equal shares first (the tree cuts split equal shares), then
    refined towards each territory's own share."""
    fixed, locked = dict(fixed or {}), dict(locked or {})
    pinned = {**locked, **fixed}
    deadline = time.perf_counter() + settings.time_limit
    if not settings.equal_shares:
        equal = carve(graph, replace(settings, shares=None, time_limit=settings.time_limit / 2), fixed, locked)
        return refine(graph, settings, equal.territory, set(pinned), max(deadline - time.perf_counter(), 0.0))
    rng = np.random.default_rng(settings.seed)
    best: tuple[_Search, int] | None = None
    starts_until = time.perf_counter() + STARTS_SHARE * settings.time_limit
    tried = 0
    while tried < max(settings.starts, 1):
        tried += 1
        territory = _bisect_all(graph, settings, pinned, rng)
        if territory is None:  # no balanced tree split found: grow regions from seeds instead
            territory = _grow(graph, _seeds(graph, settings, pinned, rng), settings, pinned)
        search = _Search(graph, settings, territory, set(pinned))
        passes = _improve(search, deadline, rng, settings.max_passes, recombine=False)
        if best is None or (search.excess(), search.compactness()) < (best[0].excess() - EXCESS_TOLERANCE,
                                                                      best[0].compactness()):
            best = (search, passes)
        if time.perf_counter() > starts_until:
            break
    assert best is not None
    search, passes = best
    passes += _improve(search, deadline, rng, settings.max_passes, settings.recombine)  # the best start
    return Carving(search.territory.copy(), search.excess(), search.compactness(), passes, tried)


def refine(graph: UnitGraph, settings: CarveSettings, territory: np.ndarray, pinned: set[int],
           time_limit: float) -> Carving:
    """Local search and ejection chains from a given plan (e.g. one of equal shares, to reach each
    territory's own share); pinned units stay."""
    search = _Search(graph, settings, territory, pinned)
    passes = _improve(search, time.perf_counter() + time_limit, np.random.default_rng(settings.seed),
                      settings.max_passes, settings.recombine)
    return Carving(search.territory.copy(), search.excess(), search.compactness(), passes, 1)


def _improve(search: _Search, deadline: float, rng: np.random.Generator, max_passes: int,
             recombine: bool = True) -> int:
    """Boundary moves; ejection chains while a territory is out of tolerance and no move helps; then
    recombination of neighbouring pairs while it finds better plans (see the module docstring)."""
    passes = search.run(deadline, max_passes)
    while search.excess() > EXCESS_TOLERANCE and time.perf_counter() < deadline and search.chain(deadline):
        passes += search.run(deadline, max_passes)  # boxed in: pass load along a chain, then moves
    if not recombine:
        return passes
    passes += _recombine_until_settled(search, deadline, rng, max_passes, RECOMBINE_PASSES, RECOMBINE_MOST_TREES)
    # iterated local search: shake a few pairs, settle again, keep the result only if it is better
    best = (search.excess(), search.compactness(), search.territory.copy())
    for _ in range(SHAKES):
        if time.perf_counter() > deadline:
            break
        search.shake(rng, max(1, search.count // SHAKE_SHARE))
        passes += search.run(deadline, max_passes)
        passes += _recombine_until_settled(search, deadline, rng, max_passes, SHAKE_PASSES, RECOMBINE_TREES * 2)
        excess, compactness = search.excess(), search.compactness()
        if excess < best[0] - EXCESS_TOLERANCE or (excess <= best[0] + EXCESS_TOLERANCE and
                                                   compactness < best[1] - 1e-12):
            best = (excess, compactness, search.territory.copy())
        else:
            search.reset(best[2])
    if (search.mip_polish(deadline) if search.boundary_mode else search.distance_polish(deadline)):
        passes += search.run(deadline, max_passes)
    return passes


def _recombine_until_settled(search: _Search, deadline: float, rng: np.random.Generator, max_passes: int,
                             most_passes: int, most_trees: int) -> int:
    """Recombination passes (each followed by boundary moves) until a pass with `most_trees` trees
    gains little, `most_passes` passes, or the deadline; returns the boundary-move passes."""
    passes = 0
    trees, rounds = RECOMBINE_TREES, 0
    while time.perf_counter() < deadline and trees <= most_trees and rounds < most_passes:
        rounds += 1
        before = (search.excess(), search.compactness())
        if search.recombine(deadline, rng, trees):
            passes += search.run(deadline, max_passes)
        if search.excess() >= before[0] - EXCESS_TOLERANCE and \
                search.compactness() > before[1] * (1 - RECOMBINE_MIN_GAIN):
            trees *= 2  # little found: look at more splits of each pair
    return passes


def _bisect_all(graph: UnitGraph, settings: CarveSettings, pinned: dict[int, int], rng: np.random.Generator
                ) -> np.ndarray | None:
    """Spanning-tree cuts per connected component (see the module docstring); None when a cut fails."""
    measure = graph.measures[next(iter(settings.tolerances))]
    tolerance = settings.tolerances[next(iter(settings.tolerances))]
    per_component = territories_per_component(graph, settings.count, measure)
    mean = float(measure.sum()) / settings.count
    territory = np.full(graph.size, -1, dtype=np.int64)
    pinned_territory = np.full(graph.size, -1, dtype=np.int64)
    for unit, t in pinned.items():
        pinned_territory[unit] = t
    free = [t for t in range(settings.count) if t not in set(pinned.values())]
    leaves: list[np.ndarray] = []
    for component, wanted in enumerate(per_component):
        units = np.flatnonzero(graph.component == component)
        for _ in range(BISECT_RESTARTS):  # a cut that fails deep down: start the component again
            parts = _bisect(graph, units, int(wanted), measure, pinned_territory, mean, tolerance, rng)
            if parts is not None:
                break
        if parts is None:
            return None
        leaves += parts
    for leaf in leaves:
        owners = np.unique(pinned_territory[leaf][pinned_territory[leaf] >= 0])
        if owners.size > 1:
            return None
        territory[leaf] = owners[0] if owners.size else free.pop(0)
    return territory


def _bisect(graph: UnitGraph, units: np.ndarray, k: int, measure: np.ndarray, pinned: np.ndarray, mean: float,
            tolerance: float, rng: np.random.Generator) -> list[np.ndarray] | None:
    """`units` (connected) cut into k connected parts, one territory at a time."""
    parts: list[np.ndarray] = []
    while k > 1:
        total = float(measure[units].sum())
        cut = None
        for attempt in range(BISECT_ATTEMPTS):
            allowance = (0.5 + 2.5 * attempt / BISECT_ATTEMPTS) * max(tolerance, 0.01) * total / k
            cut = _tree_cut(graph, units, measure, pinned, total, k, allowance, rng)
            if cut is not None:
                break
        if cut is None:
            return None
        parts.append(units[cut])
        units, k = units[~cut], k - 1
    return [*parts, units]


def _tree_cut(graph: UnitGraph, units: np.ndarray, measure: np.ndarray, pinned: np.ndarray, total: float, k: int,
              allowance: float, rng: np.random.Generator) -> np.ndarray | None:
    """A random spanning tree of `units` and an edge of it whose subtree holds total ÷ k within
    `allowance`, with no pinned territory split and at most one inside: the subtree's mask, or None."""
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

    sub = graph.neighbours[units][:, units].tocoo()
    upper = sub.row < sub.col
    weights = rng.random(int(upper.sum())) + 1e-3
    n = len(units)
    random_graph = sp.coo_matrix((weights, (sub.row[upper], sub.col[upper])), shape=(n, n))
    tree = minimum_spanning_tree(random_graph)
    tree = tree + tree.T
    root = int(rng.integers(n))
    order, parent = breadth_first_order(tree, root, directed=False, return_predecessors=True)
    if len(order) < n:
        return None  # not connected
    subtree = measure[units].astype(float).copy()
    weight = subtree + 1e-9 * max(float(subtree.max(initial=0.0)), 1.0)
    moment = weight[:, None] * graph.xy[units]  # Σ w·xy below each node: where its subtree lies
    mass = weight.copy()
    for node in order[::-1][:-1]:
        subtree[parent[node]] += subtree[node]
        moment[parent[node]] += moment[node]
        mass[parent[node]] += mass[node]
    # pinned territories below each node: counts of pinned units per territory (few territories pinned)
    owners = pinned[units]
    pinned_ids, pinned_index = np.unique(owners[owners >= 0], return_inverse=True)
    if pinned_ids.size:
        counts = np.zeros((n, pinned_ids.size), dtype=np.int32)
        counts[np.flatnonzero(owners >= 0), pinned_index] = 1
        for node in order[::-1][:-1]:
            counts[parent[node]] += counts[node]
        totals = counts[root]
    target = total / k
    candidates = []
    close = np.flatnonzero(np.abs(subtree - target) <= allowance)
    for node in close[close != root].tolist():
        if pinned_ids.size:
            below = counts[node]
            if np.any((below != 0) & (below != totals)):
                continue  # a pinned territory would be split
            inside_pins = int(np.sum(below == totals))
            if inside_pins > 1 or pinned_ids.size - inside_pins > k - 1:
                continue
        candidates.append(node)
    if not candidates:
        return None
    # peel from the outside: the candidate lying farthest from the part's centre leaves a rounder rest
    centre = moment[root] / mass[root]
    where = moment[candidates] / mass[candidates][:, None]
    node = candidates[int(np.argmax(((where - centre) ** 2).sum(axis=1)))]
    inside = np.zeros(n, dtype=bool)
    # the subtree of `node`: every unit whose path to the root passes through it
    children: dict[int, list[int]] = {}
    for child in order[1:].tolist():
        children.setdefault(int(parent[child]), []).append(child)
    stack = [node]
    while stack:
        v = stack.pop()
        inside[v] = True
        stack.extend(children.get(v, ()))
    return inside


def _seeds(graph: UnitGraph, settings: CarveSettings, pinned: dict[int, int], rng: np.random.Generator
           ) -> dict[int, int]:
    """territory → seed unit: pinned units first (their territories), then k-means++ per component."""
    measure = graph.measures[next(iter(settings.tolerances))]
    per_component = territories_per_component(graph, settings.count, measure)
    seeds: dict[int, int] = {}
    for unit, territory in sorted(pinned.items()):
        seeds.setdefault(territory, unit)
    free_territories = [t for t in range(settings.count) if t not in seeds]
    taken_per_component = np.bincount([graph.component[u] for u in seeds.values()],
                                      minlength=len(per_component))
    if np.any(taken_per_component > per_component):
        raise ValueError("more pinned territories in a part of the unit graph than that part gets")
    for component, wanted in enumerate(per_component):
        units = np.flatnonzero(graph.component == component)
        chosen = [u for u in seeds.values() if graph.component[u] == component]
        weight = measure[units] + 1e-9 * max(float(measure.max(initial=0.0)), 1.0)
        while len(chosen) < wanted:
            if chosen:
                distance = np.min(((graph.xy[units, None, :] - graph.xy[None, chosen, :]) ** 2).sum(axis=2), axis=1)
            else:
                distance = np.ones(len(units))
            probability = weight * distance
            probability[np.isin(units, chosen)] = 0.0
            if probability.sum() <= 0:
                probability = (~np.isin(units, chosen)).astype(float)
            unit = int(units[rng.choice(len(units), p=probability / probability.sum())])
            chosen.append(unit)
            seeds[free_territories.pop(0)] = unit
    return seeds


def _grow(graph: UnitGraph, seeds: dict[int, int], settings: CarveSettings, pinned: dict[int, int]) -> np.ndarray:
    """Region growing from the seeds; the territory with the least load for its share takes its nearest
    free neighbour."""
    measure = graph.measures[next(iter(settings.tolerances))]
    territory = np.full(graph.size, -1, dtype=np.int64)
    load = np.zeros(settings.count)
    frontier: list[list[tuple[float, int]]] = [[] for _ in range(settings.count)]
    centre = np.zeros((settings.count, 2))
    lists = graph.adjacency_lists

    def take(t: int, unit: int) -> None:
        territory[unit] = t
        load[t] += measure[unit]
        for other in lists[unit]:
            if territory[other] < 0:
                heapq.heappush(frontier[t], (float(((graph.xy[other] - centre[t]) ** 2).sum()), int(other)))

    for t, unit in seeds.items():
        centre[t] = graph.xy[unit]
    for unit, t in pinned.items():  # pinned units belong to their territories from the start
        territory[unit] = t
        load[t] += measure[unit]
    for unit, t in pinned.items():
        for other in lists[unit]:
            if territory[other] < 0:
                heapq.heappush(frontier[t], (float(((graph.xy[other] - centre[t]) ** 2).sum()), int(other)))
    for t, unit in seeds.items():
        if territory[unit] < 0:
            take(t, unit)
    shares = settings.share_array()
    ready = [(load[t] / shares[t], t) for t in range(settings.count)]
    heapq.heapify(ready)
    while ready:
        _, t = heapq.heappop(ready)
        while frontier[t] and territory[frontier[t][0][1]] >= 0:
            heapq.heappop(frontier[t])
        if not frontier[t]:
            continue  # boxed in: it keeps what it has
        _, unit = heapq.heappop(frontier[t])
        take(t, unit)
        heapq.heappush(ready, (load[t] / shares[t], t))
    # units no territory could reach (a part with no seed): their part's nearest territory by centre
    left = np.flatnonzero(territory < 0)
    for unit in left:
        territory[unit] = int(np.argmin(((centre - graph.xy[unit]) ** 2).sum(axis=1)))
    return territory


class _Search:
    """Boundary moves that keep every territory connected and lower (balance excess, compactness)."""

    def __init__(self, graph: UnitGraph, settings: CarveSettings, territory: np.ndarray, pinned: set[int]) -> None:
        self.g = graph
        self.count = settings.count
        self.territory = territory.copy()
        self.pinned = pinned
        self.lists = graph.adjacency_lists
        self.boundary_mode = settings.compactness == "boundary"
        names = list(settings.tolerances)
        self.names = names
        self.values = np.column_stack([graph.measures[m] for m in names])  # units × measures
        self.tolerance = np.array([settings.tolerances[m] for m in names])
        total = self.values.sum(axis=0)
        total[total <= 0] = self.count
        self.target = settings.share_array()[:, None] * total[None, :]  # territories × measures
        self.load = np.zeros((self.count, len(names)))
        np.add.at(self.load, self.territory, self.values)
        self.size = np.bincount(self.territory, minlength=self.count)
        # compactness: running sums for the moment of inertia, weights = the first measure (+ a little)
        w = self.values[:, 0] + 1e-9 * max(float(self.values[:, 0].max(initial=0.0)), 1.0)
        self.w, xy = w, graph.xy
        self.wx = w[:, None] * xy
        self.wxx = w * (xy**2).sum(axis=1)
        self.W = np.bincount(self.territory, w, minlength=self.count)
        self.S = np.zeros((self.count, 2))
        np.add.at(self.S, self.territory, self.wx)
        self.Q = np.bincount(self.territory, self.wxx, minlength=self.count)
        spread = float(np.sum(w * ((xy - (self.wx.sum(axis=0) / w.sum())) ** 2).sum(axis=1)))
        self.scale = max(spread, 1e-9)  # the inertia of one territory holding everything

    def reset(self, territory: np.ndarray) -> None:
        """Start again from `territory` (its loads and running sums recomputed)."""
        self.territory = territory.copy()
        self.load = np.zeros_like(self.load)
        np.add.at(self.load, self.territory, self.values)
        self.size = np.bincount(self.territory, minlength=self.count)
        self.W = np.bincount(self.territory, self.w, minlength=self.count)
        self.S = np.zeros((self.count, 2))
        np.add.at(self.S, self.territory, self.wx)
        self.Q = np.bincount(self.territory, self.wxx, minlength=self.count)

    # -- scores --------------------------------------------------------------------------------

    def _excess_of(self, t: int, load: np.ndarray) -> float:
        deviation = np.abs(load / self.target[t] - 1.0) - self.tolerance
        return float(np.sum(np.maximum(deviation, 0.0) ** 2))

    def excess(self) -> float:
        return sum(self._excess_of(t, self.load[t]) for t in range(self.count))

    def deviation(self) -> np.ndarray:
        """Per territory, load ÷ target − 1 of the first measure."""
        return self.load[:, 0] / self.target[:, 0] - 1.0

    def _inertia(self, W: float, S: np.ndarray, Q: float) -> float:
        return Q - float(S @ S) / W if W > 0 else 0.0

    def compactness(self) -> float:
        if self.boundary_mode:
            edges, length = self.g.edges, self.g.edge_length
            return float(length[self.territory[edges[:, 0]] != self.territory[edges[:, 1]]].sum())
        return sum(self._inertia(self.W[t], self.S[t], self.Q[t]) for t in range(self.count)) / self.scale

    # -- moves ---------------------------------------------------------------------------------

    def _stays_connected(self, unit: int, donor: int) -> bool:
        inside = [int(v) for v in self.lists[unit] if self.territory[v] == donor]
        if len(inside) <= 1:
            return len(inside) == 1 or self.size[donor] == 1
        target = self.size[donor] - 1
        seen = {inside[0]}
        stack = [inside[0]]
        while stack:
            v = stack.pop()
            for other in self.lists[v]:
                other = int(other)
                if other != unit and other not in seen and self.territory[other] == donor:
                    seen.add(other)
                    stack.append(other)
        return len(seen) == target

    def _delta(self, unit: int, donor: int, taker: int) -> tuple[float, float]:
        value = self.values[unit]
        excess = (self._excess_of(donor, self.load[donor] - value) + self._excess_of(taker, self.load[taker] + value)
                  - self._excess_of(donor, self.load[donor]) - self._excess_of(taker, self.load[taker]))
        if self.boundary_mode:
            length = self.g.neighbours
            row = slice(length.indptr[unit], length.indptr[unit + 1])
            owners = self.territory[length.indices[row]]
            data = length.data[row]
            compact = float(data[owners == donor].sum() - data[owners == taker].sum())
        else:
            w, wx, wxx = self.w[unit], self.wx[unit], self.wxx[unit]
            before = self._inertia(self.W[donor], self.S[donor], self.Q[donor]) + \
                self._inertia(self.W[taker], self.S[taker], self.Q[taker])
            after = self._inertia(self.W[donor] - w, self.S[donor] - wx, self.Q[donor] - wxx) + \
                self._inertia(self.W[taker] + w, self.S[taker] + wx, self.Q[taker] + wxx)
            compact = (after - before) / self.scale
        return excess, compact

    def _move(self, unit: int, donor: int, taker: int) -> None:
        self.territory[unit] = taker
        self.load[donor] -= self.values[unit]
        self.load[taker] += self.values[unit]
        self.size[donor] -= 1
        self.size[taker] += 1
        for array, value in ((self.W, self.w[unit]), (self.Q, self.wxx[unit])):
            array[donor] -= value
            array[taker] += value
        self.S[donor] -= self.wx[unit]
        self.S[taker] += self.wx[unit]

    def chain(self, deadline: float) -> bool:
        """One ejection chain that lowers the balance excess (see the module docstring); False if none."""
        deviation = self.deviation()
        neighbours = self._territory_neighbours()
        order = np.argsort(-np.abs(deviation), kind="stable")
        for start in order.tolist():
            if abs(deviation[start]) <= self.tolerance[0] or time.perf_counter() > deadline:
                continue
            giving = deviation[start] > 0  # too much: give along the path; too little: take along it
            for path in self._paths(start, neighbours, deviation, giving):
                if path and self._try_chain(path if giving else path[::-1]):
                    return True
        return False

    def _territory_neighbours(self) -> list[set[int]]:
        edges = self.g.edges
        a, b = self.territory[edges[:, 0]], self.territory[edges[:, 1]]
        cut = a != b
        neighbours: list[set[int]] = [set() for _ in range(self.count)]
        for x, y in zip(a[cut].tolist(), b[cut].tolist(), strict=True):
            neighbours[x].add(y)
            neighbours[y].add(x)
        return neighbours

    def _paths(self, start: int, neighbours: list[set[int]], deviation: np.ndarray, giving: bool,
               most: int = 6) -> list[list[int]]:
        """Shortest territory paths from `start` to the nearest territories on the other side of the mean."""
        parent = {start: -1}
        queue = [start]
        found = []
        for t in queue:
            if t != start and (deviation[t] < 0 if giving else deviation[t] > 0):
                path = [t]
                while parent[path[-1]] >= 0:
                    path.append(parent[path[-1]])
                found.append(path[::-1])
                if len(found) >= most:
                    break
                continue  # a path ends at the first territory with room
            for other in sorted(neighbours[t]):
                if other not in parent:
                    parent[other] = t
                    queue.append(other)
        return found

    def _try_chain(self, path: list[int]) -> bool:
        """Pass units along each step of `path` (donor → taker), sized to the end's room; undone unless
        the balance excess falls."""
        first, last = path[0], path[-1]
        room = min(self.load[first, 0] - self.target[first, 0], self.target[last, 0] - self.load[last, 0])
        before = self.excess()
        for share in CHAIN_SHARES if room > 0 else ():
            amount = share * room
            done: list[tuple[list[int], int, int]] = []
            for donor, taker in itertools.pairwise(path):
                branch = self._branch_to_pass(donor, taker, amount)
                if not branch:
                    break
                for unit in branch:
                    self._move(unit, donor, taker)
                done.append((branch, donor, taker))
                amount = float(self.values[branch, 0].sum())  # what the next step passes on: what came in
            if len(done) == len(path) - 1 and self.excess() < before - EXCESS_TOLERANCE:
                return True
            for branch, donor, taker in reversed(done):
                for unit in branch:
                    self._move(unit, taker, donor)
        return False

    def _branch_to_pass(self, donor: int, taker: int, amount: float, seeds: int = 8) -> list[int]:
        """Units of the donor to hand to `taker`, holding about `amount` of the first measure: a connected
        piece grown from a unit next to the taker (nearest the taker's centre first), with whatever of the
        donor would hang on the piece alone; the best of a few seeds (empty: none can go)."""
        if self.size[donor] <= 1:
            return []
        edges = self.g.edges
        a, b = edges[:, 0], edges[:, 1]
        ta, tb = self.territory[a], self.territory[b]
        units = np.unique(np.r_[a[(ta == donor) & (tb == taker)], b[(tb == donor) & (ta == taker)]])
        units = np.array([u for u in units.tolist() if u not in self.pinned], dtype=np.int64)
        if units.size == 0:
            return []
        centre = self.S[taker] / max(self.W[taker], 1e-12)
        distance = ((self.g.xy - centre) ** 2).sum(axis=1)
        best: list[int] = []
        best_gap = np.inf
        for seed in units[np.argsort(distance[units], kind="stable")][:seeds].tolist():
            piece = self._piece(seed, donor, amount, distance)
            if piece is None:
                continue
            gap = abs(float(self.values[piece, 0].sum()) - amount)
            if gap < best_gap:
                best, best_gap = piece, gap
        return best

    def _piece(self, seed: int, donor: int, amount: float, distance: np.ndarray) -> list[int] | None:
        """Donor units grown from `seed` (nearest first) to about `amount`, plus the parts of the donor
        only they joined to the rest (None: a pinned unit or the whole donor would go)."""
        value = self.values[:, 0]
        piece: list[int] = []
        held = 0.0
        seen = {seed}
        heap = [(float(distance[seed]), seed)]
        while heap:
            _, unit = heapq.heappop(heap)
            if piece and abs(held + value[unit] - amount) > abs(held - amount):
                break  # one more unit would take the piece farther from the amount
            piece.append(unit)
            held += float(value[unit])
            for other in self.lists[unit].tolist():
                if other not in seen and self.territory[other] == donor and other not in self.pinned:
                    seen.add(other)
                    heapq.heappush(heap, (float(distance[other]), other))
        inside = set(piece)
        parts: list[list[int]] = []
        for unit in piece:
            for start in self.lists[unit].tolist():
                if self.territory[start] != donor or start in inside:
                    continue
                part, stack = [start], [start]
                inside.add(start)
                while stack:
                    v = stack.pop()
                    for other in self.lists[v].tolist():
                        if other not in inside and self.territory[other] == donor:
                            inside.add(other)
                            part.append(other)
                            stack.append(other)
                parts.append(part)
        if not parts:
            return None  # the whole donor
        pinned = [i for i, part in enumerate(parts) if any(v in self.pinned for v in part)]
        if len(pinned) > 1:
            return None
        keep = pinned[0] if pinned else int(np.argmax([value[part].sum() for part in parts]))
        return piece + [v for i, part in enumerate(parts) if i != keep for v in part]

    def mip_polish(self, deadline: float) -> int:
        """`boundary` only: each pair of neighbouring territories of at most POLISH_MAX_UNITS units and no
        pinned unit, re-split by the exact labeling model (the pair's own targets as bounds, the pair's
        split as the first plan, POLISH_SECONDS each); a split proven optimal and shorter replaces the
        pair (only proven splits: the result does not hang on the clock). Returns the pairs improved."""
        from tercap.territory.labeling import cut_edge_carving

        if not self.boundary_mode:
            return 0
        edges = self.g.edges
        improved = 0
        for first, second in self._neighbouring_pairs():
            if time.perf_counter() + POLISH_SECONDS > deadline:
                break
            units = np.flatnonzero((self.territory == first) | (self.territory == second))
            if units.size > POLISH_MAX_UNITS or any(u in self.pinned for u in units.tolist()):
                continue
            position = np.full(self.g.size, -1)
            position[units] = np.arange(units.size)
            inside = (position[edges[:, 0]] >= 0) & (position[edges[:, 1]] >= 0)
            pair_edges = position[edges[inside]]
            if not pair_edges.size:
                continue
            measures = {name: self.values[units, m] for m, name in enumerate(self.names)}
            measures.update({name: values[units] for name, values in self.g.measures.items()
                             if name not in measures})
            pair = UnitGraph(self.g.unit_ids[units], self.g.lat[units], self.g.lon[units], measures, pair_edges,
                             self.g.edge_length[inside], derived=False)
            # both territories hold the pair's targets: a label may go either way only with equal targets
            if not np.allclose(self.target[first], self.target[second]):
                continue
            bounds = {name: ((1 - self.tolerance[m]) * self.target[first, m],
                             (1 + self.tolerance[m]) * self.target[first, m]) for m, name in enumerate(self.names)}
            start = (self.territory[units] == second).astype(np.int64)
            before = float(self.g.edge_length[inside][start[pair_edges[:, 0]] != start[pair_edges[:, 1]]].sum())
            result = cut_edge_carving(pair, 2, dict(zip(self.names, self.tolerance.tolist(), strict=True)),
                                      POLISH_SECONDS, start=start, bounds=bounds)
            if result.status is not SolveStatus.OPTIMAL or result.territory is None or \
                    result.objective is None or result.objective > before - 1e-9:
                continue
            labels = result.territory
            if np.sum(labels == start) < np.sum(labels != start):
                labels = 1 - labels  # the two halves the other way round keep more units where they are
            for unit, label in zip(units.tolist(), labels.tolist(), strict=True):
                target = first if label == 0 else second
                if self.territory[unit] != target:
                    self._move(unit, int(self.territory[unit]), target)
            improved += 1
        return improved

    def distance_polish(self, deadline: float) -> int:
        """`distance` only: each pair of neighbouring territories, both within tolerance, of at most
        DISTANCE_POLISH_MAX_UNITS units, re-split by the exact model around the two territories' own
        weighted centres (tercap.territory.exact.split_around_centres: contiguous, within tolerance,
        pinned units kept; POLISH_SECONDS each at most, a few hundredths of a second as measured); a
        split proven optimal whose moment of inertia is lower replaces the pair. Passes repeat while one
        improves (re-centring, as in Lloyd's algorithm), up to POLISH_PASSES. Returns the pairs improved."""
        if self.boundary_mode:
            return 0
        improved = 0
        for _ in range(POLISH_PASSES):
            found = 0
            for first, second in self._neighbouring_pairs():
                if time.perf_counter() + POLISH_SECONDS > deadline:
                    return improved + found
                found += self._split_around_centres(first, second)
            improved += found
            if not found:
                break
        return improved

    def _split_around_centres(self, first: int, second: int) -> int:
        """distance_polish on one pair: 1 when its split was replaced, else 0."""
        from tercap.territory.exact import split_around_centres

        pair = (first, second)
        units = np.flatnonzero((self.territory == first) | (self.territory == second))
        if units.size > DISTANCE_POLISH_MAX_UNITS or any(self._excess_of(t, self.load[t]) > 0 for t in pair):
            return 0
        position = np.full(self.g.size, -1)
        position[units] = np.arange(units.size)
        edges = self.g.edges
        inside = (position[edges[:, 0]] >= 0) & (position[edges[:, 1]] >= 0)
        start = (self.territory[units] == second).astype(np.int64)
        centres = np.array([self.S[t] / self.W[t] for t in pair])
        xy = self.g.xy[units]
        roots = []
        for label in (0, 1):  # a pinned unit roots its territory, else the member nearest the centre
            members = np.flatnonzero(start == label)
            held = [int(u) for u in members if int(units[u]) in self.pinned]
            nearest = int(members[np.argmin(((xy[members] - centres[label]) ** 2).sum(axis=1))])
            roots.append(held[0] if held else nearest)
        fixed = {int(position[u]): int(self.territory[u] == second) for u in units.tolist() if u in self.pinned}
        low = np.array([(1 - self.tolerance) * self.target[t] for t in pair])
        high = np.array([(1 + self.tolerance) * self.target[t] for t in pair])
        labels, status = split_around_centres(xy, self.w[units], self.values[units], position[edges[inside]], centres,
                                              (roots[0], roots[1]), low, high, fixed, POLISH_SECONDS, start=start)
        if status is not SolveStatus.OPTIMAL or labels is None or np.array_equal(labels, start):
            return 0
        before = sum(self._inertia(self.W[t], self.S[t], self.Q[t]) for t in pair)
        if self._pair_inertia(units, labels) >= before - 1e-12 * self.scale:
            return 0
        for unit, label in zip(units.tolist(), labels.tolist(), strict=True):
            target = second if label else first
            if self.territory[unit] != target:
                self._move(unit, int(self.territory[unit]), target)
        return 1

    def _neighbouring_pairs(self) -> list[tuple[int, int]]:
        """Pairs of territories that share an adjacency edge, in a fixed order."""
        edges = self.g.edges
        a, b = self.territory[edges[:, 0]], self.territory[edges[:, 1]]
        cut = a != b
        return [(int(x), int(y)) for x, y in
                np.unique(np.sort(np.column_stack([a[cut], b[cut]]), axis=1), axis=0).tolist()]

    def _pair_inertia(self, units: np.ndarray, labels: np.ndarray) -> float:
        """The moment of inertia of `units` split by `labels` (0, 1), each part about its own centre."""
        total = 0.0
        for label in (0, 1):
            part = units[labels == label]
            total += self._inertia(float(self.w[part].sum()), self.wx[part].sum(axis=0), float(self.wxx[part].sum()))
        return total

    def shake(self, rng: np.random.Generator, pairs: int) -> None:
        """Recombine `pairs` random neighbouring pairs along random balanced cuts, better or not: a kick
        out of a local optimum."""
        edges = self.g.edges
        for _ in range(pairs):
            a, b = self.territory[edges[:, 0]], self.territory[edges[:, 1]]
            cut = np.flatnonzero(a != b)
            if cut.size == 0:
                return
            edge = int(cut[rng.integers(cut.size)])
            self._recombine_pair(int(min(a[edge], b[edge])), int(max(a[edge], b[edge])), rng, RECOMBINE_TREES,
                                 shake=True)

    def recombine(self, deadline: float, rng: np.random.Generator, trees: int = RECOMBINE_TREES) -> int:
        """One pass of recombination over neighbouring pairs of territories, in random order: the two are
        merged and split again along the edge of a random spanning tree that gives the best (balance
        excess, compactness), both parts keeping their pinned units; kept when better. Returns the
        number of pairs improved."""
        edges = self.g.edges
        a, b = self.territory[edges[:, 0]], self.territory[edges[:, 1]]
        cut = a != b
        pairs = np.unique(np.sort(np.column_stack([a[cut], b[cut]]), axis=1), axis=0)
        improved = 0
        for index in rng.permutation(len(pairs)).tolist():
            if time.perf_counter() > deadline:
                break
            first, second = int(pairs[index, 0]), int(pairs[index, 1])
            if self._recombine_pair(first, second, rng, trees):
                improved += 1
        return improved

    def _recombine_pair(self, first: int, second: int, rng: np.random.Generator, trees: int,
                        shake: bool = False) -> bool:
        """Merge two neighbouring territories and split them again: along the best cut edge of `trees`
        random spanning trees when that beats the pair as it is, or (`shake`) along a random cut edge of
        the first tree that has one no less balanced than the pair is now."""
        from scipy.sparse.csgraph import depth_first_order, minimum_spanning_tree

        units = np.flatnonzero((self.territory == first) | (self.territory == second))
        n = len(units)
        if n < 2:
            return False
        upper = sp.triu(self.g.neighbours[units][:, units], k=1).tocsr()  # its data: random weights per tree
        owner = self.territory[units]
        pinned = np.array([u in self.pinned for u in units.tolist()])
        # per unit: measures, w, w·x, w·y, w·|xy|², pinned to the first, pinned to the second
        columns = np.column_stack([self.values[units], self.w[units], self.wx[units], self.wxx[units],
                                   pinned & (owner == first), pinned & (owner == second)]).astype(float)
        total = columns.sum(axis=0)
        m = self.values.shape[1]
        before_excess = self._excess_of(first, self.load[first]) + self._excess_of(second, self.load[second])
        best_key = (before_excess, self._pair_compactness(units, owner == first, first, second))
        best_side = None
        for _ in range(trees):
            upper.data = rng.random(upper.nnz) + 1e-3
            order, parent = depth_first_order(minimum_spanning_tree(upper), 0, directed=False,
                                              return_predecessors=True)
            if len(order) < n:
                return False  # the two do not form one connected piece
            # a subtree is a run of the depth-first order: its sums are differences of running sums
            size = [1] * n
            parents = parent.tolist()
            for v in reversed(order[1:].tolist()):
                size[parents[v]] += size[v]
            running = np.vstack([np.zeros(columns.shape[1]), np.cumsum(columns[order], axis=0)])
            start = np.arange(1, n)  # every subtree but the whole (the root's), by its first position
            sums = running[start + np.array(size)[order[1:]]] - running[start]
            load, rest = sums[:, :m], total[:m] - sums[:, :m]
            w, wx, wxx = sums[:, m], sums[:, m + 1:m + 3], sums[:, m + 3]
            pins_first, pins_second = sums[:, m + 4], sums[:, m + 5]
            keep_first = (pins_first == total[m + 4]) & (pins_second == 0)  # the subtree can be the first's
            keep_second = (pins_second == total[m + 5]) & (pins_first == 0)
            if not self.boundary_mode:
                inertia = (wxx - (wx**2).sum(axis=1) / np.maximum(w, 1e-300)
                           + (total[m + 3] - wxx) - ((total[m + 1:m + 3] - wx) ** 2).sum(axis=1)
                           / np.maximum(total[m] - w, 1e-300)) / self.scale

            if shake:
                options = [(c, inner == first) for inner, outer, allowed in
                           ((first, second, keep_first), (second, first, keep_second))
                           for c in np.flatnonzero(allowed & (self._excess_rows(inner, load)
                                                              + self._excess_rows(outer, rest)
                                                              <= before_excess + EXCESS_TOLERANCE)).tolist()]
                if options:
                    candidate, subtree_is_first = options[int(rng.integers(len(options)))]
                    best_side = _side(order, size, candidate, subtree_is_first)
                    break
                continue
            for inner, outer, allowed in ((first, second, keep_first), (second, first, keep_second)):
                if not allowed.any():
                    continue
                excess = self._excess_rows(inner, load) + self._excess_rows(outer, rest)
                candidates = np.flatnonzero(allowed & (excess <= best_key[0] + EXCESS_TOLERANCE))
                if candidates.size == 0:
                    continue
                lowest = float(excess[candidates].min())
                candidates = candidates[excess[candidates] <= lowest + EXCESS_TOLERANCE]
                if self.boundary_mode:  # cut edges, counted for the few candidates left
                    compact = np.array([self._pair_compactness(units, _side(order, size, c, inner == first),
                                                               first, second) for c in candidates.tolist()])
                else:
                    compact = inertia[candidates]
                pick = int(np.argmin(compact))
                key = (float(excess[candidates[pick]]), float(compact[pick]))
                if key[0] < best_key[0] - EXCESS_TOLERANCE or (key[0] <= best_key[0] + EXCESS_TOLERANCE
                                                              and key[1] < best_key[1] - 1e-12):
                    best_key, best_side = key, _side(order, size, int(candidates[pick]), inner == first)
        if best_side is None:
            return False
        for unit, is_first in zip(units.tolist(), best_side.tolist(), strict=True):
            target = first if is_first else second
            if self.territory[unit] != target:
                self._move(unit, int(self.territory[unit]), target)
        return True

    def _excess_rows(self, t: int, load: np.ndarray) -> np.ndarray:
        """`_excess_of` for many candidate loads (rows × measures) of territory t."""
        deviation = np.abs(load / self.target[t] - 1.0) - self.tolerance
        return (np.maximum(deviation, 0.0) ** 2).sum(axis=1)

    def _pair_compactness(self, units: np.ndarray, in_first: np.ndarray, first: int, second: int) -> float:
        """The compactness the two territories contribute when `in_first` of `units` are the first's."""
        if self.boundary_mode:
            label = np.full(self.g.size, -1)
            label[units] = np.where(in_first, first, second)
            edges = self.g.edges
            a, b = label[edges[:, 0]], label[edges[:, 1]]
            inside_pair = (a >= 0) | (b >= 0)
            ta = np.where(a >= 0, a, self.territory[edges[:, 0]])
            tb = np.where(b >= 0, b, self.territory[edges[:, 1]])
            return float(self.g.edge_length[inside_pair & (ta != tb)].sum())
        total = 0.0
        for mask in (in_first, ~in_first):
            picked = units[mask]
            total += self._inertia(float(self.w[picked].sum()), self.wx[picked].sum(axis=0),
                                   float(self.wxx[picked].sum()))
        return total / self.scale

    def run(self, deadline: float, max_passes: int) -> int:
        """Passes over the boundary units in a fixed order until a pass moves nothing; returns passes."""
        edges = self.g.edges
        for done in range(1, max_passes + 1):
            moved = 0
            cut = self.territory[edges[:, 0]] != self.territory[edges[:, 1]]
            boundary = np.unique(edges[cut].ravel())
            for unit in boundary.tolist():
                if unit in self.pinned:
                    continue
                donor = int(self.territory[unit])
                if self.size[donor] <= 1:
                    continue
                takers = {int(self.territory[v]) for v in self.lists[unit]} - {donor}
                best, best_key = -1, (-EXCESS_TOLERANCE, -1e-12)
                for taker in sorted(takers):
                    excess, compact = self._delta(unit, donor, taker)
                    key = (excess, compact)
                    better = excess < -EXCESS_TOLERANCE or (abs(excess) <= EXCESS_TOLERANCE and compact < -1e-12)
                    if better and (best < 0 or key < best_key):
                        best, best_key = taker, key
                if best >= 0 and self._stays_connected(unit, donor):
                    self._move(unit, donor, best)
                    moved += 1
            if moved == 0 or time.perf_counter() > deadline:
                return done
        return max_passes


def _side(order: np.ndarray, size: list[int], candidate: int, subtree_is_first: bool) -> np.ndarray:
    """Which of a recombined pair's units go to the first territory when its tree is cut above the
    candidate-th node of the depth-first order after the root (its subtree: a run of that order)."""
    inside = np.zeros(len(order), dtype=bool)
    inside[order[1 + candidate:1 + candidate + size[order[1 + candidate]]]] = True
    return inside if subtree_is_first else ~inside
