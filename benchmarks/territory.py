"""Territory carving at three sizes, tercap beside PySAL spopt and GerryChain on the same unit graph.

Generated scenarios (`generate_scenario(..., seed=1)`, accounts = 6 × units). The benchmark drops
their adjacency table so that adjacency is derived from the centroids with the rule of
tercap.territory.units (a Delaunay edge longer than 2.5 × the median at both ends goes), and carves
every account among every rep (`by_segment: false`) into equal shares (`shares: equal`): one graph,
one target, the problem the peers solve. Disconnected parts that cannot balance are reported by the
plan's notes.

Per size, three methods carve the same `tercap.territory.unit_graph(scenario)` (same units, workload,
planar km coordinates and edges) into the same number of territories:

- tercap: `design_territories(..., method="heuristic")`, balance ±tolerance on workload.
- spopt: `RegionKMeansHeuristic` (region k-means: k-means on the planar coordinates with every region
  connected in a libpysal W built from the same edges, seed 0). It has no balance constraint; its
  balance is reported as it comes. Of spopt's regionalisations with a fixed region count it is the
  quickest that keeps regions contiguous here: AZP was slower at 500 and at 3,000 units, and
  WardSpatial (fast, through scikit-learn) joins the graph's disconnected parts into one region.
- spopt, then rebalanced: spopt's plan brought within the tolerance by tercap's fewest-moves
  rebalancing (`rebalance_partition`: one connected boundary move at a time, the one that lowers the
  imbalance most, for up to --time-limit seconds): how compact a balanced plan that starts from
  region k-means is.
- GerryChain: a seed from `recursive_tree_part` at ±tolerance of the mean workload (per connected
  part of the graph, each part with the territories tercap gives it), then a ReCom chain
  (`recom` with pair reselection, `within_percent_of_ideal_population` at the tolerance) that runs
  for as many seconds as tercap took on that size, after the seed; the plan it visits with the
  smallest moment of inertia (the `distance` measure tercap minimises) is kept. Its seconds are the
  seed's and the chain's together.

Each peer runs in a process of its own, timed from its input arrays to its labels (library imports
and process start not counted), and is stopped after --peer-limit seconds ("did not finish").
Every plan is measured by one function: seconds, worst |workload ÷ mean − 1|, share of territories
within the tolerance, the root-mean-square distance of the workload from its territory's workload
centre (√ of the moment of inertia ÷ the workload: the `distance` measure), the mean workload-weighted
radius of a territory (the `compactness` column of tercap's plans), cut edges, and contiguity of every
territory (networkx).

The peers are an optional extra of the package:
    .venv/bin/pip install -e '.[bench]'

Run from the repository root:
    .venv/bin/python benchmarks/territory.py [--sizes 500x10 3000x100 10000x300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from results import update_section

SECTION = "## Territory design"
DEFAULT_SIZES = ("500x10", "3000x100", "10000x300")


@dataclass(frozen=True)
class Units:
    """The unit graph as plain arrays, for the peers' processes."""

    xy: np.ndarray  # (n × 2) planar km
    workload: np.ndarray  # per unit
    edges: np.ndarray  # (m × 2), i < j
    component: np.ndarray  # per unit, its connected part of the graph
    per_component: np.ndarray  # territories each part holds (by its workload, as tercap shares them)


@dataclass(frozen=True)
class Figures:
    seconds: float
    worst: float
    within: float
    rms: float  # km: √(Σ w·d² ÷ Σ w), d from each unit to its territory's workload centre (`distance`)
    radius: float
    cut_edges: int
    contiguous: bool


