"""The exact territory model for small instances: location–allocation with flow-based contiguity.

Variables x[u, c] = 1 when unit u belongs to the territory centred at unit c (c among the candidate
centres: every unit, or the reps' home units when territories are carved around them); x[c, c] says
that c is a centre. Constraints:

- each unit in exactly one territory; K centres; x[u, c] ≤ x[c, c];
- balance per measure: (1 − tol)·target_c·x[c, c] ≤ Σ_u m_u·x[u, c] ≤ (1 + tol)·target_c·x[c, c], the
  target an equal share of the total (or, around fixed centres, each centre's given share);
- contiguity by a flow per centre (Shirabe's formulation): every unit of c's territory other than c
  sends one unit of flow, which can travel only along adjacency arcs between units of that territory
  and ends at c; so every unit is joined to its centre inside its territory.

Objective `distance`: Σ w_u·|x_u − x_c|² x[u, c] (the moment of inertia about the centre unit, km²,
÷ the instance's own spread); `boundary`: the length of cut adjacency edges (z_e ≥ |x[u, c] − x[v, c]|).
The backend's own status, objective and bound are reported, never only its status word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tercap.backends import SolveLimits, get_backend, relative_gap
from tercap.model import INF, LinearModel, RowBuilder
from tercap.status import SolveStatus
from tercap.territory.units import UnitGraph

EXACT_MAX_UNITS = 80  # "auto" solves the exact model up to this many units


@dataclass(frozen=True, eq=False)
class ExactCarving:
    """The exact model's answer: a territory per unit (None: no plan), its objective and bound."""

    territory: np.ndarray | None
    centres: np.ndarray | None  # per territory, its centre unit
    status: SolveStatus
    objective: float | None
    bound: float | None
    solver_status: str

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)


