"""The exact model for the `boundary` measure: territories as labels, fewest cut edges, proofs on real
county graphs.

After Validi & Buchanan ("Political districting to minimize cut edges", Math. Prog. Comp. 14, 2022):

- x[i, j] = 1 when unit i carries label j (j = 0..K−1); each unit one label; each label's measures
  within tolerance of the mean;
- cut edges: z[e, j] ≥ x[u, j] − x[v, j]; on a cut edge exactly one z[e, j] is 1 (the label of u), so
  Σ length·z is the cut length;
- label symmetry broken by an orbitope (the extended formulation of Faenza & Kaibel): along an ordering
  of the units, label j's root r[i, j] (its first unit) comes before label j + 1's, and a unit carries
  label j or more only once label j has a root at or before it. The ordering puts a set B last whose
  connected pieces each weigh less than a territory's minimum, so that no root lies in B (L-fixing),
  and heavy units first; a unit that cannot share a territory with any earlier root roots the next
  label (U-fixing, with the units too far from it, by the lightest path, barred from that label);
- contiguity by one single-commodity flow: every root may emit up to M − 1 units of flow (M: the most
  units one territory can hold), every unit absorbs one, and flow runs only along uncut edges.

HiGHS gets the heuristic's plan as its first incumbent. Where every edge length is a whole number the
objective is integral, so the search may stop once the bound is within one of the plan (absolute gap
0.99): the bound rounded up then equals the plan, which is proven optimal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from tercap.backends import SolveLimits, get_backend
from tercap.model import INF, LinearModel, RowBuilder
from tercap.territory.exact import ExactCarving
from tercap.territory.units import UnitGraph

ORDERING_ROUNDS = 200  # randomised greedy rounds for the set B of the ordering


@dataclass(frozen=True, eq=False)
class _Layout:
    """Column positions of the model's variable blocks."""

    n: int
    k: int
    edges: int

    def x(self, unit: np.ndarray | int, label: np.ndarray | int) -> np.ndarray:
        return np.asarray(unit) * self.k + np.asarray(label)

    def r(self, unit: np.ndarray | int, label: np.ndarray | int) -> np.ndarray:
        return self.n * self.k + np.asarray(unit) * self.k + np.asarray(label)

    def z(self, edge: np.ndarray | int, label: np.ndarray | int) -> np.ndarray:
        return 2 * self.n * self.k + np.asarray(edge) * self.k + np.asarray(label)

    def orbitope(self, block: int, unit: np.ndarray | int, label: np.ndarray | int) -> np.ndarray:
        """block 0: s (labels ≥ j), 1: w (roots of j so far), 2: u (the orbitope's carry)."""
        return (2 * self.n + self.edges + block * self.n) * self.k + np.asarray(unit) * self.k + np.asarray(label)

    def flow(self, arc: np.ndarray | int) -> np.ndarray:
        return (5 * self.n + self.edges) * self.k + np.asarray(arc)

    @property
    def num_cols(self) -> int:
        return (5 * self.n + self.edges) * self.k + 2 * self.edges


def cut_edge_carving(graph: UnitGraph, count: int, tolerances: dict[str, float], time_limit: float = 60.0,
                     start: np.ndarray | None = None, bounds: dict[str, tuple[float, float]] | None = None
                     ) -> ExactCarving:
    """Territories with the shortest cut border, every one contiguous and within tolerance, solved by
    HiGHS; a time limit returns the best plan with the solver's bound. `start`: a first plan (a territory
    per unit); `bounds`: each measure's least and most per territory, instead of the tolerance about the
    mean (e.g. for two territories of a larger plan, whose targets come from the whole)."""
    model, layout, order = cut_edge_model(graph, count, tolerances, bounds)
    warm = _columns_of(graph, layout, order, start) if start is not None else None
    integral_length = bool(np.all(np.equal(np.mod(graph.edge_length, 1.0), 0.0)))
    limits = SolveLimits(time_limit=time_limit, mip_gap=0.0, threads=1,
                         absolute_gap=0.99 if integral_length else 0.0)
    result = get_backend("highs").solve(model, limits, warm_start=warm)
    bound = result.bound
    if bound is not None and integral_length:
        bound = float(math.ceil(bound - 1e-6))  # whole cut lengths: no plan is shorter than this
    if result.x is None:
        return ExactCarving(None, None, result.status, None, bound, result.solver_status)
    x = result.x[: layout.n * layout.k].reshape(layout.n, layout.k)
    labels = np.argmax(x, axis=1)
    used = np.unique(labels)
    relabel = np.full(layout.k, -1)
    relabel[used] = np.arange(used.size)
    return ExactCarving(relabel[labels], None, result.status, result.objective, bound, result.solver_status)


