"""Exact territories on real county graphs: fewest cut edges at ±0.5% population, proven or not.

Georgia's 159 counties as libpysal ships them (queen adjacency, 1990 population), cut into connected
blocks of 50, 75 and 100 counties (breadth-first from county 1, the first N counties reached), each
carved into K territories by `tercap.territory.labeling.cut_edge_carving` (the labeling model, HiGHS,
1 thread), started from the heuristic's plan. Reported: the heuristic's cut edges and seconds, the
solver's status, the plan's cut edges, the bound (rounded up: cut edges are whole), the seconds, and
whether the plan is contiguous and balanced by the independent checker.

Run from the repository root (needs libpysal, in the dev extra):
    .venv/bin/python benchmarks/territory_exact.py [--blocks 50 75 100] [--counts 2 3 4] [--time-limit 600]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
import warnings

import networkx as nx
import numpy as np
import pandas as pd
from results import update_section

SECTION = "## Exact territories on county graphs"
TOLERANCE = 0.005


def georgia() -> tuple[nx.Graph, np.ndarray, np.ndarray, np.ndarray]:
    import libpysal
    from libpysal import examples

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        weights = libpysal.weights.Queen.from_shapefile(examples.get_path("G_utm.shp"))
        table = libpysal.io.open(examples.get_path("G_utm.dbf"))
        population = np.array(table.by_col("TotPop90"), dtype=float)
        lat, lon = np.array(table.by_col("Latitude")), np.array(table.by_col("Longitud"))
    graph = nx.Graph()
    graph.add_nodes_from(range(weights.n))
    graph.add_edges_from((i, j) for i, others in weights.neighbors.items() for j in others if i != j)
    return graph, population, lat, lon


def block(graph: nx.Graph, population: np.ndarray, lat: np.ndarray, lon: np.ndarray, size: int):
    from tercap.territory.units import UnitGraph

    counties = sorted(([1] + [v for _, v in nx.bfs_edges(graph, 1)])[:size])
    position = {unit: i for i, unit in enumerate(counties)}
    edges = np.array(sorted((min(position[a], position[b]), max(position[a], position[b]))
                            for a, b in graph.subgraph(counties).edges))
    measures = {"workload": population[counties], "potential": population[counties], "accounts": np.ones(size)}
    return UnitGraph(np.array([f"C{c:03d}" for c in counties], dtype=object), lat[counties], lon[counties],
                     measures, edges, np.ones(len(edges)), derived=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", nargs="+", type=int, default=[50, 75, 100])
    parser.add_argument("--counts", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument("--time-limit", type=float, default=600.0)
    args = parser.parse_args()
    from tercap.territory.carve import CarveSettings, carve
    from tercap.territory.check import check_territories
    from tercap.territory.labeling import cut_edge_carving

    graph, population, lat, lon = georgia()
    tolerances = {"workload": TOLERANCE}
    rows = []
    for size in args.blocks:
        counties = block(graph, population, lat, lon, size)
        for count in args.counts:
            began = time.perf_counter()
            start = carve(counties, CarveSettings(count=count, tolerances=tolerances, compactness="boundary",
                                                  time_limit=10))
            heuristic_seconds = time.perf_counter() - began
            began = time.perf_counter()
            result = cut_edge_carving(counties, count, tolerances, args.time_limit,
                                      start=start.territory if start.excess == 0 else None)
            seconds = time.perf_counter() - began
            valid = None
            if result.territory is not None:
                units = pd.DataFrame({"unit_id": counties.unit_ids, "territory_id": result.territory})
                accounts = pd.DataFrame({"geo_unit": counties.unit_ids,
                                         "workload_hours": counties.measures["workload"],
                                         "potential": counties.measures["potential"]})
                edges = pd.DataFrame({"unit_a": counties.unit_ids[counties.edges[:, 0]],
                                      "unit_b": counties.unit_ids[counties.edges[:, 1]]})
                valid = check_territories(units, accounts, edges, tolerances) == []
            heuristic = f"{start.compactness:.0f}" if start.excess == 0 else "out of tolerance"
            rows.append((size, len(counties.edges), count, heuristic, heuristic_seconds, result, seconds, valid))
            print(rows[-1][:5], result.status.value, result.objective, result.bound, f"{seconds:.1f}", valid,
                  flush=True)
    lines = [SECTION, "",
             f"Georgia counties (libpysal), breadth-first blocks from county 1, ±{TOLERANCE:.1%} population, "
             "compactness `boundary`: the labeling model", "(`tercap.territory.labeling`) with HiGHS on 1 thread, "
             f"started from the heuristic's plan. Measured {dt.date.today().isoformat()} on {os.cpu_count()} "
             f"cores, Python {platform.python_version()}, with:", "", "```",
             shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| counties | adjacencies | territories | heuristic cut edges (s) | status | cut edges | bound | "
             "seconds | contiguous and within ±0.5% |", "|---:|---:|---:|---|---|---:|---:|---:|---|"]
    for size, edges, count, heuristic, heuristic_seconds, result, seconds, valid in rows:
        objective = "–" if result.objective is None else f"{result.objective:.0f}"
        bound = "–" if result.bound is None else f"{result.bound:.0f}"
        checked = "–" if valid is None else ("yes" if valid else "no")
        lines.append(f"| {size} | {edges} | {count} | {heuristic} ({heuristic_seconds:.1f}) | "
                     f"{result.status.value} | {objective} | {bound} | {seconds:.1f} | {checked} |")
    lines += ["", f"Load average (1 min) after the run: {os.getloadavg()[0]:.1f}."]
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
