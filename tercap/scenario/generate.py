"""Synthetic scenarios: a realistic, seeded scenario folder of any size for examples, tests and benchmarks.

The data follow the shape of a real sales organisation rather than uniform noise: accounts cluster
around real US metros, segment follows company size, potential follows segment, the current books are
visibly unbalanced, and the pipeline and the closed history come out of one deal process that walks the
stages of `Simulation` (durations, conversions, a quarterly market factor), so that what the engine
calibrates from the history is what generated the pipeline.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree
from scipy.special import ndtri

from tercap.scenario.schema import (
    ACCOUNTS,
    ADJACENCY,
    BUYING_PROCESSES,
    GEO_UNITS,
    HISTORY,
    PIPELINE,
    REPS,
    STANDARD_SEGMENTS,
    Period,
    Simulation,
    TableSpec,
    WorkloadModel,
)

TableFormat = Literal["csv", "parquet"]

# ----------------------------------------------------------------------------------------------
# Geography
# ----------------------------------------------------------------------------------------------

EARTH_RADIUS_KM = 6371.0
CENTRAL_MERIDIAN = -96.0  # of the sinusoidal (equal-area) projection to a km plane

# Name, latitude, longitude, weight (metro population, millions), sales region.
METROS: tuple[tuple[str, float, float, float, str], ...] = (
    ("New York", 40.7128, -74.0060, 19.5, "East"),
    ("Los Angeles", 34.0522, -118.2437, 13.0, "West"),
    ("Chicago", 41.8781, -87.6298, 9.4, "Central"),
    ("Dallas", 32.7767, -96.7970, 7.6, "South"),
    ("Houston", 29.7604, -95.3698, 7.1, "South"),
    ("Washington", 38.9072, -77.0369, 6.3, "East"),
    ("Philadelphia", 39.9526, -75.1652, 6.2, "East"),
    ("Miami", 25.7617, -80.1918, 6.1, "South"),
    ("Atlanta", 33.7490, -84.3880, 6.1, "South"),
    ("Boston", 42.3601, -71.0589, 4.9, "East"),
    ("Phoenix", 33.4484, -112.0740, 4.9, "West"),
    ("San Francisco", 37.7749, -122.4194, 4.7, "West"),
    ("Detroit", 42.3314, -83.0458, 4.4, "Central"),
    ("Seattle", 47.6062, -122.3321, 4.0, "West"),
    ("Minneapolis", 44.9778, -93.2650, 3.7, "Central"),
    ("San Diego", 32.7157, -117.1611, 3.3, "West"),
    ("Tampa", 27.9506, -82.4572, 3.2, "South"),
    ("Denver", 39.7392, -104.9903, 3.0, "West"),
    ("St. Louis", 38.6270, -90.1994, 2.8, "Central"),
    ("Baltimore", 39.2904, -76.6122, 2.8, "East"),
    ("Charlotte", 35.2271, -80.8431, 2.7, "South"),
    ("Orlando", 28.5383, -81.3792, 2.7, "South"),
    ("San Antonio", 29.4241, -98.4936, 2.6, "South"),
    ("Portland", 45.5152, -122.6784, 2.5, "West"),
    ("Pittsburgh", 40.4406, -79.9959, 2.4, "East"),
    ("Austin", 30.2672, -97.7431, 2.4, "South"),
    ("Kansas City", 39.0997, -94.5786, 2.2, "Central"),
    ("Nashville", 36.1627, -86.7816, 2.0, "South"),
    ("Salt Lake City", 40.7608, -111.8910, 1.3, "West"),
)
METRO_NAMES = np.array([m[0] for m in METROS])
METRO_WEIGHTS = np.array([m[3] for m in METROS]) / sum(m[3] for m in METROS)
METRO_REGIONS = np.array([m[4] for m in METROS])
METRO_SPREAD_KM = 15.0 * np.array([m[3] for m in METROS]) ** 0.35  # σ of a metro's suburbs
CORE_SHARE, CORE_SCALE = 0.4, 0.4  # share of a metro's points in its dense core, and the core's σ scale
RURAL_UNIT_SHARE = 0.3
RURAL_ACCOUNT_SHARE = 0.12
REDRAWS = 20  # attempts to redraw a point that fell outside the land outline

# A coarse outline of the contiguous United States (longitude, latitude), clockwise from the northwest.
US_OUTLINE_LON_LAT = np.array([
    (-124.7, 48.4), (-123.0, 49.0), (-95.2, 49.0), (-89.6, 48.0), (-84.8, 46.5), (-82.4, 43.0),
    (-79.0, 43.3), (-76.5, 44.2), (-74.7, 45.0), (-71.5, 45.0), (-70.0, 46.7), (-69.2, 47.4),
    (-67.8, 47.1), (-67.0, 44.8), (-70.2, 43.6), (-70.6, 41.6), (-74.0, 40.5), (-75.5, 38.5),
    (-76.0, 36.9), (-75.5, 35.2), (-78.0, 33.8), (-81.0, 32.0), (-81.4, 30.3), (-80.0, 26.8),
    (-80.1, 25.2), (-81.8, 26.0), (-82.8, 28.0), (-84.0, 30.0), (-86.0, 30.4), (-89.5, 30.2),
    (-89.4, 29.0), (-94.0, 29.6), (-97.2, 27.8), (-97.4, 25.9), (-99.5, 27.5), (-101.4, 29.8),
    (-103.0, 29.0), (-104.7, 29.9), (-106.5, 31.8), (-108.2, 31.3), (-111.1, 31.3), (-114.8, 32.5),
    (-117.1, 32.5), (-118.5, 34.0), (-120.6, 34.6), (-122.5, 37.5), (-123.8, 39.5), (-124.2, 42.0),
    (-124.0, 46.3),
])

# ----------------------------------------------------------------------------------------------
# Accounts
# ----------------------------------------------------------------------------------------------

# Industry, share of accounts, size factor (median employees relative to the whole mix).
INDUSTRY_MIX: tuple[tuple[str, float, float], ...] = (
    ("manufacturing", 0.15, 1.4),
    ("healthcare", 0.13, 1.3),
    ("financial_services", 0.12, 1.2),
    ("retail", 0.12, 0.9),
    ("technology", 0.11, 1.0),
    ("professional_services", 0.10, 0.7),
    ("construction", 0.07, 0.6),
    ("logistics", 0.07, 1.0),
    ("education", 0.05, 1.3),
    ("energy", 0.04, 1.5),
    ("hospitality", 0.04, 0.8),
)
INDUSTRIES = np.array([name for name, _, _ in INDUSTRY_MIX])
INDUSTRY_INDEX = {name: i for i, name in enumerate(INDUSTRIES)}
# Where an industry is over- or under-represented: metro name (or "rural") -> industry -> multiplier.
INDUSTRY_TILTS: dict[str, dict[str, float]] = {
    "San Francisco": {"technology": 3.0, "professional_services": 1.3},
    "Seattle": {"technology": 2.5, "logistics": 1.3},
    "Boston": {"technology": 1.8, "healthcare": 1.6, "education": 1.8},
    "Austin": {"technology": 2.2},
    "Salt Lake City": {"technology": 1.4},
    "New York": {"financial_services": 2.2, "professional_services": 1.5},
    "Charlotte": {"financial_services": 2.0},
    "Houston": {"energy": 4.0, "manufacturing": 1.2},
    "Dallas": {"energy": 2.0, "financial_services": 1.3},
    "Denver": {"energy": 1.5},
    "Detroit": {"manufacturing": 2.5},
    "Chicago": {"manufacturing": 1.4, "financial_services": 1.3, "logistics": 1.5},
    "Pittsburgh": {"manufacturing": 1.6, "healthcare": 1.5},
    "Minneapolis": {"healthcare": 1.5, "retail": 1.4},
    "Nashville": {"healthcare": 2.0},
    "Orlando": {"hospitality": 3.0},
    "Miami": {"hospitality": 2.0, "logistics": 1.4},
    "Los Angeles": {"retail": 1.3, "logistics": 1.4, "hospitality": 1.3},
    "Washington": {"professional_services": 2.0, "technology": 1.3},
    "rural": {"manufacturing": 1.6, "construction": 1.5, "energy": 1.8, "technology": 0.4,
              "financial_services": 0.6},
}
MEDIAN_EMPLOYEES, EMPLOYEES_SIGMA, RURAL_SIZE_FACTOR = 55.0, 2.2, 0.6
SIZE_BANDS = np.array(["1-99", "100-999", "1000+"])
SIZE_BAND_EDGES = np.array([100.0, 1000.0])
SEGMENTS = np.array(STANDARD_SEGMENTS)  # enterprise, mid_market, smb
ENTERPRISE, MID_MARKET, SMB = range(3)
# P(segment | size band); rows: size bands, columns: SEGMENTS.
SEGMENT_GIVEN_BAND = np.array([
    [0.01, 0.07, 0.92],
    [0.10, 0.75, 0.15],
    [0.80, 0.18, 0.02],
])
POTENTIAL_MEDIAN = np.array([400_000.0, 80_000.0, 12_000.0])  # by segment, currency a year
POTENTIAL_SIGMA, POTENTIAL_SIZE_ELASTICITY = 0.55, 0.3
PROCESSES = np.array(BUYING_PROCESSES)  # transactional, consultative, complex
# P(buying process | segment); rows: SEGMENTS, columns: PROCESSES.
PROCESS_GIVEN_SEGMENT = np.array([
    [0.05, 0.35, 0.60],
    [0.25, 0.60, 0.15],
    [0.70, 0.27, 0.03],
])
GIVEN_WORKLOAD_SHARE, WORKLOAD_SIGMA = 0.5, 0.35

NAME_STARTS = np.array([
    "North", "South", "East", "West", "Blue", "Red", "Green", "Silver", "Golden", "Iron", "Stone",
    "Oak", "Pine", "Cedar", "Maple", "River", "Lake", "Bay", "Summit", "Ridge", "Bright", "Clear",
    "High", "Fair", "Grand", "Harbor", "Eagle", "Falcon", "Crystal", "Prairie",
])
NAME_ENDS = np.array([
    "wind", "field", "view", "gate", "point", "brook", "wood", "star", "bridge", "crest", "dale",
    "light", "haven", "land", "water", "port", "well", "ford", "vale", "mark", "line", "way", "side",
])
INDUSTRY_NOUNS = np.array([  # four per industry, in INDUSTRIES order
    ["Manufacturing", "Industries", "Fabrication", "Components"],
    ["Health", "Medical", "Care", "Clinics"],
    ["Capital", "Financial", "Bancorp", "Insurance"],
    ["Retail", "Outfitters", "Market", "Stores"],
    ["Systems", "Software", "Data", "Networks"],
    ["Consulting", "Advisors", "Legal", "Accounting"],
    ["Construction", "Builders", "Contracting", "Homes"],
    ["Logistics", "Freight", "Transport", "Shipping"],
    ["Academy", "Learning", "College", "Schools"],
    ["Energy", "Power", "Petroleum", "Solar"],
    ["Hotels", "Hospitality", "Resorts", "Restaurants"],
])
NAME_SUFFIXES = np.array(["", " Inc", " Group", " Partners", " Co", " LLC", " Holdings", " Corp"])

# ----------------------------------------------------------------------------------------------
# Reps and owners
# ----------------------------------------------------------------------------------------------

FIRST_NAMES = np.array([
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Sandra", "Mark", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Kevin", "Michelle", "Brian",
    "Amanda", "Ryan", "Melissa", "Jason", "Stephanie", "Eric", "Rebecca", "Jacob", "Laura", "Nicholas",
    "Rachel", "Tyler", "Megan", "Luis", "Maria", "Carlos", "Sofia", "Wei", "Mei", "Raj", "Priya",
    "Omar", "Aisha",
])
LAST_NAMES = np.array([
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen",
    "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
    "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards",
    "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez",
    "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Kim", "Patel",
    "Chen", "Shah", "Cohen",
])
EXPERIENCE_GAMMA = np.array([(4.0, 2.5), (3.0, 2.0), (2.0, 1.5)])  # (shape, scale) by segment
INDUSTRY_COUNT_SHARES = np.array([0.30, 0.45, 0.25])  # reps knowing 1, 2, 3 industries
CAPACITY_BASE_HOURS, CAPACITY_SPREAD_HOURS = 100.0, 30.0  # base h/month before segment scaling
CAPACITY_BAND_HOURS = (90.0, 170.0)  # h/month for account work: realistic reps, whatever the ratio asked
TARGET_UTILISATION = 0.9  # total workload ÷ total annual capacity, per segment, when the band allows
MAX_ACCOUNTS_FACTOR = 1.8  # max_accounts ÷ mean accounts per rep of the segment
RECENT_HIRE_SHARE, DEPARTURE_SHARE = 0.08, 0.03
HIRED_MONTHS_BEFORE, HIRED_MONTHS_INTO = 4, 3  # recent hires start in this window around the start
MEAN_TENURE_MONTHS = 36.0  # beyond HIRED_MONTHS_BEFORE; reps with less than a year get a start_date
DAYS_PER_MONTH = 365.25 / 12
ATTAINMENT_MEDIAN, ATTAINMENT_SIGMA, QUOTA_STRETCH = 0.98, 0.28, 1.1
NEAREST_OWNERS, ATTRACTIVENESS_SIGMA, NEW_HIRE_ATTRACTIVENESS = 3, 0.7, 0.5
UNOWNED_SHARE, LOCKED_SHARE = 0.05, 0.02
FORMER_REP_SHARE = 0.3  # former reps (in history only), relative to the current team

# ----------------------------------------------------------------------------------------------
# Deals
# ----------------------------------------------------------------------------------------------

HISTORY_MONTHS = 24  # closed deals of this many months before the period are exported
LEAD_MONTHS = 9  # deals are created from this long before the history window, to reach steady state
MAX_FORMER_OWNER_SHARE = 0.1  # share of deals closed two years ago whose owner has left since
TARGET_SHARE_OF_EXPECTED = 0.9  # company target ÷ expected won revenue of the period
STALE_CLOSE_SHARE = 0.4  # open deals whose expected close has passed that the rep has not moved yet


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def generate_scenario(out_dir: str | Path, *, accounts: int, reps: int, units: int | None = None,
                      seed: int = 0, table_format: TableFormat = "csv", name: str = "",
                      period_start: dt.date = dt.date(2027, 1, 1)) -> Path:
    """Write a synthetic scenario (scenario.yaml and its tables) to `out_dir`; return the YAML path.

    `units` geo units default to accounts // 10, clipped to 20..2,000. The same arguments always give
    byte-identical files. An existing scenario folder is overwritten; any other non-empty folder is
    refused with FileExistsError. Tables that come out empty (tiny scenarios) are left out.

    Reps give 90-170 h a month to account work (`capacity_hours`), scaled so that each segment's
    workload is about 90% of its reps' capacity over a year. When the number of accounts per rep
    asked for does not fit that band (a few reps for many accounts, or many reps for a few), the
    hours stay in the band and the utilisation moves away from 90% instead: above 100% the team is
    short-staffed (a hiring case), far below it is idle. A rep is never given 5 h or 1,600 h a month.

    Reps who joined less than a year before the period (they have no last-year quota or bookings)
    have a `start_date`, so that they ramp; a few known hires start just before or early in the
    period. Some open pipeline deals are overdue, as in a CRM export: their `expected_close` has
    passed and the rep has not moved it yet.
    """
    units = int(np.clip(accounts // 10, 20, 2000)) if units is None else units
    _check_arguments(accounts, reps, units, seed, table_format)
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / "scenario.yaml").exists():
        raise FileExistsError(f"{out} is not empty and holds no scenario.yaml; refusing to write a "
                              "scenario into it (choose an empty or new folder)")

    period = Period(start=period_start, months=12, label=_fiscal_label(period_start))
    simulation = Simulation()
    geo_rng, account_rng, rep_rng, owner_rng, deal_rng = (
        np.random.default_rng(stream) for stream in np.random.SeedSequence(seed).spawn(5))
    geo = _geography(geo_rng, units)
    acc = _accounts(account_rng, accounts, geo)
    team = _reps(rep_rng, reps, acc, period)
    owner, locked = _owners(owner_rng, acc, team, period.start)
    quota, actual = _last_year(owner_rng, team, acc, owner, simulation.pipeline_yield)
    deals = _simulate_deals(deal_rng, acc, simulation, period.start)

    rep_ids = _ids("R", np.arange(1, reps + 1), team.id_width)
    account_ids = _ids("A", np.arange(1, accounts + 1), max(6, len(str(accounts))))
    unit_ids = _ids("U", np.arange(1, units + 1), max(4, len(str(units))))
    tables = {
        "reps": _reps_table(team, rep_ids, quota, actual),
        "accounts": _accounts_table(acc, account_ids, unit_ids, rep_ids, owner, locked),
        "geo_units": _geo_units_table(geo, unit_ids),
        "adjacency": _adjacency_table(geo, unit_ids),
        **_deal_tables(deal_rng, deals, simulation, period.start, account_ids, rep_ids, owner,
                       team.id_width),
    }
    tables = {table: data for table, data in tables.items() if data.num_rows > 0}

    files = {table: f"{table}.{table_format}" for table in tables}
    target = TARGET_SHARE_OF_EXPECTED * simulation.pipeline_yield * acc.potential.sum() * period.months / 12
    document = {
        "name": name or f"synthetic-{accounts}x{reps}-seed{seed}",
        "description": (f"Synthetic scenario from tercap.scenario.generate: {accounts:,} accounts, "
                        f"{reps:,} reps, {units:,} geo units, seed {seed}."),
        "period": {"start": period.start, "months": period.months, "label": period.label},
        "tables": files,
        "quota": {"company_target": _round_significant(target, 3)},
        "simulation": {"seed": seed},
    }
    contents = {files[table]: _serialise(data, table_format) for table, data in tables.items()}
    contents["scenario.yaml"] = yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()
    return _write_files(out, contents)


def _check_arguments(accounts: int, reps: int, units: int, seed: int, table_format: str) -> None:
    if accounts < 1:
        raise ValueError(f"accounts must be at least 1, got {accounts}")
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if units < 3:
        raise ValueError(f"units must be at least 3 (adjacency is a triangulation), got {units}")
    if seed < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    if table_format not in ("csv", "parquet"):
        raise ValueError(f"table_format must be 'csv' or 'parquet', got {table_format!r}")


# ----------------------------------------------------------------------------------------------
# Geography
# ----------------------------------------------------------------------------------------------


def _to_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sinusoidal (equal-area) projection to a km plane, as an (n, 2) array."""
    phi = np.radians(lat)
    return np.column_stack([EARTH_RADIUS_KM * np.radians(lon - CENTRAL_MERIDIAN) * np.cos(phi),
                            EARTH_RADIUS_KM * phi])