def measure(units: Units, labels: np.ndarray, count: int, seconds: float, tolerance: float) -> Figures:
    """The one yardstick for every method's plan (labels: territory 0..count-1 per unit)."""
    import networkx as nx

    load = np.bincount(labels, units.workload, minlength=count)
    deviation = np.abs(load / load.mean() - 1.0)
    weight = units.workload + 1e-9  # as tercap's plans: units without workload still count a little
    radius = np.zeros(count)
    moment = 0.0
    graph = nx.Graph()
    graph.add_nodes_from(range(len(labels)))
    graph.add_edges_from(units.edges.tolist())
    contiguous = True
    for t in range(count):
        members = labels == t
        if not members.any():
            contiguous = False
            continue
        centre = (weight[members, None] * units.xy[members]).sum(axis=0) / weight[members].sum()
        inertia = float((weight[members] * ((units.xy[members] - centre) ** 2).sum(axis=1)).sum())
        moment += inertia
        radius[t] = np.sqrt(inertia / weight[members].sum())
        contiguous = contiguous and nx.is_connected(graph.subgraph(np.flatnonzero(members).tolist()))
    cut = int((labels[units.edges[:, 0]] != labels[units.edges[:, 1]]).sum())
    return Figures(seconds, float(deviation.max()), float(np.mean(deviation <= tolerance + 1e-9)),
                   float(np.sqrt(moment / weight.sum())), float(radius.mean()), cut, contiguous)


def spopt_region_kmeans(units: Units, count: int, tolerance: float, budget: float) -> tuple[np.ndarray, str]:
    """spopt's region k-means on the planar coordinates, over a libpysal W of the same edges."""
    import warnings

    from libpysal.weights import W
    from spopt.region import RegionKMeansHeuristic

    neighbours: dict[int, list[int]] = {i: [] for i in range(len(units.xy))}
    for a, b in units.edges.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W warns about the graph's disconnected parts
        w = W(neighbours, silence_warnings=True)
        model = RegionKMeansHeuristic(units.xy - units.xy.mean(axis=0), count, w, seed=0)
        model.solve()
    return np.asarray(model.labels_, dtype=np.int64), f"{model.iters_:,} reassignment iterations"


def gerrychain_recom(units: Units, count: int, tolerance: float, budget: float) -> tuple[np.ndarray, str]:
    """A balanced recursive-tree seed, then ReCom for `budget` seconds; the most compact plan visited."""
    import random
    from functools import partial

    import networkx as nx
    from gerrychain import Graph, MarkovChain, Partition
    from gerrychain.constraints import within_percent_of_ideal_population
    from gerrychain.partition import recursive_tree_part
    from gerrychain.proposals import recom
    from gerrychain.tree import PopulationBalanceError, bipartition_tree
    from gerrychain.updaters import Tally

    began = time.perf_counter()
    rng = random.Random(0)
    n = len(units.xy)
    xy = units.xy - units.xy.mean(axis=0)  # centred, so that the radius from running sums keeps its digits
    fields = {"workload": units.workload, "wx": units.workload * xy[:, 0], "wy": units.workload * xy[:, 1],
              "wr2": units.workload * (xy ** 2).sum(axis=1)}
    mean = float(units.workload.sum()) / count
    whole = nx.Graph()
    whole.add_nodes_from((u, {name: float(values[u]) for name, values in fields.items()}) for u in range(n))
    whole.add_edges_from(units.edges.tolist())

    # the seed, one connected part at a time, each part's territories around the part's own mean and
    # tightened so that they end within the tolerance of the overall mean; recursive_tree_part does not
    # backtrack, so a seed whose last cuts find no balanced edge in 1,000 trees starts again
    cut = partial(bipartition_tree, max_attempts=1000, warn_attempts=10**9)
    labels = np.full(n, -1, dtype=np.int64)
    first, retries = 0, 0
    for part, k in enumerate(units.per_component.tolist()):
        nodes = np.flatnonzero(units.component == part)
        target = float(units.workload[nodes].sum()) / k
        off = target / mean - 1.0
        epsilon = (tolerance - abs(off)) / (1.0 + off) * (1 - 1e-9)
        if epsilon <= 0:
            raise RuntimeError(f"a part of {len(nodes)} units cannot hold {k} balanced territories")
        if k == 1:
            labels[nodes] = first
        else:
            graph = Graph.from_networkx(nx.Graph(whole.subgraph(nodes.tolist()))).convert_from_nx_to_rx()
            while True:
                try:
                    flips = recursive_tree_part(graph, range(first, first + k), target, "workload", epsilon,
                                                bipartition_tree_fn=cut, rng=rng)
                    break
                except (RuntimeError, PopulationBalanceError):
                    retries += 1
            for node, territory in flips.items():  # flips name the rustworkx graph's own node ids
                labels[graph.original_nx_node_id_for_internal_node_id(node)] = territory
        first += k
    seeded = time.perf_counter() - began

    updaters = {name: Tally(name, alias=name, dtype_fn=float) for name in fields}
    partition = Partition(Graph.from_networkx(whole), {u: int(t) for u, t in enumerate(labels.tolist())},
                          updaters)
    internal = [partition.graph.internal_node_id_for_original_nx_node_id(u) for u in range(n)]
    # pair reselection: a merged pair with no balanced edge in 1,000 trees gives way to another pair
    proposal = partial(recom, pop_col="workload", pop_target=mean, epsilon=tolerance,
                       bipartition_tree_fn=partial(bipartition_tree, max_attempts=1000, allow_pair_reselection=True))
    chain = MarkovChain(proposal,
                        [within_percent_of_ideal_population(partition, tolerance, pop_key="workload")],
                        initial_partition=partition, total_steps=10**9, rng=rng)

    def radius(state: Partition) -> float:  # the compactness tercap minimises: Σ w·d² about the centres
        total = 0.0
        for t, w in state["workload"].items():
            w = max(w, 1e-12)
            total += max(state["wr2"][t] - (state["wx"][t] ** 2 + state["wy"][t] ** 2) / w, 0.0)
        return total

    best, best_labels, steps = np.inf, labels, 0
    stop = time.perf_counter() + budget
    for state in chain:
        value = radius(state)
        if value < best:
            assignment = state.assignment
            best, best_labels = value, np.array([assignment[i] for i in internal], dtype=np.int64)
        steps += 1
        if time.perf_counter() >= stop:
            break
    restarts = f"{retries} restart{'' if retries == 1 else 's'}"
    return best_labels, f"seed {seeded:.1f} s ({restarts}), then {steps - 1:,} ReCom steps in {budget:.1f} s"


