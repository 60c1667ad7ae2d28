"""The scenario schema: the one place that defines every section, table, column, unit and default.

Sections of the YAML file are pydantic models (typed, frozen, unknown keys refused). Tables are
described by `TableSpec`s, read by `tables.py` and checked by `validation.py`. The reference in
docs/scenario-format.md is generated from this module (`python -m tercap.scenario.docs`).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, Strict, field_serializer, field_validator, model_validator

# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------

# Numbers and flags are taken as written: `trials: true` or `trials: "100"` are errors, not 1 and 100.
# A number field takes an integer (`hours_per_month: 100`); YAML exponents (`48e6`) are numbers.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
NonNegative = Annotated[float, Strict(), Field(ge=0)]  # hours and multipliers inside mappings

HOURS_IN_A_MONTH = 744  # 31 days × 24 h: no rep gives more hours than a month has
FIRST_YEAR, LAST_YEAR = 1900, 2200  # dates outside these years are typing mistakes
MAX_HIRES = 10_000  # in capacity.hires, in all: each hire becomes a row of the reps table
MAX_TRIALS = 1_000_000  # simulated periods: the results hold reps × trials figures
MAX_TERRITORIES = 10_000


def month_start(start: dt.date, months: int) -> dt.date:
    """The first day of the month `months` months after the month of `start` (0: its own month).

    The one month arithmetic of tercap: the period's end and the capacity months both use it.
    """
    index = start.year * 12 + start.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings: the override wins key by key; lists and values are replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that cannot be changed: the mapping-valued settings of an immutable scenario.

    A dict subclass (not a `MappingProxyType`) so that settings still serialise, copy and pickle
    (to worker processes) like plain dicts.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("scenario settings cannot be changed in place; use Scenario.replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type, tuple[dict[Any, Any]]]:
        return type(self), (dict(self),)

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return type(self)({key: copy.deepcopy(value, memo) for key, value in self.items()})


# ----------------------------------------------------------------------------------------------
# Section models
# ----------------------------------------------------------------------------------------------


def F(default: Any = ..., description: str = "", unit: str = "", **kwargs: Any) -> Any:
    """A documented field: default, meaning and unit in one place."""
    extra = {"unit": unit} if unit else None
    if callable(default):  # a factory: a function or a section class
        return Field(default_factory=default, description=description, json_schema_extra=extra, **kwargs)
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


def _is_mapping_field(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


class Section(BaseModel):
    """Base of every scenario section: immutable, unknown keys and non-finite numbers are errors.

    A mapping-valued setting (e.g. `hours_by_segment`) given in part is merged over its default,
    key by key: what is not given keeps its default, and a key given as None (YAML `null`) goes
    back to its default. This is the one rule for every way a section is made: a YAML file, a file
    that `extends` another, `Scenario.replace(...)` and the constructors in Python.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _merge_mappings_over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        for name, info in cls.model_fields.items():
            given = data.get(name)
            if not (isinstance(given, Mapping) and _is_mapping_field(info.annotation)
                    and info.default_factory is not None):
                continue
            default = {key: value.model_dump() if isinstance(value, BaseModel) else value
                       for key, value in info.default_factory().items()}  # type: ignore[call-arg]
            merged[name] = deep_merge(default, {k: v for k, v in given.items() if v is not None})
        return merged

    @field_validator("*", mode="after")
    @classmethod
    def _freeze_mappings(cls, value: Any) -> Any:
        return FrozenDict(value) if isinstance(value, dict) and not isinstance(value, FrozenDict) else value


STANDARD_SEGMENTS = ("enterprise", "mid_market", "smb")
BUYING_PROCESSES = ("transactional", "consultative", "complex")
DEFAULT_BUYING_PROCESS = "consultative"
DEFAULT_RAMP = "standard"  # the ramp curve of a segment without a capacity.default_ramp


class Period(Section):
    """The planning period."""

    start: dt.date = F(description="First day of the period: the first day of a month (ISO date, e.g. "
                       "2027-01-01).")
    months: Int = F(12, "Length of the period.", unit="months", ge=1, le=60)
    label: str = F("", "A name for the period shown in reports, e.g. FY27.")

    @field_validator("start", mode="before")
    @classmethod
    def _start_is_a_date(cls, value: Any) -> Any:
        if isinstance(value, bool | int | float):  # pydantic would read a number as a Unix time
            raise ValueError("expected a date as YYYY-MM-DD")
        return value

    @field_validator("start", mode="after")
    @classmethod
    def _start_of_a_month(cls, value: dt.date) -> dt.date:
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"expected a year between {FIRST_YEAR} and {LAST_YEAR}")
        if value.day != 1:
            raise ValueError(f"the period starts on the first day of a month (e.g. {value:%Y-%m}-01); "
                             "capacity and seasonality count whole months")
        return value

    @property
    def end(self) -> dt.date:
        """First day after the period."""
        return month_start(self.start, self.months)


