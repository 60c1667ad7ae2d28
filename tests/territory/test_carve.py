"""Territory carving on graphs whose answers are known: contiguity checked independently, balance,
pinned units, components, derived adjacency."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from tercap.territory.carve import CarveSettings, carve, territories_per_component
from tercap.territory.check import check_territories
from tercap.territory.units import UnitGraph, derived_adjacency


def grid_graph(rows: int, columns: int, seed: int = 1, drop: tuple[tuple[int, int], ...] = ()) -> UnitGraph:
    """A rows × columns grid of units 0.05° apart with gamma-distributed workloads."""
    n = rows * columns
    i, j = np.divmod(np.arange(n), columns)
    workload = np.random.default_rng(seed).gamma(2.0, 50.0, n)
    edges = [(a, a + 1) for a in range(n) if (a % columns) + 1 < columns]
    edges += [(a, a + columns) for a in range(n) if a + columns < n]
    edges = [e for e in edges if e not in drop]
    return UnitGraph(np.array([f"U{a:04d}" for a in range(n)], dtype=object), 30 + i * 0.05, -100 + j * 0.05,
                     {"workload": workload, "potential": workload * 100, "accounts": np.ones(n)},
                     np.array(edges), np.ones(len(edges)), derived=False)


def frames(graph: UnitGraph, territory: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What the independent checker reads: units, one account per unit, and the edges."""
    units = pd.DataFrame({"unit_id": graph.unit_ids, "territory_id": territory})
    accounts = pd.DataFrame({"geo_unit": graph.unit_ids, "workload_hours": graph.measures["workload"],
                             "potential": graph.measures["potential"]})
    edges = pd.DataFrame({"unit_a": graph.unit_ids[graph.edges[:, 0]], "unit_b": graph.unit_ids[graph.edges[:, 1]]})
    return units, accounts, edges


@pytest.mark.parametrize(("count", "tolerance"), [(10, 0.02), (40, 0.02), (100, 0.05)])
def test_a_grid_is_carved_into_contiguous_balanced_territories(count, tolerance):
    graph = grid_graph(40, 40)
    carving = carve(graph, CarveSettings(count=count, tolerances={"workload": tolerance}, starts=2, time_limit=8))
    assert carving.excess == 0
    assert np.bincount(carving.territory, minlength=count).min() > 0
    assert check_territories(*frames(graph, carving.territory), {"workload": tolerance}) == []


def test_the_checker_finds_broken_contiguity_and_balance():
    graph = grid_graph(4, 4)
    territory = np.array([0, 1, 0, 1] * 4)  # columns alternate: neither territory is connected
    problems = check_territories(*frames(graph, territory), {"workload": 0.0})
    assert sum("not contiguous" in p for p in problems) == 2
    lopsided = np.r_[np.zeros(15, dtype=int), 1]
    problems = check_territories(*frames(graph, lopsided), {"workload": 0.1})
    assert any("from its target" in p for p in problems) and not any("contiguous" in p for p in problems)


def test_pinned_units_stay_and_the_result_is_deterministic():
    graph = grid_graph(20, 20, seed=4)
    pinned = {0: 0, 399: 1, 210: 2, 19: 3}
    settings = CarveSettings(count=4, tolerances={"workload": 0.03}, starts=2, seed=7)
    carving = carve(graph, settings, fixed=pinned)
    assert all(carving.territory[unit] == t for unit, t in pinned.items())
    named = {str(graph.unit_ids[u]): t for u, t in pinned.items()}
    assert check_territories(*frames(graph, carving.territory), {"workload": 0.03}, named) == []
    assert np.array_equal(carve(graph, settings, fixed=pinned).territory, carving.territory)


def test_territories_never_span_disconnected_parts():
    """Cutting the grid's middle column of edges leaves two islands: each gets its share of territories
    and no territory crosses."""
    rows, columns = 10, 10
    drop = tuple((a, a + 1) for a in range(rows * columns) if a % columns == 4)
    graph = grid_graph(rows, columns, drop=drop)
    assert graph.component.max() == 1
    share = territories_per_component(graph, 6, graph.measures["workload"])
    assert share.sum() == 6 and share.min() >= 1
    carving = carve(graph, CarveSettings(count=6, tolerances={"workload": 0.25}))
    for t in range(6):
        assert len(set(graph.component[carving.territory == t])) == 1
    with pytest.raises(ValueError, match="cannot cover 2 disconnected parts"):
        carve(graph, CarveSettings(count=1, tolerances={"workload": 0.1}))


def test_derived_adjacency_of_a_grid_links_neighbours_and_drops_long_edges():
    i, j = np.divmod(np.arange(36), 6)
    lat, lon = np.r_[30 + i * 0.1, 45.0], np.r_[-100 + j * 0.1, -80.0]  # a far unit off the grid
    edges = derived_adjacency(lat, lon)
    graph = nx.Graph()
    graph.add_edges_from(edges.tolist())
    assert all(graph.has_edge(a, a + 1) for a in range(36) if a % 6 < 5)
    assert all(graph.has_edge(a, a + 6) for a in range(30))
    assert 36 not in graph  # its edges were far longer than its neighbours' typical ones


def test_an_island_whose_territories_cannot_balance_is_diagnosed():
    """Two islands of 50 units with equal workload per unit, 3 territories: one island gets 2, the other 1,
    so its single territory carries 1.5 × the mean, whatever the carving."""
    from tercap.territory import _component_diagnosis

    rows, columns = 10, 10
    drop = tuple((a, a + 1) for a in range(rows * columns) if a % columns == 4)
    graph = grid_graph(rows, columns, drop=drop)
    graph.measures["workload"][:] = 1.0
    lines = _component_diagnosis(graph, 3, {"workload": 0.05})
    assert len(lines) == 2 and "not connected to the rest" in lines[0] and "declare an adjacency link" in lines[0]
    assert _component_diagnosis(graph, 4, {"workload": 0.05}) == []


