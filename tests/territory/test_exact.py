"""The exact territory model against brute-force enumeration of every partition of small grids."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from tercap.status import SolveStatus
from tercap.territory.check import check_territories
from tercap.territory.exact import exact_carving
from tercap.territory.units import UnitGraph
from tests.territory.test_carve import frames, grid_graph


def brute_force(graph, count: int, tolerance: float, compactness: str) -> float:
    """The best objective over every partition into `count` contiguous parts within tolerance."""
    n = graph.size
    work = graph.measures["workload"]
    mean = work.sum() / count
    w = work + 1e-9
    centre = (w[:, None] * graph.xy).sum(axis=0) / w.sum()
    spread = float((w * ((graph.xy - centre) ** 2).sum(axis=1)).sum())
    net = nx.Graph()
    net.add_nodes_from(range(n))
    net.add_edges_from(graph.edges.tolist())
    best = np.inf
    for labels in itertools.product(range(count), repeat=n):
        seen = []
        for label in labels:  # canonical: territories numbered by first appearance
            if label not in seen:
                seen.append(label)
        if seen != list(range(count)):
            continue
        labels = np.array(labels)
        load = np.bincount(labels, work, minlength=count)
        if np.any(np.abs(load / mean - 1) > tolerance + 1e-12):
            continue
        if not all(nx.is_connected(net.subgraph(np.flatnonzero(labels == t).tolist())) for t in range(count)):
            continue
        if compactness == "boundary":
            value = float(graph.edge_length[labels[graph.edges[:, 0]] != labels[graph.edges[:, 1]]].sum())
        else:
            value = 0.0
            for t in range(count):
                members = np.flatnonzero(labels == t)
                squared = ((graph.xy[members, None, :] - graph.xy[None, members, :]) ** 2).sum(axis=2)
                value += float(np.min(w[members] @ squared)) / spread  # the best centre of the part
        best = min(best, value)
    return best


@pytest.mark.parametrize(("rows", "columns", "count", "tolerance", "compactness", "seed"), [
    (3, 3, 3, 0.35, "boundary", 1), (3, 3, 3, 0.35, "distance", 2), (2, 5, 2, 0.15, "distance", 3),
    (3, 4, 2, 0.2, "boundary", 4)])
def test_exact_model_finds_the_brute_force_optimum(rows, columns, count, tolerance, compactness, seed):
    graph = grid_graph(rows, columns, seed=seed)
    result = exact_carving(graph, count, {"workload": tolerance}, compactness, time_limit=60)
    assert_proven_brute_force_optimum(result, graph, count, tolerance, compactness)


def assert_proven_brute_force_optimum(result, graph, count: int, tolerance: float, compactness: str) -> None:
    """The model proved optimal the value brute force finds, with a plan the independent checker accepts."""
    expected = brute_force(graph, count, tolerance, compactness)
    assert result.status is SolveStatus.OPTIMAL and result.territory is not None
    assert result.objective == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert result.bound == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert check_territories(*frames(graph, result.territory), {"workload": tolerance}) == []


def test_exact_model_around_fixed_centres_and_proven_infeasible():
    graph = grid_graph(4, 4, seed=5)
    homes = np.array([0, 15])
    result = exact_carving(graph, 2, {"workload": 0.1}, "boundary", centres=homes, time_limit=60)
    assert result.status is SolveStatus.OPTIMAL
    assert result.territory[0] != result.territory[15] and sorted(result.centres.tolist()) == [0, 15]
    assert check_territories(*frames(graph, result.territory), {"workload": 0.1}) == []
    graph.measures["workload"][0] = 5 * graph.measures["workload"].sum()  # one unit above any balanced half
    impossible = exact_carving(graph, 2, {"workload": 0.1}, "boundary", time_limit=60)
    assert impossible.status is SolveStatus.INFEASIBLE and impossible.territory is None


@pytest.mark.parametrize("compactness", ["boundary", "distance"])
def test_a_heuristic_plan_is_a_valid_first_plan_of_the_exact_model(compactness):
    from tercap.territory.carve import CarveSettings, carve
    from tercap.territory.exact import _warm_start, territory_model

    graph = grid_graph(4, 4, seed=6)
    tolerances = {"workload": 0.15}
    start = carve(graph, CarveSettings(count=3, tolerances=tolerances, compactness=compactness)).territory
    model, candidates = territory_model(graph, 3, tolerances, compactness)
    values = _warm_start(graph, model, candidates, start, compactness, tolerances)
    assert values is not None and not model.violations(values)
    if compactness == "boundary":
        cut = graph.edge_length[start[graph.edges[:, 0]] != start[graph.edges[:, 1]]].sum()
        assert model.objective(values) == pytest.approx(cut)
    result = exact_carving(graph, 3, tolerances, compactness, time_limit=5, start=start)
    assert result.objective is not None and result.objective <= model.objective(values) + 1e-9


@pytest.mark.parametrize(("rows", "columns", "count", "tolerance", "seed", "lengths"), [
    (3, 3, 3, 0.35, 1, False), (3, 4, 2, 0.2, 4, False), (2, 5, 3, 0.3, 6, False), (4, 4, 2, 0.15, 7, False),
    (3, 4, 2, 0.25, 9, True), (3, 3, 3, 0.4, 10, True)])
def test_cut_edge_labeling_model_finds_the_brute_force_optimum(rows, columns, count, tolerance, seed, lengths):
    from tercap.territory.labeling import cut_edge_carving

    graph = grid_graph(rows, columns, seed=seed)
    if lengths:  # border lengths that are not whole numbers: no rounding of the bound
        graph = UnitGraph(graph.unit_ids, graph.lat, graph.lon, graph.measures, graph.edges,
                          np.random.default_rng(seed).uniform(0.5, 3.0, len(graph.edges)), derived=False)
    result = cut_edge_carving(graph, count, {"workload": tolerance}, time_limit=60)
    assert_proven_brute_force_optimum(result, graph, count, tolerance, "boundary")


def test_cut_edge_model_takes_a_plan_as_a_feasible_start_and_proves_infeasibility():
    from tercap.territory.carve import CarveSettings, carve
    from tercap.territory.labeling import _columns_of, cut_edge_carving, cut_edge_model

    graph = grid_graph(6, 6, seed=11)
    tolerances = {"workload": 0.05}
    plan = carve(graph, CarveSettings(count=3, tolerances=tolerances, compactness="boundary", time_limit=5))
    assert plan.excess == 0
    model, layout, order = cut_edge_model(graph, 3, tolerances)
    x = _columns_of(graph, layout, order, plan.territory)
    assert x is not None
    activity = model.matrix @ x
    assert np.all(activity >= model.row_lower - 1e-7) and np.all(activity <= model.row_upper + 1e-7)
    assert np.all(x >= model.col_lower - 1e-9) and np.all(x <= model.col_upper + 1e-9)
    assert model.objective(x) == pytest.approx(plan.compactness)
    graph.measures["workload"][0] = 5 * graph.measures["workload"].sum()
    impossible = cut_edge_carving(graph, 2, {"workload": 0.1}, time_limit=60)
    assert impossible.status is SolveStatus.INFEASIBLE and impossible.territory is None
