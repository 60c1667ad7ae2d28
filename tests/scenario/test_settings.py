"""Settings: one merge rule for mapping-valued settings, read-only values, replace() and its errors."""

from __future__ import annotations

import copy
import json
import pickle

import pandas as pd
import pytest

import tercap
from tercap.errors import ProblemLog, ScenarioError
from tercap.scenario.schema import Capacity, Eligibility, Settings, WorkloadModel
from tercap.scenario.validation import check_and_complete

from .test_validation import load_errors, only

HOURS = {"enterprise": 60.0, "mid_market": 15.0, "smb": 4.0}  # the schema's defaults


# -- B12: a mapping given in part is merged over the defaults, whatever the path -------------------


def test_yaml_mapping_given_in_part_keeps_the_other_defaults(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + """\
assignment:
  workload_model:
    hours_by_segment: {smb: 8}
capacity:
  ramp_curves:
    fast: [0.5, 1.0]
""")
    settings = tercap.load(tiny.path).settings
    assert settings.assignment.workload_model.hours_by_segment == {**HOURS, "smb": 8.0}
    assert set(settings.capacity.ramp_curves) == {"standard", "smb", "mid_market", "enterprise", "fast"}


def test_extends_merges_mappings_and_null_resets_to_the_default(tiny):
    tiny.write("base.yaml", tiny.files["scenario.yaml"] + """\
assignment:
  workload_model:
    hours_by_segment: {smb: 8, mid_market: 20}
""")
    tiny.write("child.yaml", """\
extends: base.yaml
assignment:
  workload_model:
    hours_by_segment: {enterprise: 100, mid_market: null}
""")
    hours = tercap.load(tiny.root / "child.yaml").settings.assignment.workload_model.hours_by_segment
    # smb from the base, enterprise from the child, mid_market back to the schema's default
    assert hours == {"enterprise": 100.0, "mid_market": 15.0, "smb": 8.0}


def test_replace_merges_mappings_into_the_current_scenario(tiny):
    scenario = tercap.load(tiny.path)
    step = scenario.replace(assignment={"workload_model": {"hours_by_segment": {"smb": 8}}})
    assert step.settings.assignment.workload_model.hours_by_segment == {**HOURS, "smb": 8.0}
    again = step.replace(assignment={"workload_model": {"hours_by_segment": {"enterprise": 90}}})
    assert again.settings.assignment.workload_model.hours_by_segment == {**HOURS, "smb": 8.0, "enterprise": 90.0}
    reset = again.replace(assignment={"workload_model": {"hours_by_segment": {"smb": None}}})
    assert reset.settings.assignment.workload_model.hours_by_segment["smb"] == 4.0
    # the balance section given in part keeps its other keys, as in a file that extends
    loose = scenario.replace(assignment={"balance": {"workload_tolerance": 0.3}})
    before, after = scenario.settings.assignment.balance, loose.settings.assignment.balance
    assert after.potential_tolerance == before.potential_tolerance and after.workload_tolerance == 0.3


def test_replace_with_a_section_object_replaces_the_section_whole(tiny):
    scenario = tercap.load(tiny.path).replace(capacity={"hours_per_month": 80,
                                                        "hires": [{"segment": "smb", "count": 2}]})
    assert scenario.settings.capacity.hours_per_month == 80 and len(scenario.planned_hires) == 2
    whole = scenario.replace(capacity=Capacity(ramp_curves={"fast": (0.5, 1.0)}))
    assert whole.settings.capacity.hours_per_month == 100  # the new object's, not merged with 80
    assert whole.planned_hires.empty
    assert "fast" in whole.settings.capacity.ramp_curves and "standard" in whole.settings.capacity.ramp_curves


def test_python_constructors_follow_the_same_rule():
    assert WorkloadModel(hours_by_segment={"smb": 8}).hours_by_segment == {**HOURS, "smb": 8.0}
    assert WorkloadModel(hours_by_segment={"smb": None}).hours_by_segment == HOURS


