"""An independent check of a territory plan: contiguity (networkx, from the scenario's own tables),
balance (measures summed again from the accounts), fixed and locked units.

It shares nothing with the carving code but the scenario: the adjacency is read from the adjacency
table (or from the derived edges the plan declares it used), the measures from the accounts table.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx
import pandas as pd

SLACK = 1e-9  # shares of the mean: float noise in sums


def check_territories(units: pd.DataFrame, accounts: pd.DataFrame, edges: pd.DataFrame,
                      tolerances: Mapping[str, float], pinned: Mapping[str, str] | None = None,
                      shares: Mapping[str, float] | None = None) -> list[str]:
    """Broken rules of a plan, in words (empty: none).

    `units`: unit_id, territory_id; `accounts`: geo_unit, workload_hours, potential; `edges`: unit_a,
    unit_b (the adjacency the territories must be connected in); `pinned`: unit_id → territory_id that
    must hold; `shares`: territory_id → its share of every measure (default: equal shares, the mean)."""
    problems: list[str] = []
    graph = nx.Graph()
    graph.add_nodes_from(units["unit_id"])
    graph.add_edges_from(zip(edges["unit_a"], edges["unit_b"], strict=True))
    for territory, members in units.groupby("territory_id")["unit_id"]:
        if not nx.is_connected(graph.subgraph(members.tolist())):
            parts = nx.number_connected_components(graph.subgraph(members.tolist()))
            problems.append(f"territory {territory} is not contiguous: {parts} separate parts")
    territory_of = units.set_index("unit_id")["territory_id"]
    placed = accounts.assign(territory_id=accounts["geo_unit"].map(territory_of))
    columns = {"workload": "workload_hours", "potential": "potential"}
    all_territories = pd.Index(sorted(units["territory_id"].unique()))
    for measure, tolerance in tolerances.items():
        if measure == "accounts":
            load = placed.groupby("territory_id").size().reindex(all_territories, fill_value=0).astype(float)
        else:
            load = placed.groupby("territory_id")[columns[measure]].sum().reindex(all_territories, fill_value=0.0)
        if load.sum() <= 0:
            continue
        if shares is None:
            target = pd.Series(load.mean(), index=load.index)
        else:
            given = pd.Series(shares, dtype=float).reindex(load.index)
            target = load.sum() * given / given.sum()
        deviation = (load / target - 1.0).abs()
        for territory, value in deviation[deviation > tolerance + SLACK].items():
            problems.append(f"territory {territory}: {measure} {load[territory]:,.1f} is {value:.2%} from its "
                            f"target {target[territory]:,.1f}, beyond ±{tolerance:.2%}")
    for unit, territory in (pinned or {}).items():
        if territory_of.get(unit) != territory:
            problems.append(f"unit {unit} must stay in territory {territory}, is in {territory_of.get(unit)}")
    return problems