def cut_edge_model(graph: UnitGraph, count: int, tolerances: dict[str, float],
                   bounds: dict[str, tuple[float, float]] | None = None) -> tuple[LinearModel, _Layout, np.ndarray]:
    """The labeling model (see the module docstring), its column layout and the units' ordering."""
    n, k, m = graph.size, count, len(graph.edges)
    layout = _Layout(n, k, m)
    limits = {measure: (bounds or {}).get(measure, ((1 - tolerance) * float(graph.measures[measure].sum()) / k,
                                                    (1 + tolerance) * float(graph.measures[measure].sum()) / k))
              for measure, tolerance in tolerances.items()}
    first = next(iter(tolerances))
    weight = graph.measures[first]
    low, high = limits[first]
    order = _ordering(graph, weight, low)
    rows = RowBuilder(layout.num_cols)
    units, labels = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)

    rows.add("assign", units, layout.x(units, labels), np.ones(n * k), np.ones(n), np.ones(n), np.arange(n))
    for measure, (least, most) in limits.items():
        rows.add(f"{measure}_balance", labels, layout.x(units, labels), graph.measures[measure][units],
                 np.full(k, least), np.full(k, most), np.arange(k))
    # cut edges: x[u, j] − x[v, j] − z[e, j] ≤ 0
    edge, label = np.repeat(np.arange(m), k), np.tile(np.arange(k), m)
    u, v = graph.edges[edge, 0], graph.edges[edge, 1]
    block = np.arange(m * k)
    rows.add("cut", np.r_[block, block, block], np.r_[layout.x(u, label), layout.x(v, label), layout.z(edge, label)],
             np.r_[np.ones(m * k), -np.ones(m * k), -np.ones(m * k)], np.full(m * k, -INF), np.zeros(m * k), edge)
    _orbitope(rows, layout, order)
    col_lower, col_upper = np.zeros(layout.num_cols), np.ones(layout.num_cols)
    col_upper[layout.orbitope(0, 0, 0):layout.flow(0)] = INF
    col_lower[layout.r(order[0], 0)] = 1.0  # the first unit roots label 0
    _fix(graph, layout, order, weight, low, high, col_lower, col_upper)
    most = _most_units(weight, high)
    _flow(rows, layout, graph, most)
    col_upper[layout.flow(0):] = most - 1
    cost = np.zeros(layout.num_cols)
    cost[layout.z(edge, label)] = graph.edge_length[edge]
    integral = np.zeros(layout.num_cols, dtype=bool)
    integral[: layout.orbitope(0, 0, 0)] = True  # x, r, z
    matrix, lower, upper, family, owner = rows.build()
    model = LinearModel(cost=cost, matrix=sp.csr_matrix(matrix), row_lower=lower, row_upper=upper,
                        col_lower=col_lower, col_upper=col_upper, integral=integral, row_family=family,
                        row_owner=owner)
    return model, layout, order