# -- nearest_reps: 0 means all eligible reps; null goes back to the default 10 ----------------------


def test_nearest_reps_zero_means_all_and_null_the_default(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "assignment: {eligibility: {nearest_reps: 0}}\n")
    scenario = tercap.load(tiny.path)
    assert scenario.settings.assignment.eligibility.nearest_reps is None  # the engine reads None as all
    dumped = scenario.settings.model_dump()
    assert dumped["assignment"]["eligibility"]["nearest_reps"] == 0  # as a file would say it
    assert Settings.model_validate(dumped) == scenario.settings
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "assignment: {eligibility: {nearest_reps: null}}\n")
    assert tercap.load(tiny.path).settings.assignment.eligibility.nearest_reps == 10
    assert Eligibility(nearest_reps=None).nearest_reps is None  # code that passes None keeps working
    assert Eligibility(nearest_reps=5).nearest_reps == 5


def test_nearest_reps_is_not_negative(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "assignment: {eligibility: {nearest_reps: -1}}\n")
    only(load_errors(tiny.path), key="assignment.eligibility.nearest_reps", message="greater than or equal to 0")


# -- B14: settings cannot be changed in place ------------------------------------------------------


MAPPINGS = [
    ("capacity", "ramp_curves"), ("capacity", "default_ramp"), ("simulation", "deal_sizes"),
    ("simulation", "cycle_multiplier"), ("simulation", "process_cycle_multiplier"),
]


@pytest.mark.parametrize(("section", "field"), MAPPINGS)
def test_mapping_settings_are_read_only(tiny, section, field):
    settings = tercap.load(tiny.path).settings
    mapping = getattr(getattr(settings, section), field)
    key = next(iter(mapping))
    for change in (lambda: mapping.__setitem__("x", 1), lambda: mapping.__delitem__(key), mapping.clear,
                   lambda: mapping.update(x=1), lambda: mapping.pop(key), mapping.popitem,
                   lambda: mapping.setdefault("x", 1)):
        with pytest.raises(TypeError, match="replace"):
            change()
    assert key in mapping


def test_read_only_settings_still_serialise_copy_and_pickle(tiny):
    settings = tercap.load(tiny.path).settings
    hours = settings.assignment.workload_model.hours_by_segment
    with pytest.raises(TypeError):
        hours["smb"] = 1
    with pytest.raises(TypeError):
        settings.assignment.workload_model.process_multiplier["complex"] = 9
    with pytest.raises(TypeError):
        hours |= {"smb": 1}
    assert json.loads(settings.model_dump_json())["assignment"]["workload_model"]["hours_by_segment"] == HOURS
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert copy.deepcopy(settings) == settings
    assert Settings.model_validate(settings.model_dump()) == settings
    assert pd.Series(["smb"]).map(hours).tolist() == [4.0]


# -- B11: one rule for the ramp curve; no silent NaN or fallback ------------------------------------


def test_ramp_name_for():
    capacity = Capacity(default_ramp={"smb": "smb"})
    assert capacity.ramp_name_for("smb") == "smb"
    assert capacity.ramp_name_for("public_sector") == "standard"
    assert capacity.ramp_name_for("smb", "enterprise") == "enterprise"
    assert not hasattr(capacity, "ramp_curve_for")


FILES = {"__yaml__": "s.yaml", "reps": "reps.csv", "accounts": "accounts.csv", "geo_units": "geo_units.csv"}


def _unchecked(settings: Settings, **sections: object) -> Settings:
    """Settings with sections put in place without validation (as model_construct or model_copy do)."""
    return settings.model_copy(update=sections)