def test_ejection_chains_keep_territories_connected_pins_held_and_lower_the_excess():
    from tercap.territory.carve import _grow, _Search

    graph = grid_graph(15, 15, seed=5)
    settings = CarveSettings(count=6, tolerances={"workload": 0.02})
    pinned = {0: 0, 14: 1, 112: 2, 210: 3, 224: 4, 7: 5}
    search = _Search(graph, settings, _grow(graph, {t: u for u, t in pinned.items()}, settings, pinned),
                     set(pinned))
    chains = 0
    excess = search.excess()
    while chains < 30 and search.chain(time.perf_counter() + 10):
        chains += 1
        assert search.excess() < excess
        excess = search.excess()
        assert all(search.territory[u] == t for u, t in pinned.items())
        assert check_territories(*frames(graph, search.territory), {}) == []  # every territory contiguous
        assert np.allclose(search.load[:, 0], np.bincount(search.territory, graph.measures["workload"], 6))
    assert chains > 0, "the grown plan was already balanced: no chain tested"


def test_recombination_improves_compactness_and_keeps_balance_contiguity_and_pins():
    from tercap.territory.carve import _bisect_all, _improve, _Search

    graph = grid_graph(24, 24, seed=8)
    settings = CarveSettings(count=12, tolerances={"workload": 0.02})
    pinned = {0: 0, 575: 1}
    territory = _bisect_all(graph, settings, pinned, np.random.default_rng(3))
    assert territory is not None
    moves_only = _Search(graph, settings, territory, set(pinned))
    _improve(moves_only, time.perf_counter() + 30, np.random.default_rng(3), 200, recombine=False)
    recombined = _Search(graph, settings, moves_only.territory, set(pinned))
    _improve(recombined, time.perf_counter() + 15, np.random.default_rng(3), 200)
    assert recombined.excess() == 0 and moves_only.excess() == 0
    assert recombined.compactness() < 0.97 * moves_only.compactness()  # local optimum of moves, beaten
    assert all(recombined.territory[u] == t for u, t in pinned.items())
    assert check_territories(*frames(graph, recombined.territory), {"workload": 0.02}) == []


def test_mip_polish_re_splits_pairs_proven_optimal_and_keeps_the_plan_valid():
    from tercap.territory.carve import _bisect_all, _Search

    graph = grid_graph(14, 14, seed=3)
    settings = CarveSettings(count=12, tolerances={"workload": 0.03}, compactness="boundary")
    search = _Search(graph, settings, _bisect_all(graph, settings, {}, np.random.default_rng(1)), set())
    search.run(time.perf_counter() + 30, 200)
    before = search.compactness()
    assert search.mip_polish(time.perf_counter() + 120) > 0
    assert search.compactness() < before and search.excess() == 0
    assert check_territories(*frames(graph, search.territory), {"workload": 0.03}) == []


def test_distance_polish_re_splits_pairs_around_their_centres_and_keeps_the_plan_valid():
    """Random tree cuts settled by boundary moves only leave pairs whose exact re-split about their own
    centres is more compact; every replaced pair stays contiguous and within tolerance, pinned units stay."""
    from tercap.territory.carve import _bisect_all, _Search

    graph = grid_graph(14, 14, seed=3)
    settings = CarveSettings(count=12, tolerances={"workload": 0.03}, compactness="distance")
    pinned = {0: 0, 195: 11}
    search = _Search(graph, settings, _bisect_all(graph, settings, pinned, np.random.default_rng(1)), set(pinned))
    search.run(time.perf_counter() + 30, 200)
    before = search.compactness()
    assert search.excess() == 0 and search.distance_polish(time.perf_counter() + 120) > 0
    assert search.compactness() < before and search.excess() == 0
    assert all(search.territory[u] == t for u, t in pinned.items())
    assert check_territories(*frames(graph, search.territory), {"workload": 0.03}) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_split_around_fixed_centres_is_the_brute_force_optimum(seed):
    """Every labelling of a 3 × 4 grid: each side contiguous and holding its root, loads within the
    bounds, least Σ w·|xy − own centre|² about two given points."""
    import networkx as nx

    from tercap.territory.exact import split_around_centres

    graph = grid_graph(3, 4, seed=seed)
    rng = np.random.default_rng(seed)
    xy, w = graph.xy, graph.measures["workload"]
    centres = xy[rng.choice(12, 2, replace=False)] + rng.normal(0, 2.0, (2, 2))
    roots, fixed = (0, 11), {5: int(seed % 2)}
    total = w.sum()
    low, high = np.array([[0.35 * total], [0.35 * total]]), np.array([[0.65 * total], [0.65 * total]])
    best = None
    for mask in range(2 ** 12):
        labels = np.array([(mask >> u) & 1 for u in range(12)])
        if labels[0] != 0 or labels[11] != 1 or labels[5] != fixed[5]:
            continue
        loads = np.array([w[labels == 0].sum(), w[labels == 1].sum()])
        if np.any(loads < low[:, 0]) or np.any(loads > high[:, 0]):
            continue
        if not all(nx.is_connected(graph.graph.subgraph(np.flatnonzero(labels == t).tolist())) for t in (0, 1)):
            continue
        value = float(w @ ((xy - centres[labels]) ** 2).sum(axis=1))
        best = value if best is None else min(best, value)
    labels, status = split_around_centres(xy, w, w[:, None], graph.edges, centres, roots, low, high, fixed, 30.0)
    assert labels is not None and status.value == "optimal" and best is not None
    assert float(w @ ((xy - centres[labels]) ** 2).sum(axis=1)) == pytest.approx(best, rel=1e-7)