def _to_degrees(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of km-plane points, rounded to 5 decimals (about a metre)."""
    phi = xy[:, 1] / EARTH_RADIUS_KM
    lon = CENTRAL_MERIDIAN + np.degrees(xy[:, 0] / (EARTH_RADIUS_KM * np.cos(phi)))
    return np.round(np.degrees(phi), 5), np.round(lon, 5)


METRO_KM = _to_km(np.array([m[1] for m in METROS]), np.array([m[2] for m in METROS]))
US_OUTLINE_KM = _to_km(US_OUTLINE_LON_LAT[:, 1], US_OUTLINE_LON_LAT[:, 0])


def _on_land(points: np.ndarray) -> np.ndarray:
    """Whether each km-plane point lies inside the outline (even-odd rule, vectorised over points)."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    ends = np.roll(US_OUTLINE_KM, -1, axis=0)
    for (xa, ya), (xb, yb) in zip(US_OUTLINE_KM, ends, strict=True):
        if ya == yb:
            continue
        crosses = (ya > y) != (yb > y)
        inside ^= crosses & (x < xa + (y - ya) * (xb - xa) / (yb - ya))
    return inside


def _around_metros(rng: np.random.Generator, metro: np.ndarray) -> np.ndarray:
    """Points scattered around the given metros: a dense core and wider suburbs, all on land."""
    sigma = METRO_SPREAD_KM[metro] * np.where(rng.random(len(metro)) < CORE_SHARE, CORE_SCALE, 1.0)
    centres = METRO_KM[metro]
    points = centres + sigma[:, None] * rng.standard_normal((len(metro), 2))
    outside = ~_on_land(points)
    for _ in range(REDRAWS):
        if not outside.any():
            break
        redo = np.flatnonzero(outside)
        points[redo] = centres[redo] + sigma[redo, None] * rng.standard_normal((redo.size, 2))
        outside[redo] = ~_on_land(points[redo])
    points[outside] = centres[outside]
    return points


def _uniform_on_land(rng: np.random.Generator, count: int) -> np.ndarray:
    """Points spread uniformly (by area) over the outline."""
    low, high = US_OUTLINE_KM.min(axis=0), US_OUTLINE_KM.max(axis=0)
    found: list[np.ndarray] = []
    missing = count
    while missing > 0:
        draw = low + (high - low) * rng.random((2 * missing + 16, 2))
        kept = draw[_on_land(draw)][:missing]
        found.append(kept)
        missing -= len(kept)
    return np.concatenate(found) if found else np.empty((0, 2))


def _nearest_metro(xy: np.ndarray) -> np.ndarray:
    return cKDTree(METRO_KM).query(xy)[1]


@dataclass(frozen=True)
class _Geography:
    lat: np.ndarray
    lon: np.ndarray
    xy: np.ndarray  # km plane, from the rounded coordinates
    name: np.ndarray
    area: np.ndarray
    region: np.ndarray
    edges: np.ndarray  # (m, 2) unit indices, a < b
    border: np.ndarray  # shared border length, km


def _geography(rng: np.random.Generator, count: int) -> _Geography:
    """Geo units like postal codes: dense around metros, sparse in rural areas; Delaunay adjacency."""
    rural_count = max(1, round(RURAL_UNIT_SHARE * count))
    metro = np.sort(rng.choice(len(METROS), count - rural_count, p=METRO_WEIGHTS))
    metro_xy = _around_metros(rng, metro)
    rural_xy = _uniform_on_land(rng, rural_count)
    rural_xy = rural_xy[np.argsort(rural_xy[:, 0], kind="stable")]  # numbered west to east

    # Within a metro, unit 01 is downtown.
    from_centre = np.linalg.norm(metro_xy - METRO_KM[metro], axis=1)
    order = np.lexsort((from_centre, metro))
    metro, metro_xy = metro[order], metro_xy[order]
    first_of_metro = np.searchsorted(metro, metro)
    rank = np.arange(len(metro)) - first_of_metro + 1
    metro_names = np.char.add(np.char.add(METRO_NAMES[metro], " "),
                              np.char.zfill(rank.astype(str), max(2, len(str(rank.max(initial=1))))))
    rural_names = np.char.add("Rural ", np.char.zfill(np.arange(1, rural_count + 1).astype(str),
                                                      max(4, len(str(rural_count)))))

    lat, lon = _to_degrees(np.concatenate([metro_xy, rural_xy]))
    _make_distinct(lat, lon)
    xy = _to_km(lat, lon)
    neighbours = min(7, count)
    kth_distance = cKDTree(xy).query(xy, k=neighbours)[0][:, -1]
    area = np.pi * kth_distance**2 / (neighbours - 1) * rng.lognormal(0.0, 0.25, count)
    edges, border = _adjacency(rng, xy, area)
    return _Geography(lat=lat, lon=lon, xy=xy, name=np.concatenate([metro_names, rural_names]),
                      area=np.maximum(np.round(area, 1), 0.1), region=METRO_REGIONS[_nearest_metro(xy)],
                      edges=edges, border=border)


def _make_distinct(lat: np.ndarray, lon: np.ndarray) -> None:
    """Nudge units that share rounded coordinates, so that the triangulation sees every unit."""
    while True:
        _, first = np.unique(np.column_stack([lat, lon]), axis=0, return_index=True)
        if len(first) == len(lat):
            return
        repeated = np.setdiff1d(np.arange(len(lat)), first)
        lat[repeated] = np.round(lat[repeated] + 1e-5, 5)


def _adjacency(rng: np.random.Generator, xy: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delaunay edges that are short (≤ 3× the median of all edges) or short where they are (≤ 2.5× the
    median edge at both ends: rural units are far apart, and still neighbours), plus the minimum spanning
    tree. The locally short edges draw their border noise from a child stream, so that adding them
    leaves every other generated value as it was."""
    simplices = Delaunay(xy).simplices
    edges = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    length = np.linalg.norm(xy[edges[:, 0]] - xy[edges[:, 1]], axis=1)
    count = len(xy)
    tree = minimum_spanning_tree(coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(count, count)))
    tree = tree.tocoo()
    in_tree = np.isin(edges[:, 0] * count + edges[:, 1],
                      np.minimum(tree.row, tree.col) * count + np.maximum(tree.row, tree.col))
    short = (length <= 3 * np.median(length)) | in_tree
    ends, lengths = np.r_[edges[:, 0], edges[:, 1]], np.r_[length, length]
    order = np.lexsort((lengths, ends))
    ends, lengths = ends[order], lengths[order]
    first, stop = np.searchsorted(ends, np.arange(count)), np.searchsorted(ends, np.arange(count), side="right")
    local = (lengths[(first + stop - 1) // 2] + lengths[(first + stop) // 2]) / 2  # each unit's median edge
    locally_short = ~short & (length <= 2.5 * np.minimum(local[edges[:, 0]], local[edges[:, 1]]))
    child = rng.spawn(1)[0]  # before any draw below; spawning leaves rng's own stream untouched

    def border(chosen: np.ndarray, stream: np.random.Generator) -> np.ndarray:
        # On a hexagonal tiling the shared border is distance / √3; no border is longer than the smaller
        # unit is wide.
        width = np.sqrt(np.minimum(area[edges[chosen, 0]], area[edges[chosen, 1]]))
        noise = stream.lognormal(0.0, 0.2, int(chosen.sum()))
        return np.maximum(np.round(np.minimum(length[chosen] / np.sqrt(3), width) * noise, 1), 0.1)

    borders = np.zeros(len(edges))
    borders[short] = border(short, rng)
    borders[locally_short] = border(locally_short, child)
    keep = short | locally_short
    return edges[keep], borders[keep]


# ----------------------------------------------------------------------------------------------
# Accounts
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Accounts:
    name: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    xy: np.ndarray
    unit: np.ndarray
    region: np.ndarray
    metro: np.ndarray  # nearest metro
    industry: np.ndarray  # index into INDUSTRIES
    size_band: np.ndarray  # index into SIZE_BANDS
    segment: np.ndarray  # index into SEGMENTS
    potential: np.ndarray
    process: np.ndarray  # index into PROCESSES
    workload: np.ndarray  # hours a year: given, or as the workload model derives it
    workload_given: np.ndarray  # bool


def _choose_by_row(rng: np.random.Generator, probabilities: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One categorical draw per item, from the probability row each item names."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    draw = rng.random(len(row))
    return np.minimum((draw[:, None] > cumulative[row]).sum(axis=1), probabilities.shape[1] - 1)


def _industry_probabilities() -> np.ndarray:
    """P(industry) per metro (rows in METROS order) and for rural places (last row)."""
    base = np.array([share for _, share, _ in INDUSTRY_MIX])
    places = [*METRO_NAMES, "rural"]
    probabilities = np.tile(base, (len(places), 1))
    for row, place in enumerate(places):
        for industry, factor in INDUSTRY_TILTS.get(place, {}).items():
            probabilities[row, INDUSTRY_INDEX[industry]] *= factor
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def _accounts(rng: np.random.Generator, count: int, geo: _Geography) -> _Accounts:
    """Accounts around metros (and a rural share), with industry, size, segment, potential, workload."""
    rural = rng.random(count) < RURAL_ACCOUNT_SHARE
    home = rng.choice(len(METROS), count, p=METRO_WEIGHTS)
    xy = np.empty((count, 2))
    xy[~rural] = _around_metros(rng, home[~rural])
    xy[rural] = _uniform_on_land(rng, int(rural.sum()))
    lat, lon = _to_degrees(xy)
    xy = _to_km(lat, lon)
    unit = cKDTree(geo.xy).query(xy)[1]

    industry = _choose_by_row(rng, _industry_probabilities(), np.where(rural, len(METROS), home))
    size_factor = np.array([factor for _, _, factor in INDUSTRY_MIX])[industry]
    employees = (MEDIAN_EMPLOYEES * size_factor * np.where(rural, RURAL_SIZE_FACTOR, 1.0)
                 * rng.lognormal(0.0, EMPLOYEES_SIGMA, count))
    size_band = np.searchsorted(SIZE_BAND_EDGES, employees, side="right")
    segment = _choose_by_row(rng, SEGMENT_GIVEN_BAND, size_band)

    # Potential: the segment's median, larger for larger companies within the segment.
    log_employees = np.log(employees)
    per_segment = np.bincount(segment, minlength=3)
    mean_log = np.bincount(segment, log_employees, minlength=3) / np.maximum(per_segment, 1)
    log_potential = (np.log(POTENTIAL_MEDIAN[segment])
                     + POTENTIAL_SIZE_ELASTICITY * (log_employees - mean_log[segment])
                     + POTENTIAL_SIGMA * rng.standard_normal(count))
    potential = np.maximum(np.round(np.exp(log_potential)), 1.0)
    process = _choose_by_row(rng, PROCESS_GIVEN_SEGMENT, segment)

    model = WorkloadModel()
    derived = (np.array([model.hours_by_segment[s] for s in SEGMENTS])[segment]
               * np.array([model.process_multiplier[p] for p in PROCESSES])[process])
    given = rng.random(count) < GIVEN_WORKLOAD_SHARE
    noisy = np.round(derived * rng.lognormal(0.0, WORKLOAD_SIGMA, count), 1)
    workload = np.where(given, noisy, derived)

    return _Accounts(name=_company_names(rng, industry), lat=lat, lon=lon, xy=xy, unit=unit,
                     region=geo.region[unit], metro=_nearest_metro(xy), industry=industry,
                     size_band=size_band, segment=segment, potential=potential, process=process,
                     workload=workload, workload_given=given)


def _distinct_draws(rng: np.random.Generator, count: int, space: int) -> np.ndarray:
    """`count` draws from range(space), all different while count ≤ space."""
    if count <= space:
        return rng.choice(space, count, replace=False)
    return np.concatenate([rng.permutation(space) for _ in range(-(-count // space))])[:count]


def _company_names(rng: np.random.Generator, industry: np.ndarray) -> np.ndarray:
    """Names like 'Northwind Logistics' or 'Bluefield Health Partners', distinct within an industry."""
    shape = (len(NAME_STARTS), len(NAME_ENDS), INDUSTRY_NOUNS.shape[1], len(NAME_SUFFIXES))
    combination = np.empty(len(industry), dtype=np.int64)
    for index in range(len(INDUSTRIES)):
        members = np.flatnonzero(industry == index)
        combination[members] = _distinct_draws(rng, len(members), int(np.prod(shape)))
    start, end, noun, suffix = np.unravel_index(combination, shape)
    words = np.char.add(np.char.add(NAME_STARTS[start], NAME_ENDS[end]), " ")
    return np.char.add(np.char.add(words, INDUSTRY_NOUNS[industry, noun]), NAME_SUFFIXES[suffix])


# ----------------------------------------------------------------------------------------------
# Reps
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Team:
    id_width: int
    name: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    xy: np.ndarray
    region: np.ndarray
    segment: np.ndarray
    experience: np.ndarray
    industries: list[str]
    capacity: np.ndarray
    max_accounts: np.ndarray
    start_day: np.ndarray  # datetime64[D]; NaT except for recent hires
    end_day: np.ndarray  # datetime64[D], NaT when the rep stays
    has_last_year: np.ndarray  # bool: there all of last year


def _rep_counts(workload: np.ndarray, total: int) -> np.ndarray:
    """Reps per segment in proportion to workload (largest remainder); one at least where there is work."""
    share = workload / workload.sum() * total
    counts = np.floor(share).astype(np.int64)
    by_remainder = np.argsort(-(share - counts), kind="stable")
    counts[by_remainder[: total - counts.sum()]] += 1
    with_work = workload > 0
    if total >= with_work.sum():
        for segment in np.flatnonzero(with_work & (counts == 0)):
            counts[np.argmax(counts)] -= 1
            counts[segment] += 1
    return counts


def _reps(rng: np.random.Generator, count: int, acc: _Accounts, period: Period) -> _Team:
    """Reps per segment in proportion to workload, living where their segment's workload is."""
    workload = np.bincount(acc.segment, acc.workload, minlength=3)
    accounts_per_segment = np.bincount(acc.segment, minlength=3)
    per_segment = _rep_counts(workload, count)
    segment = np.repeat(np.arange(3), per_segment)

    home = np.empty(count, dtype=np.int64)
    capacity = np.empty(count)
    max_accounts = np.zeros(count, dtype=np.int64)
    industry_weight = np.empty((count, len(INDUSTRIES)))
    for index in np.flatnonzero(per_segment):
        members = np.flatnonzero(segment == index)
        in_segment = acc.segment == index
        metro_workload = np.bincount(acc.metro[in_segment], acc.workload[in_segment], minlength=len(METROS))
        home[members] = rng.choice(len(METROS), len(members), p=metro_workload / metro_workload.sum())
        base = CAPACITY_BASE_HOURS + CAPACITY_SPREAD_HOURS * rng.beta(2.0, 2.0, len(members))
        scale = workload[index] / (TARGET_UTILISATION * 12 * base.sum())
        low, high = CAPACITY_BAND_HOURS  # outside the band, utilisation gives way rather than the hours
        scale = np.clip(scale, low / CAPACITY_BASE_HOURS, high / (CAPACITY_BASE_HOURS + CAPACITY_SPREAD_HOURS))
        capacity[members] = np.clip(5 * np.round(base * scale / 5), low, high)
        max_accounts[members] = np.ceil(MAX_ACCOUNTS_FACTOR * accounts_per_segment[index] / len(members))
        industry_weight[members] = np.bincount(acc.industry[in_segment], minlength=len(INDUSTRIES)) + 1.0

    shape, scale = EXPERIENCE_GAMMA[segment].T
    experience = np.round(rng.gamma(shape, scale), 1)
    xy = _around_metros(rng, home)  # homes spread like the metro's accounts
    lat, lon = _to_degrees(xy)
    xy = _to_km(lat, lon)

    # Recent hires start shortly before or early in the period; a few known departures leave in it.
    start = np.datetime64(period.start, "D")
    window_start = np.datetime64(_shift_months(period.start, -HIRED_MONTHS_BEFORE), "D")
    window_end = np.datetime64(_shift_months(period.start, HIRED_MONTHS_INTO), "D")
    period_days = (np.datetime64(period.end, "D") - start).astype(np.int64)
    recent = rng.random(count) < RECENT_HIRE_SHARE
    leaving = ~recent & (rng.random(count) < DEPARTURE_SHARE)
    hire_offset = rng.integers(0, (window_end - window_start).astype(np.int64), count)
    start_day = np.where(recent, window_start + hire_offset, np.datetime64("NaT"))
    end_day = np.where(leaving, start + rng.integers(0, period_days, count), np.datetime64("NaT"))
    months_employed = HIRED_MONTHS_BEFORE + rng.exponential(MEAN_TENURE_MONTHS, count)
    has_last_year = ~recent & (months_employed >= 12)
    joined_this_year = ~recent & ~has_last_year  # 4-12 months before the period: still ramping
    days_employed = np.round(months_employed * DAYS_PER_MONTH).astype(np.int64)
    start_day = np.where(joined_this_year, start - days_employed, start_day)

    id_width = max(4, len(str(count)))
    if count >= 9 * 10 ** (id_width - 1):  # keep the former reps' ids (R9…) free
        id_width += 1
    return _Team(id_width=id_width, name=_person_names(rng, count), lat=lat, lon=lon, xy=xy,
                 region=METRO_REGIONS[_nearest_metro(xy)], segment=segment, experience=experience,
                 industries=_known_industries(rng, industry_weight), capacity=capacity,
                 max_accounts=max_accounts, start_day=start_day.astype("datetime64[D]"),
                 end_day=end_day.astype("datetime64[D]"), has_last_year=has_last_year)


def _person_names(rng: np.random.Generator, count: int) -> np.ndarray:
    first, last = np.unravel_index(_distinct_draws(rng, count, len(FIRST_NAMES) * len(LAST_NAMES)),
                                   (len(FIRST_NAMES), len(LAST_NAMES)))
    return np.char.add(np.char.add(FIRST_NAMES[first], " "), LAST_NAMES[last])


def _known_industries(rng: np.random.Generator, weight: np.ndarray) -> list[str]:
    """1-3 industries per rep, drawn without replacement in proportion to `weight` (Gumbel top-k)."""
    keys = np.log(weight) + rng.gumbel(size=weight.shape)
    ranked = np.argsort(-keys, axis=1, kind="stable")
    known = rng.choice(np.arange(1, 4), len(weight), p=INDUSTRY_COUNT_SHARES)
    return [";".join(INDUSTRIES[row[:k]]) for row, k in zip(ranked, known, strict=True)]


# ----------------------------------------------------------------------------------------------
# Current owners and last year
# ----------------------------------------------------------------------------------------------


def _owners(rng: np.random.Generator, acc: _Accounts, team: _Team,
            period_start: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Today's owner (-1: none) and lock of each account: an unbalanced, historically grown assignment.

    Each account went to one of the nearest reps of its segment, favouring some reps over others, so
    books differ clearly in size; reps who joined in the last year hold smaller books. Reps who start
    after the period start own nothing yet.
    """
    count = len(acc.segment)
    attractiveness = rng.lognormal(0.0, ATTRACTIVENESS_SIGMA, len(team.segment))
    attractiveness *= np.where(np.isnat(team.start_day), 1.0, NEW_HIRE_ATTRACTIVENESS)
    present = np.isnat(team.start_day) | (team.start_day <= np.datetime64(period_start, "D"))
    owner = np.full(count, -1, dtype=np.int64)
    for index in range(3):
        candidates = np.flatnonzero(present & (team.segment == index))
        members = np.flatnonzero(acc.segment == index)
        if candidates.size == 0 or members.size == 0:
            continue
        nearest = min(NEAREST_OWNERS, candidates.size)
        near = cKDTree(team.xy[candidates]).query(acc.xy[members], k=nearest)[1].reshape(len(members), -1)
        pick = _choose_by_row(rng, attractiveness[candidates][near], np.arange(len(members)))
        owner[members] = candidates[near[np.arange(len(members)), pick]]
    owner[rng.random(count) < UNOWNED_SHARE] = -1
    locked = (owner >= 0) & (rng.random(count) < LOCKED_SHARE)
    return owner, locked


def _last_year(rng: np.random.Generator, team: _Team, acc: _Accounts, owner: np.ndarray,
               pipeline_yield: float) -> tuple[np.ndarray, np.ndarray]:
    """Last year's quota and bookings of each rep (meaningful where team.has_last_year).

    The quota is a stretch on the book's expected bookings, evened towards the segment's mean book;
    attainment is lognormal around ATTAINMENT_MEDIAN, so a little under half the reps made quota.
    """
    count = len(team.segment)
    owned = owner >= 0
    book = np.bincount(owner[owned], acc.potential[owned], minlength=count)
    holders = team.has_last_year
    mean_book = (np.bincount(team.segment[holders], book[holders], minlength=3)
                 / np.maximum(np.bincount(team.segment[holders], minlength=3), 1))
    expected = pipeline_yield * (0.5 * book + 0.5 * mean_book[team.segment])
    quota = QUOTA_STRETCH * expected * rng.lognormal(0.0, 0.15, count)
    quota = np.maximum(1000 * np.round(quota / 1000), 1000)
    attainment = ATTAINMENT_MEDIAN * rng.lognormal(0.0, ATTAINMENT_SIGMA, count)
    return quota, np.round(quota * attainment)


# ----------------------------------------------------------------------------------------------
# Deals: one process for history and pipeline
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deals:
    account: np.ndarray
    amount: np.ndarray
    created: np.ndarray  # days since 1970-01-01
    closed: np.ndarray  # day the deal closes (won or lost), possibly after the period start
    won: np.ndarray
    last_stage: np.ndarray  # last open stage the deal is in before it closes
    stage_now: np.ndarray  # stage at the period start (meaningful for open deals)
    expected_close: np.ndarray  # the rep's guess (meaningful for open deals)
    is_open: np.ndarray  # open at the period start
    in_history: np.ndarray  # closed within the history window


def _simulate_deals(rng: np.random.Generator, acc: _Accounts, sim: Simulation,
                    period_start: dt.date) -> _Deals:
    """Opportunities created before the period start, each walking the stages of `sim`.

    Arrivals per account and year = potential × pipeline_yield / (mean deal × win rate), seasonal by
    calendar month. At the end of each stage a deal advances with the stage's conversion, through a
    one-factor Gaussian copula whose market factor is drawn per calendar quarter. The factors of the
    quarters before the period are centred: single quarters swing, the history as a whole reflects the
    configured conversions, so that a calibration from it can recover them.
    """
    start = _day_number(period_start)
    first = _day_number(_shift_months(period_start, -(HISTORY_MONTHS + LEAD_MONTHS)))
    history_start = _day_number(_shift_months(period_start, -HISTORY_MONTHS))
    days = np.arange(first, start)
    seasonality = np.asarray(sim.seasonality) / np.mean(sim.seasonality)
    day_weight = seasonality[_month_number(days) % 12]

    median = np.array([sim.deal_sizes[s].median for s in SEGMENTS])
    sigma = np.array([sim.deal_sizes[s].sigma for s in SEGMENTS])
    mean_amount = median * np.exp(sigma**2 / 2)
    rate = acc.potential * sim.pipeline_yield / (mean_amount[acc.segment] * sim.win_rate)
    account = np.repeat(np.arange(len(rate)), rng.poisson(rate * day_weight.sum() / 365.25))
    count = len(account)
    created = days[rng.choice(len(days), count, p=day_weight / day_weight.sum())]
    segment = acc.segment[account]
    amount = np.maximum(np.round(rng.lognormal(np.log(median[segment]), sigma[segment])), 1.0)

    stage_days = np.array([stage.median_days for stage in sim.stages])
    conversion = np.array([stage.conversion for stage in sim.stages])
    stages = len(stage_days)
    cycle = (np.array([sim.cycle_multiplier.get(s, 1.0) for s in SEGMENTS])[segment]
             * np.array([sim.process_cycle_multiplier.get(p, 1.0) for p in PROCESSES])[acc.process[account]])
    noise = np.exp(sim.duration_sigma * rng.standard_normal((count, stages)))
    durations = stage_days * cycle[:, None] * noise
    exits = created[:, None] + np.floor(np.cumsum(durations, axis=1)).astype(np.int64)

    first_quarter = _month_number(np.array([first]))[0] // 3
    quarter = _month_number(exits) // 3 - first_quarter
    market = rng.standard_normal(int(quarter.max(initial=0)) + 1)
    past_quarters = _month_number(np.array([start - 1]))[0] // 3 - first_quarter + 1
    market[:past_quarters] -= market[:past_quarters].mean()
    rho = sim.market_correlation
    latent = np.sqrt(rho) * market[quarter] + np.sqrt(1 - rho) * rng.standard_normal((count, stages))
    failed = latent >= ndtri(conversion)
    lost_at = np.where(failed.any(axis=1), failed.argmax(axis=1), stages)
    last_stage = np.minimum(lost_at, stages - 1)
    closed = exits[np.arange(count), last_stage]
    is_open = closed >= start

    stage_now = np.minimum((exits < start).sum(axis=1), stages - 1)
    remaining_days = np.cumsum(stage_days[::-1])[::-1]
    expected_close = created + np.round(cycle * remaining_days[0]).astype(np.int64)
    # A close date that has passed was moved by the rep, or not yet: then the deal is overdue.
    moved = (expected_close < start) & (rng.random(count) >= STALE_CLOSE_SHARE)
    expected_close = np.where(moved, start + np.round(cycle * remaining_days[stage_now]).astype(np.int64),
                              expected_close)
    return _Deals(account=account, amount=amount, created=created, closed=closed, won=lost_at == stages,
                  last_stage=last_stage, stage_now=stage_now, expected_close=expected_close,
                  is_open=is_open, in_history=~is_open & (closed >= history_start))


def _deal_tables(rng: np.random.Generator, deals: _Deals, sim: Simulation, period_start: dt.date,
                 account_ids: pa.Array, rep_ids: pa.Array, owner: np.ndarray,
                 id_width: int) -> dict[str, pa.Table]:
    """The pipeline (open at the period start) and the history (closed in the window before it).

    Opportunity ids follow the creation date. A pipeline deal belongs to the account's owner; a closed
    deal too, unless its owner has left since (likelier the older the deal), or the account has no
    owner today: then it belongs to a former rep whose id is not in the reps table.
    """
    kept = np.flatnonzero(deals.is_open | deals.in_history)
    kept = kept[np.lexsort((deals.account[kept], deals.created[kept]))]
    opp_ids = _ids("O", np.arange(1, len(kept) + 1), max(7, len(str(len(kept)))))
    stage_names = np.array(sim.stage_names)
    categories = np.full(len(stage_names), "pipeline", dtype=object)
    categories[-2:] = ["best_case", "commit"][-len(stage_names):]

    open_rows = deals.is_open[kept]
    deal = kept[open_rows]
    account = deals.account[deal]
    pipeline = _table(PIPELINE, {
        "opp_id": opp_ids.filter(open_rows),
        "account_id": account_ids.take(account),
        "owner": _take_or_null(rep_ids, owner[account]),
        "stage": pa.array(stage_names[deals.stage_now[deal]]),
        "amount": pa.array(deals.amount[deal].astype(np.int64)),
        "created": _dates(deals.created[deal]),
        "expected_close": _dates(deals.expected_close[deal]),
        "forecast_category": pa.array(categories[deals.stage_now[deal]].astype(str)),
    })

    closed_rows = ~open_rows
    deal = kept[closed_rows]
    account = deals.account[deal]
    former_count = max(1, round(FORMER_REP_SHARE * len(rep_ids)))
    former_ids = _ids("R", 9 * 10 ** (id_width - 1) + np.arange(1, former_count + 1), id_width)
    former_owner = rng.integers(0, former_count, len(owner))  # who held each account before
    age = (_day_number(period_start) - deals.closed[deal]) / (HISTORY_MONTHS * 365.25 / 12)
    has_left = (rng.random(len(deal)) < MAX_FORMER_OWNER_SHARE * np.clip(age, 0, 1)) | (owner[account] < 0)
    current = _take_or_null(rep_ids, np.where(has_left, -1, owner[account]))
    history = _table(HISTORY, {
        "opp_id": opp_ids.filter(closed_rows),
        "account_id": account_ids.take(account),
        "owner": pc.if_else(pa.array(has_left), former_ids.take(former_owner[account]), current),
        "amount": pa.array(deals.amount[deal].astype(np.int64)),
        "created": _dates(deals.created[deal]),
        "closed": _dates(deals.closed[deal]),
        "won": pa.array(deals.won[deal]),
        "last_stage": pa.array(stage_names[deals.last_stage[deal]]),
    })
    return {"pipeline": pipeline, "history": history}


# ----------------------------------------------------------------------------------------------
# Tables and files
# ----------------------------------------------------------------------------------------------


def _table(spec: TableSpec, columns: dict[str, pa.Array]) -> pa.Table:
    """An Arrow table with the columns in the schema's order; refuses columns the schema lacks."""
    unknown = set(columns) - set(spec.column_index)
    missing = {c.name for c in spec.columns if c.required} - set(columns)
    if unknown or missing:
        raise ValueError(f"table '{spec.name}': unknown columns {sorted(unknown)}, missing {sorted(missing)}")
    return pa.table({c.name: columns[c.name] for c in spec.columns if c.name in columns})


def _reps_table(team: _Team, rep_ids: pa.Array, quota: np.ndarray, actual: np.ndarray) -> pa.Table:
    no_history = ~team.has_last_year
    return _table(REPS, {
        "rep_id": rep_ids,
        "name": pa.array(team.name),
        "lat": pa.array(team.lat),
        "lon": pa.array(team.lon),
        "region": pa.array(team.region),
        "segment": pa.array(SEGMENTS[team.segment]),
        "experience_years": pa.array(team.experience),
        "industries": pa.array(team.industries),
        "capacity_hours": pa.array(team.capacity),
        "max_accounts": pa.array(team.max_accounts),
        "start_date": _dates(team.start_day.astype(np.int64), mask=np.isnat(team.start_day)),
        "end_date": _dates(team.end_day.astype(np.int64), mask=np.isnat(team.end_day)),
        "last_year_quota": pa.array(quota.astype(np.int64), mask=no_history),
        "last_year_actual": pa.array(actual.astype(np.int64), mask=no_history),
    })


def _accounts_table(acc: _Accounts, account_ids: pa.Array, unit_ids: pa.Array, rep_ids: pa.Array,
                    owner: np.ndarray, locked: np.ndarray) -> pa.Table:
    return _table(ACCOUNTS, {
        "account_id": account_ids,
        "name": pa.array(acc.name),
        "lat": pa.array(acc.lat),
        "lon": pa.array(acc.lon),
        "geo_unit": unit_ids.take(acc.unit),
        "region": pa.array(acc.region),
        "industry": pa.array(INDUSTRIES[acc.industry]),
        "segment": pa.array(SEGMENTS[acc.segment]),
        "size_band": pa.array(SIZE_BANDS[acc.size_band]),
        "potential": pa.array(acc.potential.astype(np.int64)),
        "workload_hours": pa.array(acc.workload, mask=~acc.workload_given),
        "buying_process": pa.array(PROCESSES[acc.process]),
        "current_owner": _take_or_null(rep_ids, owner),
        "locked": pa.array(locked),
    })


def _geo_units_table(geo: _Geography, unit_ids: pa.Array) -> pa.Table:
    return _table(GEO_UNITS, {
        "unit_id": unit_ids,
        "name": pa.array(geo.name),
        "lat": pa.array(geo.lat),
        "lon": pa.array(geo.lon),
        "area": pa.array(geo.area),
        "region": pa.array(geo.region),
    })


def _adjacency_table(geo: _Geography, unit_ids: pa.Array) -> pa.Table:
    return _table(ADJACENCY, {
        "unit_a": unit_ids.take(geo.edges[:, 0]),
        "unit_b": unit_ids.take(geo.edges[:, 1]),
        "length": pa.array(geo.border),
    })


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers like R0001: the prefix, then the number zero-padded to `width` digits."""
    digits = pc.utf8_lpad(pa.array(numbers, type=pa.int64()).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _take_or_null(values: pa.Array, index: np.ndarray) -> pa.Array:
    """values[index], null where the index is negative."""
    return values.take(pa.array(np.maximum(index, 0), mask=index < 0))


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=mask)


def _serialise(table: pa.Table, table_format: TableFormat) -> bytes:
    """CSV (plain header, no quotes, ISO dates, true/false, empty cells) or Parquet bytes."""
    sink = io.BytesIO()
    if table_format == "parquet":
        pq.write_table(table, sink)
        return sink.getvalue()
    sink.write((",".join(table.column_names) + "\n").encode())
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue()


def _write_files(out: Path, contents: dict[str, bytes]) -> Path:
    """Write each file through a temporary name then rename it; scenario.yaml comes last."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(contents.items(), key=lambda item: item[0] == "scenario.yaml"):
        temporary = out / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, out / name)
    return out / "scenario.yaml"


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _shift_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` later (earlier when negative), clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _day_number(day: dt.date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


def _month_number(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of day numbers (0 is January 1970)."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _fiscal_label(start: dt.date) -> str:
    """FY label named after the calendar year in which a 12-month period ends (FY27 for 2027)."""
    return f"FY{_shift_months(start, 11).year % 100:02d}"


def _round_significant(value: float, digits: int) -> int | float:
    if value <= 0:
        return 0
    rounded = round(value, digits - 1 - int(np.floor(np.log10(value))))
    return int(rounded) if rounded >= 10 ** (digits - 1) else float(rounded)