def test_missing_standard_curve_is_an_error_not_a_fallback(tiny):
    scenario = tercap.load(tiny.path)
    partial = Capacity.model_construct(ramp_curves={"fast": (0.5, 1.0)}, default_ramp={"smb": "fast"})
    log = ProblemLog()
    completed = check_and_complete(_unchecked(scenario.settings, capacity=partial),
                                   {"reps": scenario.reps.assign(ramp_profile=""), "accounts": scenario.accounts,
                                    "geo_units": scenario.geo_units}, FILES, log)
    assert completed is None
    (error,) = log.problems
    assert (error.file, error.row, error.column) == ("reps.csv", 4, "ramp_profile")  # R3, enterprise
    assert "segment 'enterprise'" in error.message and "no 'standard' curve" in error.message


def test_missing_process_multiplier_is_an_error_not_nan(tiny):
    scenario = tercap.load(tiny.path)
    model = WorkloadModel.model_construct(hours_by_segment=HOURS, process_multiplier={"consultative": 1.0})
    assignment = scenario.settings.assignment.model_copy(update={"workload_model": model})
    accounts = scenario.accounts
    accounts["workload_hours"] = [None, 20.0, None, 150.0]  # A1 transactional, A3 blank (consultative)
    log = ProblemLog()
    check_and_complete(_unchecked(scenario.settings, assignment=assignment),
                       {"reps": scenario.reps, "accounts": accounts, "geo_units": scenario.geo_units}, FILES, log)
    (error,) = log.problems
    assert (error.row, error.column) == (2, "buying_process") and "process_multiplier" in error.message


def test_settings_from_model_copy_are_validated_again(tiny):
    scenario = tercap.load(tiny.path)
    sloppy = scenario.settings.model_copy(update={"simulation": scenario.settings.simulation.model_copy(
        update={"trials": -5})})
    with pytest.raises(ScenarioError) as caught:
        tercap.Scenario.from_tables(sloppy, {"reps": scenario.reps, "accounts": scenario.accounts})
    only(caught.value.errors, key="simulation.trials")


# -- replace(): clear errors that name replace() ----------------------------------------------------


def test_replace_errors_name_replace_and_suggest(tiny):
    scenario = tercap.load(tiny.path)
    with pytest.raises(ScenarioError) as caught:
        scenario.replace(quota={"company_targt": 5})
    only(caught.value.errors, file="replace()", key="quota.company_targt",
         message="unknown key (did you mean 'company_target'?)")
    with pytest.raises(ScenarioError) as caught:
        scenario.replace(simulation={"trials": "many"})
    only(caught.value.errors, file="replace()", key="simulation.trials", message="got 'many'")
    with pytest.raises(ScenarioError) as caught:
        scenario.replace(capacity={"hires": [{"segment": "smb", "start_month": 13}]})
    only(caught.value.errors, file="replace()", key="capacity.hires.0.start_month")


@pytest.mark.parametrize(("changes", "words"), [
    ({"reps": "reps.csv"}, "table 'reps' takes a pandas DataFrame"),
    ({"accounts": [1, 2]}, "table 'accounts' takes a pandas DataFrame"),
    ({"quotas": {}}, "did you mean 'quota'"),
])
def test_replace_with_a_wrong_type_is_a_type_error(tiny, changes, words):
    with pytest.raises(TypeError, match=words):
        tercap.load(tiny.path).replace(**changes)


@pytest.mark.parametrize("value", [5, "big", [1, 2]])
def test_replace_a_section_with_a_non_mapping_is_a_scenario_error(tiny, value):
    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.path).replace(capacity=value)
    only(caught.value.errors, file="replace()", key="capacity")


def test_replace_a_section_with_the_wrong_section(tiny):
    from tercap.scenario.schema import Quota

    with pytest.raises(ScenarioError) as caught:
        tercap.load(tiny.path).replace(capacity=Quota())
    only(caught.value.errors, file="replace()", key="capacity")


def test_capacity_never_falls_back_to_another_curve(tiny):
    from tercap.scenario.capacity import period_capacity_hours

    scenario = tercap.load(tiny.path)
    with pytest.raises(KeyError, match="slowburn"):
        period_capacity_hours(scenario.settings, scenario.reps.assign(ramp_profile="slowburn"))
