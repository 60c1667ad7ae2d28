"""Selling capacity over the period: months active, ramp of new hires, planned hires as reps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tercap.scenario.schema import Settings, month_start

HIRE_ID_PREFIX = "HIRE-"


def month_starts(settings: Settings) -> pd.DatetimeIndex:
    """First day of each month of the period, and the first day after it (months + 1 values).

    The last value is `settings.period.end`: both come from `schema.month_start`.
    """
    period = settings.period
    return pd.DatetimeIndex([month_start(period.start, n) for n in range(period.months + 1)]).as_unit("ns")


def _month_number(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    index = pd.DatetimeIndex(dates)
    return (index.year * 12 + index.month - 1).to_numpy(dtype=float)


def active_months(settings: Settings, reps: pd.DataFrame) -> np.ndarray:
    """Share of each month of the period each rep is employed (start_date to end_date inclusive):
    reps × months."""
    bounds = month_starts(settings)
    month_start = bounds[:-1].to_numpy()[None, :]
    month_end = bounds[1:].to_numpy()[None, :]
    start = reps["start_date"].to_numpy(dtype="datetime64[ns]")[:, None]
    end = (reps["end_date"] + pd.Timedelta(days=1)).to_numpy(dtype="datetime64[ns]")[:, None]
    lower = np.where(np.isnat(start), month_start, np.maximum(start, month_start))
    upper = np.where(np.isnat(end), month_end, np.minimum(end, month_end))
    days = (month_end - month_start) / np.timedelta64(1, "D")
    return np.clip((upper - lower) / np.timedelta64(1, "D"), 0, None) / days


def headcount_cost(settings: Settings, reps: pd.DataFrame) -> tuple[float, float]:
    """(rep-months employed in the period, their cost at capacity.rep_annual_cost)."""
    rep_months = float(active_months(settings, reps).sum())
    return rep_months, rep_months * settings.capacity.rep_annual_cost / 12


def monthly_capacity(settings: Settings, reps: pd.DataFrame) -> np.ndarray:
    """Hours each rep can give to accounts in each month: reps × months.

    A rep counts for the share of the month between start_date and end_date (inclusive), at the
    ramp curve's value for the months since the start (a rep with no start_date is ramped).
    """
    bounds = month_starts(settings)
    active = active_months(settings, reps)

    capacity = settings.capacity
    curves = capacity.ramp_curves
    position = {name: i for i, name in enumerate(curves)}
    longest = max(len(c) for c in curves.values())
    table = np.array([list(c) + [c[-1]] * (longest - len(c)) for c in curves.values()])
    profile = reps["ramp_profile"] if "ramp_profile" in reps else pd.Series("", index=reps.index)
    profile = profile.fillna("")
    chosen = [capacity.ramp_name_for(segment, name) for segment, name in zip(reps["segment"], profile, strict=True)]
    unknown = sorted({name for name in chosen if name not in curves})
    if unknown:  # validation reports these with their rows: never fall back to another curve
        raise KeyError(f"ramp curve(s) {', '.join(unknown)} not in capacity.ramp_curves")
    curve_index = np.array([position[name] for name in chosen], dtype=int)
    months_since = _month_number(bounds[:-1])[None, :] - _month_number(reps["start_date"])[:, None]
    step = np.clip(np.nan_to_num(months_since, nan=longest - 1), 0, longest - 1).astype(int)
    ramp = table[curve_index[:, None], step]
    ramp = np.where(np.isnan(months_since), 1.0, ramp)
    return reps["capacity_hours"].to_numpy(dtype=float)[:, None] * active * ramp


def period_capacity_hours(settings: Settings, reps: pd.DataFrame) -> pd.Series:
    """Hours each rep can give to accounts over the whole period (ramp and start/end adjusted)."""
    return pd.Series(monthly_capacity(settings, reps).sum(axis=1), index=reps.index, name="capacity")


def planned_hires(settings: Settings, accounts: pd.DataFrame) -> pd.DataFrame:
    """The hires of `capacity.hires` as rows of the reps table (ids HIRE-01, HIRE-02, …).

    A hire with no home is placed at the workload-weighted centre of its segment's accounts.
    """
    rows = []
    for hire in settings.capacity.hires:
        of_segment = accounts[accounts["segment"] == hire.segment]
        weights = of_segment["workload_hours"].to_numpy(dtype=float)
        if weights.sum() > 0:
            centre = (float(np.average(of_segment["lat"], weights=weights)),
                      float(np.average(of_segment["lon"], weights=weights)))
        else:
            centre = (float(accounts["lat"].mean()), float(accounts["lon"].mean()))
        start = pd.Timestamp(month_start(settings.period.start, hire.start_month - 1))
        for _ in range(hire.count):
            number = len(rows) + 1
            rows.append({
                "rep_id": f"{HIRE_ID_PREFIX}{number:02d}",
                "name": f"{hire.name or hire.segment + ' hire'} {number}",
                "lat": hire.lat if hire.lat is not None else centre[0],
                "lon": hire.lon if hire.lon is not None else centre[1],
                "region": hire.region,
                "segment": hire.segment,
                "experience_years": hire.experience_years,
                "industries": (),
                "capacity_hours": (hire.capacity_hours if hire.capacity_hours is not None
                                   else settings.capacity.hours_per_month),
                "start_date": start,
                "end_date": pd.NaT,
                "ramp_profile": settings.capacity.ramp_name_for(hire.segment, hire.ramp_profile),
            })
    frame = pd.DataFrame(rows, columns=["rep_id", "name", "lat", "lon", "region", "segment",
                                        "experience_years", "industries", "capacity_hours",
                                        "start_date", "end_date", "ramp_profile"])
    for column in ("lat", "lon", "experience_years", "capacity_hours"):
        frame[column] = frame[column].astype(float)
    frame["start_date"] = pd.to_datetime(frame["start_date"]).astype("datetime64[ns]")
    frame["end_date"] = pd.to_datetime(frame["end_date"]).astype("datetime64[ns]")
    return frame