def _orbitope(rows: RowBuilder, layout: _Layout, order: np.ndarray) -> None:
    """Faenza–Kaibel's extended formulation of the orbitope along `order` (see the module docstring)."""
    n, k = layout.n, layout.k
    units, labels = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    s, w, carry = (lambda i, j, b=b: layout.orbitope(b, i, j) for b in range(3))
    # s[i, j] = x[i, j] + s[i, j + 1]: the unit carries label j or more
    block = np.arange(n * k)
    last = labels == k - 1
    rows.add("orbitope_s", np.r_[block, block, block[~last]],
             np.r_[layout.x(units, labels), s(units, labels), s(units[~last], labels[~last] + 1)],
             np.r_[np.ones(n * k), -np.ones(n * k), np.ones(int((~last).sum()))], np.zeros(n * k), np.zeros(n * k),
             units)
    # w[o_p, j] = r[o_p, j] + w[o_{p−1}, j]: roots of label j at or before position p
    position_units, position_labels = np.repeat(order, k), np.tile(np.arange(k), n)
    previous = np.repeat(np.r_[-1, order[:-1]], k)
    has_previous = previous >= 0
    rows.add("orbitope_w", np.r_[block, block, block[has_previous]],
             np.r_[layout.r(position_units, position_labels), w(position_units, position_labels),
                   w(previous[has_previous], position_labels[has_previous])],
             np.r_[np.ones(n * k), -np.ones(n * k), np.ones(int(has_previous.sum()))], np.zeros(n * k),
             np.zeros(n * k), position_units)
    # a root carries its label; a unit carries label j or more only once label j has a root
    rows.add("root_in_label", np.r_[block, block], np.r_[layout.r(units, labels), layout.x(units, labels)],
             np.r_[np.ones(n * k), -np.ones(n * k)], np.full(n * k, -INF), np.zeros(n * k), units)
    rows.add("label_after_root", np.r_[block, block], np.r_[s(units, labels), w(units, labels)],
             np.r_[np.ones(n * k), -np.ones(n * k)], np.full(n * k, -INF), np.zeros(n * k), units)
    # the carry along the ordering: u[a, j] + r[a, j] = u[b, j] + r[b, j + 1] (b follows a), so label
    # j + 1's root follows label j's; at the end every label has had its root
    a, b = np.repeat(order[:-1], k), np.repeat(order[1:], k)
    j = np.tile(np.arange(k), n - 1)
    inner = j < k - 1
    size = (n - 1) * k
    block = np.arange(size)
    rows.add("orbitope_u", np.r_[block, block, block, block[inner]],
             np.r_[carry(a, j), layout.r(a, j), carry(b, j), layout.r(b[inner], j[inner] + 1)],
             np.r_[np.ones(size), np.ones(size), -np.ones(size), -np.ones(int(inner.sum()))], np.zeros(size),
             np.zeros(size), a)
    end = order[-1]
    labels_end = np.arange(k)
    rows.add("orbitope_end", np.r_[labels_end, labels_end], np.r_[carry(end, labels_end), layout.r(end, labels_end)],
             np.ones(2 * k), (labels_end == k - 1).astype(float), (labels_end == k - 1).astype(float),
             np.full(k, end))


def _flow(rows: RowBuilder, layout: _Layout, graph: UnitGraph, most: int) -> None:
    """One flow: roots emit, every unit absorbs one, flow only along uncut edges (see the docstring)."""
    n, k, m = layout.n, layout.k, layout.edges
    arcs = np.concatenate([graph.edges, graph.edges[:, ::-1]])
    arc = np.arange(2 * m)
    units, labels = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    # Σ in − Σ out + M·Σ_j r[v, j] ≥ 1
    rows.add("flow_absorb", np.r_[arcs[:, 1], arcs[:, 0], units],
             np.r_[layout.flow(arc), layout.flow(arc), layout.r(units, labels)],
             np.r_[np.ones(2 * m), -np.ones(2 * m), np.full(n * k, float(most))], np.ones(n), np.full(n, INF),
             np.arange(n))
    # f[u → v] + f[v → u] + (M − 1)·Σ_j z[e, j] ≤ M − 1
    edge, label = np.repeat(np.arange(m), k), np.tile(np.arange(k), m)
    rows.add("flow_uncut", np.r_[np.arange(m), np.arange(m), edge],
             np.r_[layout.flow(np.arange(m)), layout.flow(m + np.arange(m)), layout.z(edge, label)],
             np.r_[np.ones(2 * m), np.full(m * k, float(most - 1))], np.full(m, -INF), np.full(m, float(most - 1)),
             np.arange(m))


