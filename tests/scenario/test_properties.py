"""Property-based checks of the reading layer."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tercap.errors import ProblemLog
from tercap.scenario.reading import deep_merge
from tercap.scenario.schema import GEO_UNITS, TABLE_SPECS
from tercap.scenario.tables import convert_table

keys = st.sampled_from(list("abcde"))
leaves = st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))
trees = st.recursive(st.dictionaries(keys, leaves, max_size=4),
                     lambda children: st.dictionaries(keys, st.one_of(leaves, children), max_size=4),
                     max_leaves=12)


@settings(deadline=None)
@given(trees, trees)
def test_merge_keeps_the_base_and_lets_the_override_win(base, override):
    merged = deep_merge(base, override)
    assert set(merged) == set(base) | set(override)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == deep_merge(base[key], value)
        else:
            assert merged[key] == value
    for key in set(base) - set(override):
        assert merged[key] == base[key]


coordinates = st.floats(min_value=-90, max_value=90, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(coordinates, coordinates), min_size=1, max_size=30), st.data())
def test_numbers_read_back_exactly_and_errors_name_their_row(points, data):
    frame = pd.DataFrame({"unit_id": [f"U{i}" for i in range(len(points))],
                          "lat": [repr(p[0]) for p in points], "lon": [repr(p[1]) for p in points]})
    log = ProblemLog()
    table = convert_table(frame, GEO_UNITS, "units.csv", log)
    assert not log.problems
    assert table["lat"].tolist() == [p[0] for p in points]

    bad = data.draw(st.integers(min_value=0, max_value=len(points) - 1))
    frame.loc[bad, "lon"] = "east"
    log = ProblemLog()
    convert_table(frame, GEO_UNITS, "units.csv", log)
    (problem,) = log.problems
    assert (problem.row, problem.column) == (bad + 2, "lon")


cells = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "1,5", "1,250", "2025", "2025-02-30", "2025-01-01T10:00+02:00", "3000-01-01",
                     "99999999999999999999", "1e30", "inf", "nan", "-0", "true", "yes", "a;b", "0x10", "1_000"]),
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(), st.none(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.lists(st.text(max_size=3), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(TABLE_SPECS.values())), st.data())
def test_any_cell_gives_a_table_or_problems_never_an_exception(spec, data):
    columns = [col.name for col in spec.columns]
    frame = pd.DataFrame({name: data.draw(st.lists(cells, min_size=2, max_size=2)) for name in columns})
    log = ProblemLog()
    table = convert_table(frame, spec, "t.csv", log)
    assert table is not None
    for problem in log.problems:
        assert problem.row in (2, 3) and problem.column in columns, problem
        assert "np." not in problem.message and "Timestamp(" not in problem.message, problem
