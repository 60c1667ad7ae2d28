"""Real county adjacency: Georgia's 159 counties as libpysal ships them, 1990 population as workload."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest

from tercap.territory.carve import CarveSettings, carve
from tercap.territory.check import check_territories
from tercap.territory.units import UnitGraph
from tests.territory.test_carve import frames


@pytest.fixture(scope="module")
def georgia() -> UnitGraph:
    libpysal = pytest.importorskip("libpysal")
    from libpysal import examples

    with warnings.catch_warnings():  # libpysal's shapefile reader announces a future deprecation
        warnings.simplefilter("ignore", FutureWarning)
        weights = libpysal.weights.Queen.from_shapefile(examples.get_path("G_utm.shp"))
        table = libpysal.io.open(examples.get_path("G_utm.dbf"))
        population = np.array(table.by_col("TotPop90"), dtype=float)
        lat, lon = np.array(table.by_col("Latitude")), np.array(table.by_col("Longitud"))
    edges = np.array(sorted({(min(i, j), max(i, j)) for i, others in weights.neighbors.items() for j in others}))
    ids = np.array([f"C{i:03d}" for i in range(weights.n)], dtype=object)
    return UnitGraph(ids, lat, lon, {"workload": population, "potential": population,
                                     "accounts": np.ones(weights.n)}, edges, np.ones(len(edges)), derived=False)


@pytest.mark.parametrize(("count", "tolerance"), [(4, 0.02), (8, 0.05)])
def test_georgia_counties_are_carved_into_balanced_contiguous_territories(georgia, count, tolerance):
    assert georgia.size == 159 and georgia.component.max() == 0
    carving = carve(georgia, CarveSettings(count=count, tolerances={"workload": tolerance}))
    assert carving.excess == 0
    assert check_territories(*frames(georgia, carving.territory), {"workload": tolerance}) == []


def test_fifty_georgia_counties_at_half_a_percent_are_carved_with_proven_fewest_cut_edges(georgia):
    from tercap.status import SolveStatus
    from tercap.territory.labeling import cut_edge_carving

    graph = georgia.graph
    block = sorted(([1] + [v for _, v in nx.bfs_edges(graph, 1)])[:50])  # a breadth-first block of counties
    position = {unit: i for i, unit in enumerate(block)}
    edges = np.array([(position[a], position[b]) for a, b in georgia.edges.tolist() if a in position and b in position])
    measures = {name: values[block] for name, values in georgia.measures.items()}
    counties = UnitGraph(georgia.unit_ids[block], georgia.lat[block], georgia.lon[block], measures, edges,
                         np.ones(len(edges)), derived=False)
    start = carve(counties, CarveSettings(count=2, tolerances={"workload": 0.005}, compactness="boundary",
                                          time_limit=10))
    result = cut_edge_carving(counties, 2, {"workload": 0.005}, time_limit=120,
                              start=start.territory if start.excess == 0 else None)
    assert result.status is SolveStatus.OPTIMAL and result.objective == result.bound == 13
    assert check_territories(*frames(counties, result.territory), {"workload": 0.005}) == []