class Hire(Section):
    """A planned hire (or several alike) that joins during the period."""

    count: Int = F(1, f"How many reps of this kind are hired (at most {MAX_HIRES:,}).", ge=1, le=MAX_HIRES)
    segment: str = F(description="Segment (role) the hires sell to, e.g. enterprise.")
    start_month: Int = F(1, "Month of the period in which they start (1 = first month).", ge=1, le=60)
    region: str = F("", "Region the hires are based in (optional).")
    lat: Float | None = F(None, "Home latitude (optional; the segment's centre of workload otherwise).",
                          unit="degrees", ge=-90, le=90)
    lon: Float | None = F(None, "Home longitude (optional).", unit="degrees", ge=-180, le=180)
    capacity_hours: Float | None = F(None, "Hours a month for account work once ramped "
                                     "(capacity.hours_per_month otherwise).", unit="h/month", ge=0,
                                     le=HOURS_IN_A_MONTH)
    experience_years: Float = F(2.0, "Prior sales experience of the hires.", unit="years", ge=0)
    ramp_profile: str = F("", "Ramp curve name (the segment's default curve otherwise).")
    name: str = F("", "Name prefix of the hires in reports (e.g. 'Q2 enterprise hire').")


def _default_ramp_curves() -> dict[str, tuple[float, ...]]:
    # Field medians: SMB 2-3 months, mid-market 4-6, enterprise 6-9 (FIELD-NUMBERS.md).
    return {
        "standard": (0.25, 0.50, 0.75, 1.0),
        "smb": (0.33, 0.67, 1.0),
        "mid_market": (0.20, 0.40, 0.60, 0.80, 1.0),
        "enterprise": (0.10, 0.20, 0.35, 0.50, 0.65, 0.80, 0.90, 1.0),
    }


class Capacity(Section):
    """Selling capacity: hours, ramp of new hires, planned hires, attrition."""

    hours_per_month: Float = F(100.0, "Hours a month a ramped rep spends on account work, for reps "
                               "without capacity_hours (sellers sell about a third of their time).",
                               unit="h/month", ge=0, le=HOURS_IN_A_MONTH)
    ramp_curves: dict[str, tuple[Float, ...]] = F(
        _default_ramp_curves,
        "Named ramp curves: productivity share in each month after a start; the last value holds. "
        "A rep's ramp_profile names one of these; curves given are added to (or replace) these.",
        unit="share per month")
    default_ramp: dict[str, str] = F(
        lambda: {"smb": "smb", "mid_market": "mid_market", "enterprise": "enterprise"},
        "Ramp curve used for a segment when a rep or hire names none ('standard' for other segments).")
    hires: tuple[Hire, ...] = F((), f"Planned hires during the period (at most {MAX_HIRES:,} in all).")
    annual_attrition: Float = F(0.30, "Share of reps leaving in a year (field: 25-35%).",
                                unit="share/year", ge=0, lt=1)
    backfill_lag_months: Float = F(3.0, "Months a vacated book stays open before a new hire starts "
                                   "ramping (field: 2-4).", unit="months", ge=0)
    rep_annual_cost: Float = F(0.0, "Fully loaded cost of a rep for a year (salary, variable pay at target, "
                               "benefits, tools); a rep costs it pro rata for the months employed in the "
                               "period. 0: plans are costed in rep-months only.", unit="currency/year", ge=0)

    @model_validator(mode="after")
    def _curves_valid(self) -> Capacity:
        for name, curve in self.ramp_curves.items():
            if not curve:
                raise ValueError(f"ramp curve '{name}' is empty")
            if any(not 0 <= v <= 1 for v in curve):
                raise ValueError(f"ramp curve '{name}' has values outside 0..1")
            if any(b < a for a, b in itertools.pairwise(curve)):
                raise ValueError(f"ramp curve '{name}' decreases")
        for segment, name in self.default_ramp.items():
            if name not in self.ramp_curves:
                raise ValueError(f"default_ramp for '{segment}' names unknown curve '{name}'")
        total = sum(hire.count for hire in self.hires)
        if total > MAX_HIRES:  # each hire becomes a row of the reps table
            raise ValueError(f"capacity.hires add up to {total:,} hires; at most {MAX_HIRES:,} in all")
        return self

    def ramp_name_for(self, segment: str, profile: str = "") -> str:
        """The name of the ramp curve of a rep or hire of `segment` whose ramp_profile is `profile`.

        The rep's own profile, else the segment's `default_ramp`, else `standard`. The name may be
        missing from `ramp_curves` (validation reports it); nothing falls back silently.
        """
        return profile or self.default_ramp.get(segment, DEFAULT_RAMP)


