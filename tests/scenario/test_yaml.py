"""The YAML file: hostile or mistyped input is refused with file, line and key; never a crash."""

from __future__ import annotations

import datetime as dt
import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tercap
from tercap.scenario.capacity import month_starts
from tercap.scenario.schema import Period, Settings

from .test_validation import load_errors, only


def billion_laughs(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghijk"[:levels - 1]:
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + f"\ndescription: *{previous}\n"


def test_alias_bomb_is_refused_quickly_with_bounded_memory(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + billion_laughs(9))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = only(load_errors(tiny.path), message="YAML aliases expand too far")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 50e6
    assert error.file.endswith("scenario.yaml")


def test_an_alias_inside_itself_is_refused(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "description: &loop [*loop]\n")
    only(load_errors(tiny.path), message="YAML aliases expand too far")


def test_a_few_aliases_are_fine(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + """\
simulation:
  deal_sizes:
    smb: &small {median: 5000, sigma: 0.5}
    mid_market: *small
assignment:
  balance: &loose {workload_tolerance: 0.3, potential_tolerance: 0.3}
""")
    scenario = tercap.load(tiny.path)
    sizes = scenario.settings.simulation.deal_sizes
    assert sizes["smb"] == sizes["mid_market"] and sizes["smb"].median == 5000
    assert sizes["enterprise"].median == 120_000  # default kept


def test_merge_keys_may_repeat_a_key_on_purpose(tiny):
    # a merge key is allowed; the key written next to it wins over the merged one
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + """\
assignment:
  balance:
    <<: {workload_tolerance: 0.3, potential_tolerance: 0.3}
    workload_tolerance: 0.2
""")
    balance = tercap.load(tiny.path).settings.assignment.balance
    assert (balance.workload_tolerance, balance.potential_tolerance) == (0.2, 0.3)


def test_an_impossible_date_names_file_and_line(tiny):
    tiny.edit("scenario.yaml", "start: 2027-01-01", "start: 2027-02-30")
    error = only(load_errors(tiny.path), line=2, message="not a valid date: 2027-02-30")
    assert error.file.endswith("scenario.yaml")


def test_a_duplicate_key_is_refused(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "quota: {company_target: 5}\n")
    only(load_errors(tiny.path), line=11, key="quota", message="the key 'quota' is given twice (first on line 10)")


def test_a_duplicate_nested_key_is_refused(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "simulation:\n  trials: 10\n  seed: 1\n"
               "  trials: 20\n")
    only(load_errors(tiny.path), line=14, key="simulation.trials", message="the key 'trials' is given twice")


def test_a_list_as_key_is_not_called_a_tag(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "? [a, b]\n: 1\n")
    error = only(load_errors(tiny.path), line=11, message="a key must be a plain name")
    assert "tag" not in error.message


def test_yaml_that_is_not_utf8(tiny):
    text = tiny.files["scenario.yaml"].replace("name: tiny", "name: café")
    (tiny.path).write_bytes(text.encode("latin-1"))
    only(load_errors(tiny.path), line=1, message="save it as UTF-8")


def test_nesting_too_deep_is_an_error_not_a_crash(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    only(load_errors(tiny.path), message="nested too deeply")


def test_extends_naming_a_folder(tiny):
    (tiny.root / "base").mkdir()
    tiny.write("child.yaml", "name: child\nextends: base\n")
    error = only(load_errors(tiny.root / "child.yaml"), key="extends", line=2, message="a folder, not a file")
    assert error.file.endswith("child.yaml")


def test_table_naming_a_folder(tiny):
    (tiny.root / "old").mkdir()
    tiny.edit("scenario.yaml", "history: history.csv", "history: old")
    error = only(load_errors(tiny.path), key="tables.history", line=9, message="a folder, not a file")
    assert error.file.endswith("scenario.yaml")


def test_yaml_exponents_are_numbers(tiny):
    tiny.edit("scenario.yaml", "company_target: 1000000", "company_target: 48e6")
    assert tercap.load(tiny.path).settings.quota.company_target == 48e6


@pytest.mark.parametrize(("text", "key", "words"), [
    ("simulation: {trials: true}", "simulation.trials", "valid integer"),
    ("simulation: {trials: '100'}", "simulation.trials", "valid integer"),
    ("simulation: {trials: 2.5}", "simulation.trials", "valid integer"),
    ("assignment: {balance: {hard: 'yes'}}", "assignment.balance.hard", "valid boolean"),
    ("assignment: {balance: {hard: 1}}", "assignment.balance.hard", "valid boolean"),
    ("capacity: {hours_per_month: .inf}", "capacity.hours_per_month", "finite number"),
    ("simulation: {duration_sigma: .nan}", "simulation.duration_sigma", "finite number"),
    ("capacity: {hours_per_month: '100'}", "capacity.hours_per_month", "valid number"),
    ("assignment: {workload_model: {hours_by_segment: {smb: true}}}",
     "assignment.workload_model.hours_by_segment.smb", "valid number"),
    ("capacity: {hires: [{segment: smb, count: 1000000000}]}", "capacity.hires.0.count", "10000"),
    ("capacity: {hires: [{segment: smb, count: 6000}, {segment: smb, count: 6000}]}", "capacity",
     "add up to 12,000 hires"),
    ("simulation: {trials: 1000000000}", "simulation.trials", "1000000"),
    ("territory: {count: 1000000000}", "territory.count", "10000"),
    ("capacity: {hours_per_month: 800}", "capacity.hours_per_month", "744"),
])
def test_settings_are_taken_as_written(tiny, text, key, words):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + text + "\n")
    only(load_errors(tiny.path), key=key, line=11, message=words)


def test_float_settings_take_integers(tiny):
    tiny.write("scenario.yaml", tiny.files["scenario.yaml"] + "capacity: {hours_per_month: 90}\n")
    assert tercap.load(tiny.path).settings.capacity.hours_per_month == 90.0


@pytest.mark.parametrize(("start", "words"), [
    ("2027-01-15", "first day of a month"),
    ("1850-01-01", "between 1900 and 2200"),
    ("9999-01-01", "between 1900 and 2200"),
    ("2027", "a date as YYYY-MM-DD"),
    ("true", "a date"),
])
def test_period_start(tiny, start, words):
    tiny.edit("scenario.yaml", "start: 2027-01-01", f"start: {start}")
    only(load_errors(tiny.path), key="period.start", line=2, message=words)


def test_period_start_may_be_quoted(tiny):
    tiny.edit("scenario.yaml", "start: 2027-01-01", "start: '2027-04-01'")
    assert tercap.load(tiny.path).period.start == dt.date(2027, 4, 1)


@given(st.integers(1900, 2190), st.integers(1, 12), st.integers(1, 60))
def test_period_end_and_capacity_months_agree(year, month, months):
    period = Period(start=dt.date(year, month, 1), months=months)
    settings = Settings(period=period)
    starts = month_starts(settings)
    assert len(starts) == months + 1
    assert starts[0].date() == period.start and starts[-1].date() == period.end
    assert all(s.day == 1 for s in starts)
    assert (starts[-1].year - year) * 12 + starts[-1].month - month == months