def territory_model(graph: UnitGraph, count: int, tolerances: dict[str, float], compactness: str,
                    centres: np.ndarray | None = None, shares: np.ndarray | None = None
                    ) -> tuple[LinearModel, np.ndarray]:
    """The model and its candidate centres (`centres` fixes them: exactly those units are centres;
    `shares`, with them, gives each its share of every measure instead of an equal one)."""
    if shares is not None and centres is None:
        raise ValueError("unequal shares need fixed centres")
    n = graph.size
    fixed = centres is not None
    candidates = np.asarray(centres, dtype=np.int64) if fixed else np.arange(n)
    k = len(candidates)
    arcs = np.concatenate([graph.edges, graph.edges[:, ::-1]])  # directed u → v
    a = len(arcs)
    x_cols = n * k  # x[u, ci] at u * k + ci
    f_start = x_cols  # f[arc, ci] at f_start + arc * k + ci
    z_start = f_start + a * k
    boundary = compactness == "boundary"
    num_cols = z_start + (len(graph.edges) if boundary else 0)
    rows = RowBuilder(num_cols)
    unit_of = np.repeat(np.arange(n), k)
    centre_of = np.tile(np.arange(k), n)
    x_index = np.arange(x_cols)
    diagonal = candidates * k + np.arange(k)  # x[c, c]

    # each unit in exactly one territory
    rows.add("assign", unit_of, x_index, np.ones(x_cols), np.ones(n), np.ones(n), np.arange(n))
    if not fixed:
        rows.add("centres", np.zeros(k), diagonal, np.ones(k), [count], [count], [-1])
        off = unit_of != candidates[centre_of]
        pairs = x_index[off]
        rows.add("link", np.r_[np.arange(pairs.size), np.arange(pairs.size)],
                 np.r_[pairs, diagonal[centre_of[off]]], np.r_[np.ones(pairs.size), -np.ones(pairs.size)],
                 np.full(pairs.size, -INF), np.zeros(pairs.size), unit_of[off])
    # balance, per measure and centre
    for measure, tolerance in tolerances.items():
        values = graph.measures[measure]
        target = float(values.sum()) * (np.full(k, 1.0 / count) if shares is None else shares / shares.sum())
        for side, share in (("low", 1 - tolerance), ("high", 1 + tolerance)):
            block_rows = np.r_[centre_of, np.arange(k)]
            block_cols = np.r_[x_index, diagonal]
            block_vals = np.r_[values[unit_of], -share * target]
            lower, upper = (np.zeros(k), np.full(k, INF)) if side == "low" else (np.full(k, -INF), np.zeros(k))
            rows.add(f"{measure}_balance", block_rows, block_cols, block_vals, lower, upper, candidates)
    # flow: for u ≠ c, out − in = x[u, c]; arcs only inside c's territory; nothing leaves c
    arc_of = np.repeat(np.arange(a), k)
    arc_centre = np.tile(np.arange(k), a)
    f_index = f_start + np.arange(a * k)
    tail, head = arcs[arc_of, 0], arcs[arc_of, 1]
    conservation_row = tail * k + arc_centre  # row (u, ci) in a block of n * k rows
    inflow_row = head * k + arc_centre
    not_centre = unit_of != candidates[centre_of]
    rows.add("flow", np.r_[conservation_row, inflow_row, x_index[not_centre]],
             np.r_[f_index, f_index, x_index[not_centre]],
             np.r_[np.ones(a * k), -np.ones(a * k), -np.ones(int(not_centre.sum()))],
             np.where(not_centre, 0.0, -INF), np.where(not_centre, 0.0, INF), unit_of)
    big = float(n - 1)
    for end in (tail, head):  # f[u → v, c] ≤ (n − 1)·x[end, c]
        rows.add("flow_capacity", np.r_[np.arange(a * k), np.arange(a * k)],
                 np.r_[f_index, end * k + arc_centre], np.r_[np.ones(a * k), -big * np.ones(a * k)],
                 np.full(a * k, -INF), np.zeros(a * k), end)
    col_upper = np.ones(num_cols)
    col_upper[f_start:z_start] = big
    col_upper[f_start + np.flatnonzero(tail == candidates[arc_centre])] = 0.0  # nothing leaves the centre
    col_lower = np.zeros(num_cols)
    if fixed:
        col_lower[diagonal] = 1.0
    cost = np.zeros(num_cols)
    if boundary:
        e = len(graph.edges)
        z_index = z_start + np.arange(e)
        edge_of = np.repeat(np.arange(e), k)
        centre_e = np.tile(np.arange(k), e)
        u_col = graph.edges[edge_of, 0] * k + centre_e
        v_col = graph.edges[edge_of, 1] * k + centre_e
        for sign in (1.0, -1.0):  # z_e ≥ ±(x[u, c] − x[v, c])
            rows.add("cut", np.r_[np.arange(e * k), np.arange(e * k), np.arange(e * k)],
                     np.r_[z_index[edge_of], u_col, v_col],
                     np.r_[np.ones(e * k), -sign * np.ones(e * k), sign * np.ones(e * k)],
                     np.zeros(e * k), np.full(e * k, INF), edge_of)
        cost[z_index] = graph.edge_length
        col_upper[z_index] = 1.0
    else:
        w = graph.measures[next(iter(tolerances))] + 1e-9
        squared = ((graph.xy[unit_of] - graph.xy[candidates[centre_of]]) ** 2).sum(axis=1)
        centre = (w[:, None] * graph.xy).sum(axis=0) / w.sum()
        spread = max(float((w * ((graph.xy - centre) ** 2).sum(axis=1)).sum()), 1e-9)
        cost[:x_cols] = w[unit_of] * squared / spread
    integral = np.zeros(num_cols, dtype=bool)
    integral[:x_cols] = True
    matrix, lower, upper, family, owner = rows.build()
    model = LinearModel(cost=cost, matrix=sp.csr_matrix(matrix), row_lower=lower, row_upper=upper,
                        col_lower=col_lower, col_upper=col_upper, integral=integral, row_family=family,
                        row_owner=owner)
    return model, candidates