class Balance(Section):
    """How evenly the books are spread."""

    workload_tolerance: Float = F(0.10, "Each rep's utilisation (workload / capacity) stays within "
                                  "± this share of the team mean.", unit="share", ge=0)
    potential_tolerance: Float = F(0.10, "Each rep's potential stays within ± this share of the rep's "
                                   "expected share (experience- and quota-weighted).", unit="share", ge=0)
    hard: Bool = F(True, "Tolerances are hard constraints (true) or penalised in the objective (false).")
    experience_weight: Float = F(0.2, "How much more potential a seasoned rep carries: a rep's expected "
                                 "share ∝ capacity × (1 + this × min(experience, 10) / 10).", ge=0)


class Eligibility(Section):
    """Which reps may be given an account."""

    segment_match: Bool = F(True, "An account goes only to reps of its segment.")
    max_distance_km: Float | None = F(None, "Largest rep-home-to-account distance (none: no limit).",
                                      unit="km", gt=0)
    nearest_reps: Int | None = F(10, "Each account considers only its k nearest eligible reps (0: all "
                                 "eligible reps; null resets to the default 10); each rep also considers "
                                 "enough of its nearest accounts to fill its book twice over, so that no "
                                 "rep is left out. In Python the value 0 reads as None (all reps).", ge=0)
    complex_min_experience: Float = F(0.0, "Minimum experience of a rep for an account with a complex "
                                      "buying process.", unit="years", ge=0)
    top_potential_share: Float = F(0.0, "Share of accounts, by potential, that count as top accounts.",
                                   unit="share", ge=0, le=1)
    top_min_experience: Float = F(0.0, "Minimum experience of a rep for a top account.", unit="years",
                                  ge=0)

    @field_validator("nearest_reps", mode="after")
    @classmethod
    def _zero_is_all(cls, value: int | None) -> int | None:
        return None if value == 0 else value  # None: every eligible rep, as the engine reads it

    @field_serializer("nearest_reps")
    def _dump_all_as_zero(self, value: int | None) -> int:
        return 0 if value is None else value  # written back to YAML, null would mean the default 10


class Continuity(Section):
    """How much of the current assignment is kept."""

    max_moved_share: Float | None = F(None, "Largest share of accounts that may change owner.",
                                      unit="share", ge=0, le=1)
    max_moved_potential_share: Float | None = F(None, "Largest share of potential that may change owner.",
                                                unit="share", ge=0, le=1)


class Weights(Section):
    """Objective weights. Every term is a cost ≥ 0 in comparable points, reported separately:
    travel in km (workload-weighted mean distance), the others in percentage points.
    """

    travel: Float = F(0.1, "Per km of workload-weighted mean rep-home-to-account distance (10 km weigh "
                      "as much as 1% of potential moved).", ge=0)
    balance: Float = F(1.0, "Per point of mean absolute deviation (%) of the reps' workload and "
                       "potential from their targets.", ge=0)
    industry_fit: Float = F(1.0, "Per % of workload with a rep who does not know the buyers' industry.",
                            ge=0)
    experience_fit: Float = F(1.0, "Per % of experience shortfall on complex and top accounts "
                              "(shortfall: 1 − experience / experience_reference_years).", ge=0)
    continuity: Float = F(1.0, "Per % of the owned potential that changes owner.", ge=0)
    unassigned_penalty: Float = F(1e4, "Per account left without a rep.", ge=0)
    band_violation: Float = F(10.0, "Per % by which a rep misses a balance band (when balance.hard is "
                              "false).", ge=0)


