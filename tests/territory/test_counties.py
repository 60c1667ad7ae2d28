"""Real county adjacency: Georgia's 159 counties as libpysal ships them, 1990 population as workload."""

from __future__ import annotations

import warnings

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