def _most_units(weight: np.ndarray, high: float) -> int:
    """The most units one territory can hold: the lightest units, added until the upper bound breaks."""
    total = np.cumsum(np.sort(weight))
    return max(int(np.searchsorted(total, high, side="right")), 1)


def _ordering(graph: UnitGraph, weight: np.ndarray, low: float) -> np.ndarray:
    """Units by falling weight, but a set B last whose connected pieces each weigh less than `low`
    (grown greedily from light units, best of ORDERING_ROUNDS randomised rounds, seeded)."""
    rng = random.Random(0)
    light_first = sorted(range(graph.size), key=lambda v: weight[v])
    best: list[int] = []
    lists = graph.adjacency_lists
    for attempt in range(ORDERING_ROUNDS):
        order = light_first if attempt == 0 else sorted(range(graph.size),
                                                        key=lambda v: weight[v] * (0.5 + rng.random()))
        chosen: set[int] = set()
        for unit in order:
            chosen.add(unit)
            if _piece_weight(lists, weight, chosen, unit) >= low:
                chosen.discard(unit)
        if len(chosen) > len(best):
            best = sorted(chosen)
    rest = sorted(set(range(graph.size)) - set(best), key=lambda v: -weight[v])
    return np.array(rest + sorted(best, key=lambda v: -weight[v]), dtype=np.int64)


def _piece_weight(lists: list[np.ndarray], weight: np.ndarray, members: set[int], unit: int) -> float:
    """The weight of `unit`'s connected piece within `members`."""
    seen, stack, total = {unit}, [unit], 0.0
    while stack:
        v = stack.pop()
        total += float(weight[v])
        for other in lists[v].tolist():
            if other in members and other not in seen:
                seen.add(other)
                stack.append(other)
    return total


def _fix(graph: UnitGraph, layout: _Layout, order: np.ndarray, weight: np.ndarray, low: float, high: float,
         col_lower: np.ndarray, col_upper: np.ndarray) -> None:
    """D-, L- and U-fixing of labels and roots along the ordering (Validi & Buchanan)."""
    n, k = layout.n, layout.k
    for p in range(min(k, n)):  # D: the p-th unit carries one of the first p + 1 labels
        for j in range(p + 1, k):
            col_upper[layout.x(order[p], j)] = 0.0
            col_upper[layout.r(order[p], j)] = 0.0
    # L: no root among the last units whose pieces (in the ordering's tail) cannot make a territory
    lists = graph.adjacency_lists
    tail: set[int] = set()
    first_unrooted = n
    for p in range(n - 1, -1, -1):
        tail.add(int(order[p]))
        if _piece_weight(lists, weight, tail, int(order[p])) >= low:
            first_unrooted = p + 1
            break
    for p in range(first_unrooted, n):
        col_upper[layout.r(order[p], np.arange(k))] = 0.0
    for t in range(1, k):  # label j's root needs k − 1 − j roots after it: none at the last positions
        if first_unrooted - t >= 0:
            col_upper[layout.r(order[first_unrooted - t], np.arange(k - t))] = 0.0
    # U: while the next unit cannot share a territory with any earlier root, it roots the next label
    for j in range(k):
        unit = int(order[j])
        earlier = [int(v) for v in order[:j]]
        if any(_lightest_path(graph, weight, unit, other, set(earlier) - {other}) + weight[unit] <= high
               for other in earlier):
            break
        distance = _lightest_paths(graph, weight, unit, set(earlier))
        col_lower[layout.r(unit, j)] = col_lower[layout.x(unit, j)] = 1.0
        col_upper[layout.x(unit, np.arange(k))[np.arange(k) != j]] = 0.0
        for other in range(n):
            if other != unit:
                col_upper[layout.r(other, j)] = 0.0
                if distance.get(other, math.inf) + weight[unit] > high:
                    col_upper[layout.x(other, j)] = 0.0