def _default_segment_hours() -> dict[str, float]:
    # About 20 enterprise, 80 mid-market or 300 SMB accounts fill a rep's 100 h a month.
    return {"enterprise": 60.0, "mid_market": 15.0, "smb": 4.0}


def _default_process_multipliers() -> dict[str, float]:
    return {"transactional": 0.7, "consultative": 1.0, "complex": 1.6}


class WorkloadModel(Section):
    """Workload of accounts that give no workload_hours: base hours by segment × buying process."""

    hours_by_segment: dict[str, NonNegative] = F(_default_segment_hours, "Hours a year an account of the "
                                           "segment takes.", unit="h/year")
    process_multiplier: dict[str, NonNegative] = F(_default_process_multipliers, "Multiplier by buying "
                                             "process.")


class Assignment(Section):
    """Accounts → reps: balance, eligibility, continuity, objective."""

    mode: Literal["balanced", "cost"] = F("balanced", "'balanced': the full model; 'cost': minimise Σ "
                                          "cost(account, rep) subject to capacities only.")
    balance: Balance = F(Balance, "Balance tolerances.")
    eligibility: Eligibility = F(Eligibility, "Eligibility rules.")
    continuity: Continuity = F(Continuity, "Limits on moved accounts.")
    weights: Weights = F(Weights, "Objective weights.")
    workload_model: WorkloadModel = F(WorkloadModel, "Derived account workload.")
    experience_reference_years: Float = F(5.0, "Experience at which a rep counts as seasoned for the "
                                          "experience fit.", unit="years", gt=0)


class Territory(Section):
    """Geo units → territories; present only when territories are designed."""

    count: Int | None = F(None, f"Number of territories (none: one per rep; at most {MAX_TERRITORIES:,}).",
                          ge=1, le=MAX_TERRITORIES)
    balance: dict[str, Float] = F(lambda: {"workload": 0.05}, "Activity measure → tolerance "
                                  "(± share of the mean); measures: workload, potential, accounts.")
    compactness: Literal["distance", "boundary"] = F("distance", "Compactness measure.")
    keep_home_units: Bool = F(True, "A rep's home unit stays in that rep's territory.")
    by_segment: Bool = F(True, "Carve each segment's territories for its own reps, measured by its own "
                         "accounts (false: one carving of every account among every rep).")
    account_level: Bool = F(False, "Assign accounts by the engine among each territory's reps, balanced "
                            "within the territory (true; needed when a territory has several reps), or let "
                            "accounts follow their unit (false).")
    shares: Literal["capacity", "equal"] = F("capacity", "Each territory's target share of every measure: "
                                             "its rep's share of the team's capacity over the period (a hire "
                                             "who starts late or a rep who leaves carries less), or equal "
                                             "shares (the mean; always so with territory.count).")
    rebalance: Bool = F(False, "Start from today's territories and move as few units as possible (true), "
                        "or carve from scratch (false).")
    time_limit: Float = F(60.0, "Seconds the territory design may take in a planning run.", unit="seconds",
                        gt=0)

    @model_validator(mode="after")
    def _measures_known(self) -> Territory:
        unknown = set(self.balance) - {"workload", "potential", "accounts"}
        if unknown:
            raise ValueError(f"unknown balance measure(s): {', '.join(sorted(unknown))}")
        if any(v < 0 for v in self.balance.values()):
            raise ValueError("balance tolerances must be ≥ 0")
        return self


class Quota(Section):
    """Company target and how it is allocated to reps."""

    company_target: Float | None = F(None, "Bookings target of the company for the period (none: "
                                     "derived from the simulated forecast).", unit="currency", ge=0)
    method: Literal["potential", "history", "pipeline", "equal_probability"] = F(
        "potential", "Allocation method.")
    over_assignment: Float = F(1.20, "Sum of quotas ÷ company target (field: 1.20-1.25).", ge=1)
    history_growth: Float = F(1.10, "Growth applied to last year's actual (method history).", ge=0)
    history_weight: Float = F(0.5, "Weight of history against potential (method history).", ge=0, le=1)
    floor: Float | None = F(None, "Smallest quota of a ramped rep.", unit="currency", ge=0)
    cap: Float | None = F(None, "Largest quota of a rep.", unit="currency", ge=0)
    rounding: Float = F(1000.0, "Quotas are rounded to a multiple of this.", unit="currency", ge=0)


