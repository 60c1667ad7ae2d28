"""The territory map: units as Voronoi cells of their centroids, coloured by territory, with territory
borders drawn where neighbouring cells belong to different territories, and rep homes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tercap.scenario import Scenario
    from tercap.territory import TerritoryPlan

PALETTE = "tab20"


def territory_maps(plan: TerritoryPlan, scenario: Scenario, width: float = 11.0) -> Figure:
    """One map per segment of the plan, side by side (two per row), as a matplotlib Figure."""
    from matplotlib.figure import Figure

    segments = plan.segments
    columns = 1 if len(segments) == 1 else 2
    rows = -(-len(segments) // columns)
    figure = Figure(figsize=(width, width * 0.62 * rows / columns + (0.4 if columns > 1 else 0.0)),
                    layout="constrained")
    for position, segment in enumerate(segments):
        territory_map(plan, scenario, ax=figure.add_subplot(rows, columns, position + 1), segment=segment)
    return figure


def territory_map(plan: TerritoryPlan, scenario: Scenario, ax: Axes | None = None, segment: str | None = None
                  ) -> Axes:
    """Each unit's Voronoi cell (clipped near the centroids) in its territory's colour; black lines
    between cells of different territories; rep homes as triangles. `segment`: which segment's map
    (default: the plan's first)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection
    from scipy.spatial import Voronoi

    from tercap.territory import unit_graph

    segment = plan.segments[0] if segment is None else segment
    units = plan.units[plan.units["segment"] == segment]
    territories = plan.territories[plan.territories["segment"] == segment]
    graph = unit_graph(scenario)
    if ax is None:
        _, ax = plt.subplots(figsize=(9.0, 6.0))
    order = units.set_index("unit_id").loc[graph.unit_ids]
    codes = {t: i for i, t in enumerate(territories["territory_id"])}
    index = order["territory_id"].map(codes).to_numpy(dtype=int)
    cmap = plt.get_cmap(PALETTE)
    colours = cmap(np.mod(index, 20))
    lat0 = np.radians(float(np.mean(graph.lat)))
    points = np.column_stack([graph.lon * np.cos(lat0), graph.lat])  # degrees, east-west shrunk
    length = np.linalg.norm(points[graph.edges[:, 0]] - points[graph.edges[:, 1]], axis=1)
    spacing = float(np.median(length)) if len(length) else 1.0
    # a cell reaching farther than 1.5 × its unit's longest adjacency edge is drawn as a dot
    reach = np.zeros(len(points))
    np.maximum.at(reach, graph.edges[:, 0], length)
    np.maximum.at(reach, graph.edges[:, 1], length)
    limit = 1.5 * np.where(reach > 0, reach, spacing)
    if len(points) >= 4:
        diagram = Voronoi(points)
        cells, cell_colours, dots = [], [], []
        for unit, region_index in enumerate(diagram.point_region):
            region = diagram.regions[region_index]
            polygon = diagram.vertices[region] if region and -1 not in region else None
            if polygon is None or np.max(np.linalg.norm(polygon - points[unit], axis=1)) > limit[unit]:
                dots.append(unit)
                continue
            cells.append(np.column_stack([polygon[:, 0] / np.cos(lat0), polygon[:, 1]]))
            cell_colours.append(colours[unit])
        ax.add_collection(PolyCollection(cells, facecolors=cell_colours, edgecolors="white", linewidths=0.2))
        borders = []
        for (a, b), ridge in zip(diagram.ridge_points, diagram.ridge_vertices, strict=True):
            if index[a] != index[b] and -1 not in ridge:
                line = diagram.vertices[ridge]
                if np.max(np.linalg.norm(line - points[a], axis=1)) <= min(limit[a], limit[b]):
                    borders.append(np.column_stack([line[:, 0] / np.cos(lat0), line[:, 1]]))
        ax.add_collection(LineCollection(borders, colors="black", linewidths=0.8))
        if dots:
            ax.scatter(graph.lon[dots], graph.lat[dots], s=12, c=colours[dots], linewidths=0)
    else:
        ax.scatter(graph.lon, graph.lat, s=30, c=colours)
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    placed = reps["rep_id"].isin(territories["rep_id"])
    ax.scatter(reps["lon"][placed], reps["lat"][placed], marker="^", s=36, color="black", zorder=3, label="rep home")
    ax.set_xlim(graph.lon.min() - spacing, graph.lon.max() + spacing)
    ax.set_ylim(graph.lat.min() - spacing, graph.lat.max() + spacing)
    ax.set_aspect(1.0 / max(np.cos(lat0), 0.2))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    where = plan.scenario if segment == "all" else f"{plan.scenario}, {segment}"
    ax.set_title(f"{len(territories)} territories of {len(units):,} units: {where}")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return ax