def exact_carving(graph: UnitGraph, count: int, tolerances: dict[str, float], compactness: str = "distance",
                  centres: np.ndarray | None = None, time_limit: float = 60.0, backend: str = "highs",
                  mip_gap: float = 0.0, start: np.ndarray | None = None, shares: np.ndarray | None = None
                  ) -> ExactCarving:
    """Solve the exact model; a time limit returns the best plan found with the solver's bound. `start`
    (a territory per unit, e.g. the heuristic's plan) is handed to the solver as a first plan; `shares`
    (with `centres`): each centre's share of every measure."""
    model, candidates = territory_model(graph, count, tolerances, compactness, centres, shares)
    warm = _warm_start(graph, model, candidates, start, compactness, tolerances) if start is not None else None
    result = get_backend(backend).solve(model, SolveLimits(time_limit=time_limit, mip_gap=mip_gap, threads=1),
                                        warm_start=warm)
    if result.x is None:
        return ExactCarving(None, None, result.status, None, result.bound, result.solver_status)
    k = len(candidates)
    x = result.x[: graph.size * k].reshape(graph.size, k)
    chosen = np.argmax(x, axis=1)
    used = np.flatnonzero(x[candidates, np.arange(k)] > 0.5)
    relabel = np.full(k, -1)
    relabel[used] = np.arange(used.size)
    return ExactCarving(relabel[chosen], candidates[used], result.status, result.objective, result.bound,
                        result.solver_status)


def _warm_start(graph: UnitGraph, model: LinearModel, candidates: np.ndarray, territory: np.ndarray,
                compactness: str, tolerances: dict[str, float]) -> np.ndarray | None:
    """The model's columns for a plan given as a territory per unit: each territory's centre (its home
    unit, or the member that minimises the objective), flows along a breadth-first tree to it, cut edges.
    None when a territory has no candidate centre or is not connected."""
    import networkx as nx

    n, k = graph.size, len(candidates)
    position = {int(unit): ci for ci, unit in enumerate(candidates)}
    arcs = np.concatenate([graph.edges, graph.edges[:, ::-1]])
    arc_index = {(int(u), int(v)): i for i, (u, v) in enumerate(arcs.tolist())}
    values = np.zeros(model.num_cols)
    w = graph.measures[next(iter(tolerances))] + 1e-9
    for t in np.unique(territory):
        members = np.flatnonzero(territory == t)
        options = [int(u) for u in members if int(u) in position]
        if not options:
            return None
        squared = ((graph.xy[members, None, :] - graph.xy[None, options, :]) ** 2).sum(axis=2)
        centre = options[int(np.argmin(w[members] @ squared))]
        ci = position[centre]
        values[members * k + ci] = 1.0
        tree = nx.bfs_tree(graph.graph.subgraph(members.tolist()), centre)
        if tree.number_of_nodes() != members.size:
            return None
        below = {int(u): 1 for u in members}
        for u in reversed(list(nx.topological_sort(tree))):
            for parent in tree.predecessors(u):
                below[parent] += below[u]
                values[n * k + arc_index[(u, parent)] * k + ci] = below[u]
    if compactness == "boundary":
        cut = territory[graph.edges[:, 0]] != territory[graph.edges[:, 1]]
        values[n * k + len(arcs) * k + np.flatnonzero(cut)] = 1.0
    return values