class Stage(Section):
    """One stage of the sales process."""

    name: str = F(description="Stage name as the CRM writes it.")
    conversion: Float = F(description="Probability that a deal in this stage reaches the next one (the "
                          "last stage: that it closes won).", ge=0, le=1)
    median_days: Float = F(description="Median days spent in the stage.", unit="days", gt=0)


def _default_stages() -> tuple[Stage, ...]:
    return (
        Stage(name="qualify", conversion=0.55, median_days=14),
        Stage(name="discover", conversion=0.65, median_days=21),
        Stage(name="propose", conversion=0.70, median_days=21),
        Stage(name="negotiate", conversion=0.80, median_days=14),
    )


class DealSize(Section):
    """Lognormal deal amounts for a segment."""

    median: Float = F(description="Median deal amount.", unit="currency", gt=0)
    sigma: Float = F(0.8, "σ of the log amount (field default 0.8).", ge=0)


def _default_deal_sizes() -> dict[str, DealSize]:
    return {
        "enterprise": DealSize(median=120_000),
        "mid_market": DealSize(median=30_000),
        "smb": DealSize(median=6_000),
    }


class Simulation(Section):
    """Monte Carlo simulation of the pipeline."""

    trials: Int = F(10_000, f"Number of simulated periods (at most {MAX_TRIALS:,}).", ge=1, le=MAX_TRIALS)
    seed: Int = F(2027, "Random seed: same scenario + same seed gives the same result.", ge=0)
    stages: tuple[Stage, ...] = F(_default_stages, "Open stages in order; a deal leaving the last one "
                                  "is won.")
    deal_sizes: dict[str, DealSize] = F(_default_deal_sizes, "Deal size by segment.")
    cycle_multiplier: dict[str, NonNegative] = F(
        lambda: {"enterprise": 2.0, "mid_market": 1.0, "smb": 0.5},
        "Multiplier on stage durations by segment (enterprise cycles are longer).")
    process_cycle_multiplier: dict[str, NonNegative] = F(
        lambda: {"transactional": 0.7, "consultative": 1.0, "complex": 1.5},
        "Multiplier on stage durations by buying process.")
    duration_sigma: Float = F(0.5, "σ of the log duration of a stage.", ge=0)
    seasonality: tuple[Float, ...] = F(
        lambda: (0.85, 0.9, 1.05, 0.9, 0.95, 1.1, 0.85, 0.85, 1.05, 1.0, 1.1, 1.3),
        "Relative rate of new opportunities by calendar month (January first); normalised to mean 1.")
    market_correlation: Float = F(0.05, "ρ of the one-factor Gaussian copula on win probabilities "
                                  "(0: deals independent).", ge=0, lt=1)
    market_correlation_quarters: Int = F(0, "Quarters of history market_correlation was measured over (0: ρ "
                                         "is known). With 2 or more, each trial draws its own ρ from the "
                                         "measurement's sampling distribution, so a ρ seen over few quarters "
                                         "widens the range as it should. Fitted with the rest (use_history).",
                                         ge=0, le=400)
    amount_change_ratio: Float = F(1.0, "Mean ratio of an open deal's final (won) amount to the amount in "
                                   "the CRM (e.g. 0.9: deals close 10% smaller on average).", gt=0)
    amount_change_sigma: Float = F(0.0, "σ of the log of that ratio, deal by deal (0: every deal closes at "
                                   "its CRM amount × the mean ratio).", ge=0)
    slip_probability: Float = F(0.25, "Probability that a deal's close date slips by a stage duration.",
                                ge=0, le=1)
    pipeline_yield: Float = F(0.25, "Share of an account's annual potential that turns into won "
                              "revenue in a year; sets the arrival rate of new opportunities.", ge=0)
    win_rate_std_error: Float = F(0.0, "Standard error of the win rate: how far the fitted value may be off. "
                                  "Each trial shifts every open deal's win probability by a draw of it (0: "
                                  "none). Fitted with the rest (use_history).", ge=0, lt=1)
    pipeline_yield_std_error: Float = F(0.0, "Standard error of pipeline_yield; each trial scales new deals by "
                                        "a draw of it (0: none). Fitted with the rest (use_history).", ge=0)
    workload_coverage: Bool = F(True, "A rep works no more of the book than the rep's hours cover: in a "
                                "month where the book needs more hours than the rep has (ramp, start and "
                                "end dates included), new opportunities on it arrive in proportion "
                                "(capacity ÷ workload). False: every book is worked in full, whatever its "
                                "size.")
    use_history: Bool = F(True, "Fit the pipeline model to the history table (see `tercap calibrate`): "
                          "a value this section sets (other than its default) is kept, the others are "
                          "fitted where the history holds enough deals.")
    open_deals: Literal["auto", "age", "stage"] = F(
        "auto", "How open deals win and close: 'age' by the deal model fitted to every deal, open ones "
        "included (tercap.pipeline: a deal's chance falls as it ages past the cycles seen), 'stage' by the "
        "stage conversions and durations; 'auto' takes 'age' where the history holds no stage evidence (an "
        "empty last_stage on every closed deal), else 'stage'. 'age' also sets new deals' win rate and "
        "timing from the deal model, and needs a history (use_history).")

    @model_validator(mode="after")
    def _stages_valid(self) -> Simulation:
        if not self.stages:
            raise ValueError("at least one stage is needed")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("stage names must be unique")
        if len(self.seasonality) != 12:
            raise ValueError(f"seasonality needs 12 monthly values, got {len(self.seasonality)}")
        if any(v < 0 for v in self.seasonality) or sum(self.seasonality) <= 0:
            raise ValueError("seasonality values must be ≥ 0 and not all zero")
        return self

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def win_rate(self) -> float:
        """Probability that a new opportunity in the first stage closes won."""
        rate = 1.0
        for stage in self.stages:
            rate *= stage.conversion
        return rate


