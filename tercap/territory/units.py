"""Geo units as a graph: centroids, activity measures aggregated from the accounts, and adjacency.

Adjacency comes from the scenario's `adjacency` table, or, when it has none, from a Delaunay
triangulation of the centroids with long edges dropped (an edge longer than LONG_EDGE × the median
edge length of its two ends joins units that are not neighbours: across a bay, a desert, the edge
of the hull). Disconnected components are kept as they are: a territory never spans two of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp

from tercap.errors import TercapError
from tercap.scenario import Scenario

EARTH_RADIUS_KM = 6371.0
LONG_EDGE = 2.5  # a derived edge longer than this × the median edge length at both ends is dropped
MEASURES = ("workload", "potential", "accounts")


@dataclass(frozen=True, eq=False)
class UnitGraph:
    """Units with centroids (and planar km coordinates), measures, and undirected adjacency."""

    unit_ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    measures: dict[str, np.ndarray]  # measure → per unit (workload h/year, potential, accounts)
    edges: np.ndarray  # (m × 2) unit indices, i < j
    edge_length: np.ndarray  # km of shared border (1 where unknown)
    derived: bool  # adjacency derived from centroids (no adjacency table)
    xy: np.ndarray = field(init=False, repr=False)  # (n × 2) km, equirectangular about the mean latitude

    def __post_init__(self) -> None:
        object.__setattr__(self, "xy", self.project(self.lat, self.lon))

    def project(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Points (e.g. rep homes) in the units' planar km coordinates."""
        return planar_km(lat, lon, float(np.mean(self.lat)) if len(self.lat) else 0.0)

    @property
    def size(self) -> int:
        return len(self.unit_ids)

    @cached_property
    def neighbours(self) -> sp.csr_matrix:
        """Symmetric adjacency as a sparse matrix (data: border length)."""
        n = self.size
        i, j = self.edges[:, 0], self.edges[:, 1]
        matrix = sp.coo_matrix((np.r_[self.edge_length, self.edge_length], (np.r_[i, j], np.r_[j, i])), shape=(n, n))
        return matrix.tocsr()

    @cached_property
    def adjacency_lists(self) -> list[np.ndarray]:
        """Per unit, its neighbours' indices."""
        matrix = self.neighbours
        return [matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]] for u in range(self.size)]

    @cached_property
    def graph(self) -> nx.Graph:
        """The same adjacency as a networkx graph on unit indices."""
        graph = nx.Graph()
        graph.add_nodes_from(range(self.size))
        graph.add_weighted_edges_from(zip(self.edges[:, 0].tolist(), self.edges[:, 1].tolist(),
                                          self.edge_length.tolist(), strict=True), weight="length")
        return graph

    @cached_property
    def component(self) -> np.ndarray:
        """Per unit, the index of its connected component (largest component first)."""
        _, labels = sp.csgraph.connected_components(self.neighbours, directed=False)
        sizes = np.bincount(labels)
        order = np.argsort(-sizes, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return rank[labels]


def unit_graph(scenario: Scenario, accounts: pd.DataFrame | None = None) -> UnitGraph:
    """The geo units of `scenario` with the measures of its accounts in each (or of `accounts`, e.g. one
    segment's)."""
    units = scenario.geo_units
    if units is None or units.empty:
        raise TercapError("territory design needs a geo_units table (units with centroids)")
    unit_ids = units["unit_id"].to_numpy(dtype=object)
    index = pd.Index(unit_ids)
    accounts = scenario.accounts if accounts is None else accounts
    position = index.get_indexer(accounts["geo_unit"].astype(object).fillna(""))
    placed = position >= 0
    measures = {
        "workload": np.bincount(position[placed], accounts["workload_hours"].to_numpy(dtype=float)[placed],
                                minlength=len(unit_ids)),
        "potential": np.bincount(position[placed], accounts["potential"].to_numpy(dtype=float)[placed],
                                 minlength=len(unit_ids)),
        "accounts": np.bincount(position[placed], minlength=len(unit_ids)).astype(float)}
    lat, lon = units["lat"].to_numpy(dtype=float), units["lon"].to_numpy(dtype=float)
    table = scenario.adjacency
    if table is not None and not table.empty:
        a, b = index.get_indexer(table["unit_a"]), index.get_indexer(table["unit_b"])
        length = table["length"].fillna(1.0).to_numpy(dtype=float) if "length" in table else np.ones(len(a))
        edges = np.sort(np.column_stack([a, b]), axis=1)
        return UnitGraph(unit_ids, lat, lon, measures, edges, length, derived=False)
    edges = derived_adjacency(lat, lon)
    return UnitGraph(unit_ids, lat, lon, measures, edges, np.ones(len(edges)), derived=True)


def planar_km(lat: np.ndarray, lon: np.ndarray, mean_lat: float) -> np.ndarray:
    """(n × 2) km, equirectangular about `mean_lat` degrees: enough for distances within a country."""
    scale = np.cos(np.radians(mean_lat))
    return np.column_stack([np.radians(np.asarray(lon, dtype=float)) * scale,
                            np.radians(np.asarray(lat, dtype=float))]) * EARTH_RADIUS_KM


def derived_adjacency(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Edges (i < j) of the Delaunay triangulation of the centroids, without the long ones."""
    from scipy.spatial import Delaunay

    n = len(lat)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    xy = planar_km(lat, lon, float(np.mean(lat)))
    if n == 2:
        return np.array([[0, 1]])
    triangles = Delaunay(xy, qhull_options="QJ").simplices
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [0, 2]]])
    edges = np.unique(np.sort(pairs, axis=1), axis=0)
    length = np.linalg.norm(xy[edges[:, 0]] - xy[edges[:, 1]], axis=1)
    typical = np.full(n, np.inf)
    frame = pd.DataFrame({"u": np.r_[edges[:, 0], edges[:, 1]], "length": np.r_[length, length]})
    median = frame.groupby("u")["length"].median()
    typical[median.index.to_numpy()] = median.to_numpy()
    keep = length <= LONG_EDGE * np.minimum(typical[edges[:, 0]], typical[edges[:, 1]])
    return edges[keep]
