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
   falls. The score is lexicographic: first the balance excess Σ_t Σ_m max(|load − mean| ÷ mean −
   tolerance, 0)² (zero once every territory is within tolerance), then the compactness (`distance`:
   the moment of inertia Σ w·|x − centre|² about each territory's weighted centre, kept exactly by
   running sums; `boundary`: the length of cut adjacency edges).
5. Multi-start: several seedings; the best plan (balance excess, then compactness) wins.
Fixed and locked units never move.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tercap.territory.units import UnitGraph

EXCESS_TOLERANCE = 1e-12  # balance excess below this counts as none
BISECT_ATTEMPTS = 40  # random spanning trees tried per cut before the part gives up
BISECT_RESTARTS = 25  # fresh starts of a component's cuts before region growing takes over


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
    """Carve `graph` into `settings.count` territories; `fixed` and `locked` map unit → territory."""
    fixed, locked = dict(fixed or {}), dict(locked or {})
    pinned = {**locked, **fixed}
    deadline = time.perf_counter() + settings.time_limit
    rng = np.random.default_rng(settings.seed)
    best: Carving | None = None
    for start in range(max(settings.starts, 1)):
        territory = _bisect_all(graph, settings, pinned, rng)
        if territory is None:  # no balanced tree split found: grow regions from seeds instead
            territory = _grow(graph, _seeds(graph, settings, pinned, rng), settings, pinned)
        search = _Search(graph, settings, territory, set(pinned))
        passes = search.run(deadline, settings.max_passes)
        result = Carving(search.territory.copy(), search.excess(), search.compactness(), passes, start + 1)
        if best is None or (result.excess, result.compactness) < (best.excess - EXCESS_TOLERANCE, best.compactness):
            best = result
        if time.perf_counter() > deadline:
            break
    assert best is not None
    return best


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
    """Region growing from the seeds; the territory with the least load takes its nearest free neighbour."""
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
    ready = [(load[t], t) for t in range(settings.count)]
    heapq.heapify(ready)
    while ready:
        _, t = heapq.heappop(ready)
        while frontier[t] and territory[frontier[t][0][1]] >= 0:
            heapq.heappop(frontier[t])
        if not frontier[t]:
            continue  # boxed in: it keeps what it has
        _, unit = heapq.heappop(frontier[t])
        take(t, unit)
        heapq.heappush(ready, (load[t], t))
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
        self.values = np.column_stack([graph.measures[m] for m in names])  # units × measures
        self.tolerance = np.array([settings.tolerances[m] for m in names])
        self.mean = self.values.sum(axis=0) / self.count
        self.mean[self.mean <= 0] = 1.0
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

    # -- scores --------------------------------------------------------------------------------

    def _excess_of(self, load: np.ndarray) -> float:
        deviation = np.abs(load / self.mean - 1.0) - self.tolerance
        return float(np.sum(np.maximum(deviation, 0.0) ** 2))

    def excess(self) -> float:
        return sum(self._excess_of(self.load[t]) for t in range(self.count))

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
        excess = (self._excess_of(self.load[donor] - value) + self._excess_of(self.load[taker] + value)
                  - self._excess_of(self.load[donor]) - self._excess_of(self.load[taker]))
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