class Solver(Section):
    """Which solver profile the optimisation uses."""

    profile: str = F("default", "A profile name from solvers/ (default, exact, quick, cpsat, cbc) or "
                     "a path to a TOML file.")


class Settings(Section):
    """Everything a scenario file says apart from its tables: the validated sections."""

    name: str = F("", "Scenario name shown in reports (the file name otherwise).")
    description: str = F("", "What the scenario is about, one or two sentences.")
    period: Period = F(description="The planning period.")
    capacity: Capacity = F(Capacity, "Selling capacity.")
    assignment: Assignment = F(Assignment, "Account assignment.")
    territory: Territory | None = F(None, "Territory design (omit to assign accounts directly).")
    quota: Quota = F(Quota, "Quotas.")
    simulation: Simulation = F(Simulation, "Pipeline simulation.")
    solver: Solver = F(Solver, "Solver profile.")


# Top-level YAML keys that are not sections.
TABLES_KEY = "tables"
EXTENDS_KEY = "extends"

# ----------------------------------------------------------------------------------------------
# Table specs
# ----------------------------------------------------------------------------------------------


class Kind(StrEnum):
    """How a column's cells are read."""

    ID = "id"  # a non-empty identifier, kept as text
    TEXT = "text"
    FLOAT = "number"
    INT = "integer"
    BOOL = "boolean"  # true/false, yes/no, 1/0 (any case)
    DATE = "date"  # ISO 8601, YYYY-MM-DD
    LIST = "list"  # several values separated by ';'


@dataclass(frozen=True)
class Column:
    """One column of a table: its kind, meaning, unit and rules."""

    name: str
    kind: Kind
    description: str
    unit: str = ""
    required: bool = False  # the column must be present
    nullable: bool = True  # empty cells allowed (when present)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unique: bool = False
    references: tuple[str, str] | None = None  # (table, column) an id must exist in
    default: str = ""  # the documented meaning of an empty cell


@dataclass(frozen=True)
class TableSpec:
    """A table of a scenario: its columns and whether the scenario must have it."""

    name: str
    description: str
    columns: tuple[Column, ...]
    required: bool = False
    unique_together: tuple[str, ...] = ()
    symmetric: bool = False  # unique_together pairs are unordered: (a, b) and (b, a) are the same
    column_index: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_index", {c.name: c for c in self.columns})


C = Column
K = Kind
AMOUNT_SOURCES = ("export", "price", "default")  # where a deal's amount came from (CRM import)

