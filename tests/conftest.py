"""Shared fixtures: a tiny valid scenario written to a temporary folder, edited per test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPS = """\
rep_id,name,lat,lon,region,segment,experience_years,industries,capacity_hours,max_accounts
R1,Ann Lee,40.71,-74.00,East,smb,5,retail;healthcare,100,50
R2,Bob Park,41.88,-87.63,Central,smb,1,,,
R3,Cy Diaz,34.05,-118.24,West,enterprise,9,technology,120,10
"""
ACCOUNTS = """\
account_id,name,lat,lon,geo_unit,industry,segment,potential,workload_hours,buying_process,current_owner,locked
A1,Acme,40.80,-74.10,U1,retail,smb,50000,,transactional,R1,true
A2,Beta,41.80,-87.70,U2,healthcare,smb,80000,20,complex,R2,false
A3,Gamma,,,U3,retail,smb,1000,,,,
A4,Delta,34.10,-118.30,,technology,enterprise,900000,150,complex,R3,false
"""
GEO_UNITS = """\
unit_id,name,lat,lon,area
U1,Newark,40.73,-74.17,60
U2,Chicago,41.88,-87.63,600
U3,Pittsburgh,40.44,-79.99,150
"""
ADJACENCY = """\
unit_a,unit_b,length
U1,U3,5
U2,U3,3
"""
PIPELINE = """\
opp_id,account_id,owner,stage,amount,created,expected_close,forecast_category
O1,A1,R1,propose,12000,2026-10-01,2027-02-15,best_case
O2,A4,,negotiate,250000,2026-08-20,2027-01-31,commit
"""
HISTORY = """\
opp_id,account_id,owner,amount,created,closed,won,last_stage
H1,A1,R1,9000,2025-03-01,2025-05-20,true,negotiate
H2,A2,R9,15000,2025-06-01,2025-07-01,false,discover
"""
YAML = """\
name: tiny
period: {start: 2027-01-01, months: 12, label: FY27}
tables:
  reps: reps.csv
  accounts: accounts.csv
  geo_units: geo_units.csv
  adjacency: adjacency.csv
  pipeline: pipeline.csv
  history: history.csv
quota: {company_target: 1000000}
"""


class ScenarioFolder:
    """A valid tiny scenario in a folder; tests edit one file and load it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = {"scenario.yaml": YAML, "reps.csv": REPS, "accounts.csv": ACCOUNTS,
                      "geo_units.csv": GEO_UNITS, "adjacency.csv": ADJACENCY, "pipeline.csv": PIPELINE,
                      "history.csv": HISTORY}
        for name, text in self.files.items():
            self.write(name, text)

    @property
    def path(self) -> Path:
        return self.root / "scenario.yaml"

    def write(self, name: str, text: str) -> Path:
        target = self.root / name
        target.write_text(textwrap.dedent(text), encoding="utf-8")
        return target

    def edit(self, name: str, old: str, new: str) -> None:
        text = (self.root / name).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        self.write(name, text.replace(old, new, 1))


@pytest.fixture
def tiny(tmp_path: Path) -> ScenarioFolder:
    return ScenarioFolder(tmp_path)


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding the planning runs of the base example and its hire what-if (made once per
    session: the comparison tests and the notebooks reuse them)."""
    import tercap

    runs = tmp_path_factory.mktemp("example-runs")
    tercap.compare([REPO / "scenarios" / "acme_fy27.yaml", REPO / "scenarios" / "acme_fy27_hire5.yaml"],
                   runs_dir=runs)
    return runs