PEERS = {"spopt region k-means": spopt_region_kmeans, "GerryChain ReCom": gerrychain_recom}


def rebalanced(graph: object, units: Units, labels: np.ndarray, count: int, seconds: float, tolerance: float,
               time_limit: float) -> tuple[Figures, str]:
    """spopt's plan brought within the tolerance by tercap's fewest-moves rebalancing (connected boundary
    moves, as `rebalance_territories` makes them): a balanced plan of spopt's compactness, to set beside
    tercap's own. Its seconds are spopt's and the rebalancing's."""
    from tercap.territory import rebalance_partition
    from tercap.territory.carve import CarveSettings

    began = time.perf_counter()
    territory, curve, stuck = rebalance_partition(
        graph, CarveSettings(count=count, tolerances={"workload": tolerance}), labels.astype(np.int64), set(),
        began + time_limit)
    moved = int(curve["units_moved"].iloc[-1])
    why = "no move helps further" if stuck else "time limit" if curve.iloc[-1, 1] > tolerance + 1e-9 else "balanced"
    return (measure(units, territory, count, seconds + time.perf_counter() - began, tolerance),
            f"{moved:,} units moved ({why})")


def _peer_process(name: str, units: Units, count: int, tolerance: float, budget: float, connection) -> None:
    try:
        began = time.perf_counter()
        labels, detail = PEERS[name](units, count, tolerance, budget)
        connection.send(("ok", labels, time.perf_counter() - began, detail))
    except Exception:
        connection.send(("failed", None, 0.0, traceback.format_exc(limit=3).strip().splitlines()[-1]))