REPS = TableSpec(
    "reps", "The sales reps, one row each, including known hires with a start date.",
    required=True, columns=(
        C("rep_id", K.ID, "Unique rep identifier.", required=True, nullable=False, unique=True),
        C("name", K.TEXT, "Display name.", default="rep_id"),
        C("lat", K.FLOAT, "Home latitude (needed by assignment and territory design, which measure "
          "distances).", "degrees", minimum=-90, maximum=90, default="none"),
        C("lon", K.FLOAT, "Home longitude.", "degrees", minimum=-180, maximum=180, default="none"),
        C("region", K.TEXT, "Sales region."),
        C("manager", K.TEXT, "Sales manager the rep reports to (for reference)."),
        C("segment", K.TEXT, "Role: the segment the rep sells to (enterprise, mid_market, smb, …).",
          required=True, nullable=False),
        C("experience_years", K.FLOAT, "Years of sales experience.", "years", minimum=0, default="0"),
        C("industries", K.LIST, "Industries whose buyers the rep knows, separated by ';'."),
        C("capacity_hours", K.FLOAT, "Hours a month for account work once ramped.", "h/month",
          minimum=0, maximum=HOURS_IN_A_MONTH, default="capacity.hours_per_month"),
        C("max_accounts", K.INT, "Most accounts the rep can carry.", "accounts", minimum=0,
          default="no limit"),
        C("start_date", K.DATE, "First day of a new hire; ramp counts from it.",
          default="ramped before the period"),
        C("end_date", K.DATE, "Last day of a known departure.", default="stays"),
        C("ramp_profile", K.TEXT, "Name of a ramp curve in capacity.ramp_curves.",
          default="capacity.default_ramp of the segment"),
        C("last_year_quota", K.FLOAT, "Quota of the previous period.", "currency", minimum=0),
        C("last_year_actual", K.FLOAT, "Bookings of the previous period.", "currency", minimum=0),
    ))

ACCOUNTS = TableSpec(
    "accounts", "The accounts (customers and prospects) to assign.",
    required=True, columns=(
        C("account_id", K.ID, "Unique account identifier.", required=True, nullable=False, unique=True),
        C("name", K.TEXT, "Display name.", default="account_id"),
        C("lat", K.FLOAT, "Latitude (assignment and territory design need it, or a geo_unit).", "degrees",
          minimum=-90, maximum=90, default="the centroid of geo_unit, else none"),
        C("lon", K.FLOAT, "Longitude.", "degrees", minimum=-180, maximum=180,
          default="the centroid of geo_unit, else none"),
        C("geo_unit", K.ID, "Geo unit (postal code, county) the account lies in.",
          references=("geo_units", "unit_id")),
        C("region", K.TEXT, "Sales region."),
        C("industry", K.TEXT, "Industry of the buyer."),
        C("segment", K.TEXT, "Segment (enterprise, mid_market, smb, …).", required=True, nullable=False),
        C("size_band", K.TEXT, "Size band (e.g. employees 1-99, 100-999, 1000+)."),
        C("potential", K.FLOAT, "Annual revenue opportunity.", "currency/year", required=True,
          nullable=False, minimum=0),
        C("workload_hours", K.FLOAT, "Hours a year the account takes.", "h/year", minimum=0,
          default="assignment.workload_model"),
        C("buying_process", K.TEXT, "How the customer buys.", choices=BUYING_PROCESSES,
          default=DEFAULT_BUYING_PROCESS),
        C("current_owner", K.ID, "Rep who owns the account today.", references=("reps", "rep_id"),
          default="unassigned"),
        C("locked", K.BOOL, "The account stays with its current owner.", default="false"),
    ))

GEO_UNITS = TableSpec(
    "geo_units", "Small geographic units (postal codes, counties) that territories are built from.",
    columns=(
        C("unit_id", K.ID, "Unique unit identifier.", required=True, nullable=False, unique=True),
        C("name", K.TEXT, "Display name.", default="unit_id"),
        C("lat", K.FLOAT, "Centroid latitude.", "degrees", required=True, nullable=False,
          minimum=-90, maximum=90),
        C("lon", K.FLOAT, "Centroid longitude.", "degrees", required=True, nullable=False,
          minimum=-180, maximum=180),
        C("area", K.FLOAT, "Area.", "km²", minimum=0),
        C("region", K.TEXT, "Region the unit belongs to."),
        C("locked", K.BOOL, "Territory design keeps the unit with the rep who owns most of its workload today.",
          default="false"),
    ))

ADJACENCY = TableSpec(
    "adjacency", "Pairs of geo units that share a border (or a declared link across water).",
    unique_together=("unit_a", "unit_b"), symmetric=True, columns=(
        C("unit_a", K.ID, "One unit.", required=True, nullable=False, references=("geo_units", "unit_id")),
        C("unit_b", K.ID, "The other unit.", required=True, nullable=False,
          references=("geo_units", "unit_id")),
        C("length", K.FLOAT, "Length of the shared border.", "km", minimum=0, default="1"),
    ))

