"""The arrays the assignment engine works on, read once from a Scenario, and the eligible pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tercap.scenario import Scenario
from tercap.scenario.capacity import period_capacity_hours
from tercap.scenario.validation import require_coordinates

EARTH_RADIUS_KM = 6371.0088
MAX_EXPERIENCE_YEARS = 10.0  # experience beyond this adds nothing to a rep's expected share


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km, element by element."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(lon2) - np.radians(lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere: nearest in 3-D chord distance is nearest on the globe."""
    phi, lmb = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lmb), np.cos(phi) * np.sin(lmb), np.sin(phi)])


@dataclass(frozen=True, eq=False)
class AssignmentInputs:
    """Accounts and reps (planned hires included) as arrays; workload and capacity over the period."""

    account_ids: np.ndarray
    account_lat: np.ndarray
    account_lon: np.ndarray
    account_workload: np.ndarray  # hours over the period
    account_potential: np.ndarray  # over the period
    account_segment: np.ndarray
    account_industry: np.ndarray  # industry code, -1 when not given
    account_complex: np.ndarray  # bool: complex buying process
    account_top: np.ndarray  # bool: among the top accounts by potential
    account_owner: np.ndarray  # rep index, -1 when unowned (or owned by someone not in the team)
    account_locked: np.ndarray  # bool
    account_group: np.ndarray  # balance group index
    rep_ids: np.ndarray
    rep_lat: np.ndarray
    rep_lon: np.ndarray
    rep_segment: np.ndarray
    rep_experience: np.ndarray
    rep_knows: np.ndarray  # (reps × industries) bool: the rep knows the industry's buyers
    rep_capacity: np.ndarray  # hours over the period, ramp- and date-adjusted
    rep_max_accounts: np.ndarray  # -1: no limit
    rep_group: np.ndarray
    rep_share_weight: np.ndarray  # relative potential a rep is expected to carry
    group_names: tuple[str, ...]
    period_share: float  # the period's length in years: annual figures × this = the period's
    by_territory: bool = False  # groups are (segment, territory): a current owner outside it is not eligible

    @property
    def num_accounts(self) -> int:
        return len(self.account_ids)

    @property
    def num_reps(self) -> int:
        return len(self.rep_ids)


@dataclass(frozen=True, eq=False)
class TerritoryGroups:
    """Accounts and reps by territory (territory_id by account_id and by rep_id): assignment inside
    each territory, among its own reps."""

    accounts: pd.Series
    reps: pd.Series


def read_inputs(scenario: Scenario, territories: TerritoryGroups | None = None) -> AssignmentInputs:
    """The arrays of `scenario` that assignment needs; with `territories`, the balance and eligibility
    groups are (segment, territory) instead of segments."""
    settings = scenario.settings
    share_of_year = settings.period.months / 12
    accounts = scenario.accounts
    reps = pd.concat([scenario.reps, scenario.planned_hires], ignore_index=True)
    require_coordinates(accounts, "accounts", "account_id", "assignment")
    require_coordinates(reps, "reps", "rep_id", "assignment")
    capacity = period_capacity_hours(settings, reps).to_numpy(dtype=float)

    rep_index = pd.Index(reps["rep_id"])
    owner = rep_index.get_indexer(accounts["current_owner"].fillna(""))
    potential = accounts["potential"].to_numpy(dtype=float)
    top_share = settings.assignment.eligibility.top_potential_share
    top = np.zeros(len(accounts), dtype=bool)
    if top_share > 0:
        count = int(np.ceil(top_share * len(accounts)))
        top[np.argsort(-potential, kind="stable")[:count]] = True

    industry = accounts["industry"].fillna("").to_numpy(dtype=object)
    industries = sorted(set(industry) - {""} | {i for cell in reps["industries"] for i in cell})
    industry_code = {name: code for code, name in enumerate(industries)}
    knows = np.zeros((len(reps), len(industries)), dtype=bool)
    rep_rows = np.repeat(np.arange(len(reps)), reps["industries"].map(len).to_numpy(dtype=int))
    knows[rep_rows, [industry_code[i] for cell in reps["industries"] for i in cell]] = True

    segment_match = settings.assignment.eligibility.segment_match
    account_key = accounts["segment"].astype(str) if segment_match else pd.Series("all", index=accounts.index)
    rep_key = reps["segment"].astype(str) if segment_match else pd.Series("all", index=reps.index)
    if territories is not None:
        account_key = account_key + " in " + accounts["account_id"].map(territories.accounts).fillna("no territory")
        rep_key = rep_key + " in " + reps["rep_id"].map(territories.reps).fillna("no territory")
    group_names = tuple(sorted(set(rep_key) | set(account_key)))
    group_of = {name: i for i, name in enumerate(group_names)}
    account_group = account_key.map(group_of).to_numpy(dtype=np.int64)
    rep_group = rep_key.map(group_of).to_numpy(dtype=np.int64)
    max_accounts = reps["max_accounts"] if "max_accounts" in reps else pd.Series(pd.NA, index=reps.index)
    experience = reps["experience_years"].to_numpy(dtype=float)

    share_weight = capacity * (1 + settings.assignment.balance.experience_weight
                               * np.minimum(experience, MAX_EXPERIENCE_YEARS) / MAX_EXPERIENCE_YEARS)
    return AssignmentInputs(
        account_ids=accounts["account_id"].to_numpy(dtype=object),
        account_lat=accounts["lat"].to_numpy(dtype=float),
        account_lon=accounts["lon"].to_numpy(dtype=float),
        account_workload=accounts["workload_hours"].to_numpy(dtype=float) * share_of_year,
        account_potential=potential * share_of_year,
        account_segment=accounts["segment"].to_numpy(dtype=object),
        account_industry=pd.Series(industry).map(industry_code).fillna(-1).to_numpy(dtype=np.int64),
        account_complex=accounts["buying_process"].eq("complex").to_numpy(dtype=bool),
        account_top=top,
        account_owner=owner.astype(np.int64),
        account_locked=accounts["locked"].to_numpy(dtype=bool) & (owner >= 0),
        account_group=account_group,
        rep_ids=reps["rep_id"].to_numpy(dtype=object),
        rep_lat=reps["lat"].to_numpy(dtype=float),
        rep_lon=reps["lon"].to_numpy(dtype=float),
        rep_segment=reps["segment"].to_numpy(dtype=object),
        rep_experience=experience,
        rep_knows=knows,
        rep_capacity=capacity,
        rep_max_accounts=pd.to_numeric(max_accounts, errors="coerce").fillna(-1).to_numpy(dtype=np.int64),
        rep_group=rep_group,
        rep_share_weight=share_weight,
        group_names=group_names,
        period_share=share_of_year,
        by_territory=territories is not None,
    )