def split_around_centres(xy: np.ndarray, weight: np.ndarray, values: np.ndarray, edges: np.ndarray,
                         centres: np.ndarray, roots: tuple[int, int], low: np.ndarray, high: np.ndarray,
                         fixed: dict[int, int], time_limit: float, start: np.ndarray | None = None
                         ) -> tuple[np.ndarray | None, SolveStatus]:
    """Two territories of the units given (a pair to re-split), each contiguous, each measure within
    [low[t], high[t]], least Σ weight·|xy − centre|² about two fixed centre points; roots[t] (and the
    units of `fixed`: unit → 0 or 1) stay in territory t. With the centres at the pair's own weighted
    centres, the optimum's moment of inertia is at most the current split's: re-centring only lowers it
    further. Variables: y (1: the unit goes to territory 1) and one flow per territory from its root
    along arcs inside it (Shirabe). Returns the label per unit (None: no plan) and the solver's status.
    `start`: a label per unit, handed to the solver as its first plan (flows along breadth-first trees)."""
    n, m = len(weight), len(edges)
    arcs = np.concatenate([edges, edges[:, ::-1]]) if m else np.zeros((0, 2), dtype=np.int64)
    a = len(arcs)
    flow = (n, n + a)  # first column of territory t's arc flows
    rows = RowBuilder(n + 2 * a)
    total = values.sum(axis=0)
    # Σ v·y is territory 1's load; territory 0's is the total less it
    lower = np.maximum(low[1], total - high[0])
    upper = np.minimum(high[1], total - low[0])
    measures = values.shape[1]
    rows.add("balance", np.repeat(np.arange(measures), n), np.tile(np.arange(n), measures), values.T.ravel(),
             lower, upper, np.arange(measures))
    big = float(max(n - 1, 1))
    arc_ids = np.arange(a)
    for t, sign in ((0, -1.0), (1, 1.0)):
        # conservation at every unit but the root: inflow − outflow = 1 − y (t = 0) or y (t = 1)
        keep = np.flatnonzero(np.arange(n) != roots[t])
        position = np.full(n, -1)
        position[keep] = np.arange(keep.size)
        into, out_of = position[arcs[:, 1]], position[arcs[:, 0]]
        r_in, r_out = into >= 0, out_of >= 0
        row_index = np.concatenate([into[r_in], out_of[r_out], np.arange(keep.size)])
        cols = np.concatenate([flow[t] + arc_ids[r_in], flow[t] + arc_ids[r_out], keep])
        vals = np.concatenate([np.ones(r_in.sum()), -np.ones(r_out.sum()), np.full(keep.size, -sign)])
        rhs = np.full(keep.size, 1.0 if t == 0 else 0.0)
        rows.add(f"flow {t}", row_index, cols, vals, rhs, rhs, keep)
        # an arc carries flow only between two units of territory t
        for end in (0, 1):
            cap_rows = np.arange(a)
            rows.add(f"arc {t}", np.r_[cap_rows, cap_rows], np.r_[flow[t] + arc_ids, arcs[:, end]],
                     np.r_[np.ones(a), np.full(a, -sign * big)], np.full(a, -INF),
                     np.full(a, big if t == 0 else 0.0), arc_ids)
    matrix, row_lower, row_upper, family, owner = rows.build()
    squared = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)  # units × 2
    scale = max(float(weight @ squared.max(axis=1)), 1e-12)
    cost = np.zeros(n + 2 * a)
    cost[:n] = weight * (squared[:, 1] - squared[:, 0]) / scale
    col_lower, col_upper = np.zeros(n + 2 * a), np.r_[np.ones(n), np.full(2 * a, big)]
    for unit, label in {**fixed, roots[0]: 0, roots[1]: 1}.items():
        col_lower[unit] = col_upper[unit] = float(label)
    model = LinearModel(cost=cost, matrix=matrix, row_lower=row_lower, row_upper=row_upper, col_lower=col_lower,
                        col_upper=col_upper, integral=np.r_[np.ones(n, dtype=bool), np.zeros(2 * a, dtype=bool)],
                        offset=float(weight @ squared[:, 0]) / scale, row_family=family, row_owner=owner)
    warm = _split_flows(n, arcs, roots, start) if start is not None else None
    result = get_backend("highs").solve(model, SolveLimits(time_limit=time_limit, mip_gap=0.0, threads=1),
                                        warm_start=warm)
    if result.x is None:
        return None, result.status
    return (result.x[:n] > 0.5).astype(np.int64), result.status


def _split_flows(n: int, arcs: np.ndarray, roots: tuple[int, int], labels: np.ndarray) -> np.ndarray | None:
    """The columns of a two-way split given as a label per unit: y, and each territory's flows along a
    breadth-first tree from its root (None when a territory is not connected to its root)."""
    a = len(arcs)
    values = np.zeros(n + 2 * a)
    values[:n] = labels
    arc_index = {(int(u), int(v)): i for i, (u, v) in enumerate(arcs.tolist())}
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for u, v in arcs.tolist():
        neighbours[u].append(v)
    for t in (0, 1):
        parent = {roots[t]: -1}
        order = [roots[t]]
        for u in order:
            for v in neighbours[u]:
                if labels[v] == t and v not in parent:
                    parent[v] = u
                    order.append(v)
        if len(order) != int(np.sum(labels == t)):
            return None
        below = dict.fromkeys(order, 1)
        for u in reversed(order[1:]):
            below[parent[u]] += below[u]
            values[n + t * a + arc_index[(parent[u], u)]] = below[u]  # the root feeds each unit one
    return values