PIPELINE = TableSpec(
    "pipeline", "Open opportunities at the start of the period.", columns=(
        C("opp_id", K.ID, "Unique opportunity identifier.", required=True, nullable=False, unique=True),
        C("account_id", K.ID, "Account of the deal.", required=True, nullable=False,
          references=("accounts", "account_id")),
        C("owner", K.ID, "Rep working the deal.", references=("reps", "rep_id"),
          default="the account's owner"),
        C("stage", K.TEXT, "Current stage, one of simulation.stages.", required=True, nullable=False),
        C("amount", K.FLOAT, "Expected deal amount.", "currency", required=True, nullable=False,
          minimum=0),
        C("created", K.DATE, "Date the opportunity was created.", required=True, nullable=False),
        C("expected_close", K.DATE, "Close date the rep expects.", default="from the stage model"),
        C("forecast_category", K.TEXT, "CRM forecast category.",
          choices=("commit", "best_case", "pipeline", "omitted")),
        C("amount_source", K.TEXT, "Where the amount comes from: the CRM export, a price list or a default "
          "(written by `tercap import crm`).", choices=AMOUNT_SOURCES, default="export"),
    ))

HISTORY = TableSpec(
    "history", "Closed opportunities of past periods, as a CRM exports them.", columns=(
        C("opp_id", K.ID, "Unique opportunity identifier.", required=True, nullable=False, unique=True),
        C("account_id", K.ID, "Account of the deal.", required=True, nullable=False,
          references=("accounts", "account_id")),
        C("owner", K.ID, "Rep who owned the deal (may have left: not checked against reps)."),
        C("amount", K.FLOAT, "Deal amount.", "currency", required=True, nullable=False, minimum=0),
        C("created", K.DATE, "Date the opportunity was created.", required=True, nullable=False),
        C("closed", K.DATE, "Date it closed, won or lost.", required=True, nullable=False),
        C("won", K.BOOL, "Closed won (true) or lost (false).", required=True, nullable=False),
        C("last_stage", K.TEXT, "Last open stage the deal reached, one of simulation.stages.",
          default="unknown: no stage evidence"),
        C("amount_source", K.TEXT, "Where the amount comes from: the CRM export, a price list or a default "
          "(written by `tercap import crm`).", choices=AMOUNT_SOURCES, default="export"),
    ))

STAGE_HISTORY = TableSpec(
    "stage_history", "The stages each deal entered and when (a CRM's field history), as `tercap import crm` "
    "writes it: the backtest reads each open deal's stage on an origin's morning from it.", columns=(
        C("opp_id", K.ID, "Opportunity of the pipeline or history table.", required=True, nullable=False),
        C("stage", K.TEXT, "Stage entered: one of simulation.stages, or won, lost or closed.", required=True,
          nullable=False),
        C("entered", K.DATE, "Date the deal entered the stage.", required=True, nullable=False),
    ))

PAIRS = TableSpec(
    "pairs", "Sparse per (account, rep) overrides, e.g. travel time from a routing engine.",
    unique_together=("account_id", "rep_id"), columns=(
        C("account_id", K.ID, "Account.", required=True, nullable=False,
          references=("accounts", "account_id")),
        C("rep_id", K.ID, "Rep.", required=True, nullable=False, references=("reps", "rep_id")),
        C("workload_hours", K.FLOAT, "Hours a year this rep would spend on this account.", "h/year",
          minimum=0, default="the account's workload"),
        C("cost", K.FLOAT, "Travel cost of the pair in km-equivalents (e.g. drive minutes × km/min); "
          "replaces the haversine distance in the travel term and in cost mode.", unit="km",
          minimum=0, default="haversine distance"),
        C("eligible", K.BOOL, "false forbids the pair; true allows it despite the eligibility rules.",
          default="the eligibility rules"),
    ))

TABLE_SPECS: dict[str, TableSpec] = {
    spec.name: spec for spec in (REPS, ACCOUNTS, GEO_UNITS, ADJACENCY, PIPELINE, HISTORY, STAGE_HISTORY, PAIRS)
}
# Order in which tables are read: a referenced table comes before the tables that refer to it.
TABLE_ORDER: tuple[str, ...] = ("reps", "geo_units", "accounts", "adjacency", "pipeline", "history",
                                "stage_history", "pairs")