def _lightest_paths(graph: UnitGraph, weight: np.ndarray, source: int, avoid: set[int]) -> dict[int, float]:
    """Weight of the lightest path from `source` to each unit (the weights of the units entered),
    not passing through `avoid`."""
    directed = nx.DiGraph()
    directed.add_node(source)
    for a, b in graph.edges.tolist():
        if a in avoid or b in avoid:
            continue
        directed.add_edge(a, b, w=float(weight[b]))
        directed.add_edge(b, a, w=float(weight[a]))
    return nx.single_source_dijkstra_path_length(directed, source, weight="w")


def _lightest_path(graph: UnitGraph, weight: np.ndarray, source: int, target: int, avoid: set[int]) -> float:
    return _lightest_paths(graph, weight, source, avoid).get(target, math.inf)


def _columns_of(graph: UnitGraph, layout: _Layout, order: np.ndarray, territory: np.ndarray) -> np.ndarray | None:
    """The model's columns for a plan (a territory per unit): labels by first appearance along the
    ordering, roots, cut edges, the orbitope's sums, and flows along a breadth-first tree from each root.
    None when a territory is not connected."""
    n, k = layout.n, layout.k
    label_of: dict[int, int] = {}
    for unit in order.tolist():
        label_of.setdefault(int(territory[unit]), len(label_of))
    if len(label_of) != k:
        return None
    labels = np.array([label_of[int(t)] for t in territory])
    values = np.zeros(layout.num_cols)
    values[layout.x(np.arange(n), labels)] = 1.0
    root = {}
    for unit in order.tolist():
        root.setdefault(int(labels[unit]), unit)
    for j, unit in root.items():
        values[layout.r(unit, j)] = 1.0
    u, v = graph.edges[:, 0], graph.edges[:, 1]
    cut = labels[u] != labels[v]
    values[layout.z(np.flatnonzero(cut), labels[u[cut]])] = 1.0
    for j in range(k):
        values[layout.orbitope(0, np.arange(n), j)] = (labels >= j).astype(float)
    is_root = np.zeros((n, k))
    for j, unit in root.items():
        is_root[unit, j] = 1.0
    values[layout.orbitope(1, order[:, None], np.arange(k)[None, :])] = np.cumsum(is_root[order], axis=0)
    # u[b, j] = u[a, j] + r[a, j] − r[b, j + 1] along the ordering, from u[o_0, j] = 0
    shifted = np.zeros((n, k))
    shifted[:, :-1] = is_root[:, 1:]
    carry = np.vstack([np.zeros(k), np.cumsum(is_root[order[:-1]] - shifted[order[1:]], axis=0)])
    values[layout.orbitope(2, order[:, None], np.arange(k)[None, :])] = carry
    both_ways = np.concatenate([graph.edges, graph.edges[:, ::-1]]).tolist()
    arcs = {(int(a), int(b)): i for i, (a, b) in enumerate(both_ways)}
    for j, unit in root.items():
        members = np.flatnonzero(labels == j).tolist()
        tree = nx.bfs_tree(graph.graph.subgraph(members), unit)
        if tree.number_of_nodes() != len(members):
            return None
        below = {w: 1 for w in members}
        for w in reversed(list(nx.topological_sort(tree))):
            for parent in tree.predecessors(w):
                below[parent] += below[w]
                values[layout.flow(arcs[(parent, w)])] = below[w]
    return values