def run_peer(name: str, units: Units, count: int, tolerance: float, budget: float, limit: float
             ) -> tuple[np.ndarray | None, float, str]:
    """The peer in a process of its own: (labels or None, seconds, detail); stopped after `limit` s."""
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_peer_process, args=(name, units, count, tolerance, budget, send), daemon=True)
    process.start()
    send.close()
    if not receive.poll(limit):
        process.terminate()
        process.join()
        return None, limit, f"did not finish in {limit:.0f} s"
    status, labels, seconds, detail = receive.recv()
    process.join()
    return labels, seconds, detail if status == "ok" else f"failed: {detail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--peer-limit", type=float, default=600.0, help="seconds before a peer is stopped")
    args = parser.parse_args()
    import tercap
    from tercap.scenario.generate import generate_scenario
    from tercap.territory import design_territories, unit_graph
    from tercap.territory.carve import territories_per_component

    settings = {"balance": {"workload": args.tolerance}, "keep_home_units": False, "by_segment": False,
                "shares": "equal"}

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            units_count, count = (int(v) for v in size.split("x"))
            path = generate_scenario(Path(folder) / size, accounts=6 * units_count, reps=count, units=units_count,
                                     seed=1)
            scenario = tercap.load(path).replace(adjacency=None, territory=settings)
            graph = unit_graph(scenario)
            workload = graph.measures["workload"]
            units = Units(graph.xy, workload, graph.edges, graph.component,
                          territories_per_component(graph, count, workload))

            began = time.perf_counter()
            plan = design_territories(scenario, time_limit=args.time_limit, method="heuristic")
            seconds = time.perf_counter() - began
            position = {name: t for t, name in enumerate(plan.territories["territory_id"])}
            labels = plan.units["territory_id"].map(position).to_numpy(dtype=np.int64)
            islands = sum("not connected to the rest" in note for note in plan.notes)
            figures = measure(units, labels, count, seconds, args.tolerance)
            assert abs(figures.radius - float(plan.territories["compactness"].mean())) < 1e-6 * figures.radius
            rows.append((size, "tercap heuristic", figures, f"parts that cannot balance: {islands}"))
            print(rows[-1], flush=True)

            for name in PEERS:
                labels, peer_seconds, detail = run_peer(name, units, count, args.tolerance, seconds,
                                                        args.peer_limit)
                figures = None if labels is None else measure(units, labels, count, peer_seconds, args.tolerance)
                rows.append((size, name, figures, detail))
                print(rows[-1], flush=True)
                if name == "spopt region k-means" and figures is not None:
                    rows.append((size, "spopt region k-means, then rebalanced",
                                 *rebalanced(graph, units, labels, count, peer_seconds, args.tolerance,
                                             args.time_limit)))
                    print(rows[-1], flush=True)

    lines = [SECTION, "",
             f"Territories at ±{args.tolerance:.0%} workload on generated scenarios with adjacency derived from the "
             "centroids: tercap's `design_territories`", "(heuristic, compactness `distance`) beside spopt's region "
             "k-means and GerryChain's ReCom, on the same unit graph and measured", "alike (see the script's "
             f"docstring). Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, with:",
             "", "```", shlex.join([".venv/bin/python", *sys.argv]), "```", "",
             "| units × territories | method | seconds | worst deviation | territories within tolerance "
             "| RMS distance km | mean radius km | cut edges | all contiguous | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for size, name, figures, detail in rows:
        if figures is None:
            lines.append(f"| {size} | {name} | – | – | – | – | – | – | – | {detail} |")
            continue
        lines.append(f"| {size} | {name} | {figures.seconds:.1f} | {figures.worst:.2%} | {figures.within:.0%} | "
                     f"{figures.rms:,.1f} | {figures.radius:,.1f} | {figures.cut_edges:,} | "
                     f"{'yes' if figures.contiguous else 'no'} | {detail} |")
    lines += ["", "RMS distance: √(Σ w·d² ÷ Σ w) over all units, d the distance from a unit to its territory's "
              "workload centre and w its workload:", "the compactness measure `distance` (the moment of inertia) "
              "that tercap minimises and GerryChain's chain keeps its best plan by. Mean radius: the "
              "workload-weighted radius", "of each territory (tercap's `compactness` column), averaged over "
              "territories. spopt's region k-means does not balance "
              "workload; the row after it is its plan after tercap's fewest-moves rebalancing (the algorithm of",
              "`rebalance_territories`, up to the time limit): where that stops short of the tolerance, no "
              "connected boundary move lowers the imbalance further, or time ran out. GerryChain's ReCom chain "
              "ran for tercap's", f"seconds after its seed. Load average (1 min) "
              f"{load_before:.1f} before the run and {os.getloadavg()[0]:.1f} after: other work on the machine "
              "lengthens every", "method's seconds."]
    update_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
