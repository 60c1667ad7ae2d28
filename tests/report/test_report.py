"""The planning run end to end: the run folder, report.html and plan.xlsx."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import tercap
from tercap.cli import main
from tercap.report import RUN_FILES, render_report, write_run
from tercap.run import run_plan
from tests.conftest import REPO

SCRIPT_NAME = "<script>alert('x')</script>"
FORMULA_NAME = '=HYPERLINK("http://example.invalid","click")'
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


class TagChecker(HTMLParser):
    """Checks that every element is closed, in order, and counts tags and image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.image_sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "img":
            self.image_sources.append(dict(attrs).get("src") or "")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


@pytest.fixture(scope="module")
def awkward_run(tmp_path_factory: pytest.TempPathFactory):
    """The default scenario with a rep named like a script and an account named like a formula."""
    scenario = tercap.load(REPO / "scenarios" / "acme_fy27.yaml")
    reps = scenario.reps.copy()
    reps.loc[reps["rep_id"] == "R0001", "name"] = SCRIPT_NAME
    accounts = scenario.accounts.copy()
    accounts.loc[0, "name"] = FORMULA_NAME
    scenario = scenario.replace(reps=reps, accounts=accounts)
    run = run_plan(scenario, "quick", trials=1000)
    folder = tmp_path_factory.mktemp("run")
    report = write_run(run, folder)
    return run, folder, report


def test_the_run_folder_holds_every_contract_file(awkward_run):
    run, folder, report = awkward_run
    assert run.complete and report == folder / "report.html"
    assert run.quotas is run.simulation.allocation  # one allocation, judged and written
    for name in RUN_FILES:
        assert (folder / name).is_file(), name
    quotas = pd.read_csv(folder / "quota" / "quotas.csv")
    assert list(quotas.columns[:9]) == ["rep_id", "quota", "method", "potential", "last_year_actual", "pipeline",
                                        "ramp_factor", "p_attain", "basis"]
    assert quotas["quota"].sum() == pytest.approx(69_900_000 * 1.2)
    sim = pd.read_csv(folder / "sim" / "reps.csv").set_index("rep_id")
    assert sim["quota"].to_dict() == quotas.set_index("rep_id")["quota"].to_dict()  # one set of quotas
    summary = json.loads((folder / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == ["assignment", "simulation", "quotas"]
    assert 0 <= summary["headline"]["p_hit_target"] <= 1
    assert not any(p.name.startswith(".staging") for p in folder.iterdir())


def test_report_is_well_formed_self_contained_and_escaped(awkward_run):
    _, _, report = awkward_run
    text = report.read_text(encoding="utf-8")
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.open == []
    assert checker.counts["html"] == checker.counts["head"] == checker.counts["body"] == 1
    assert len(checker.image_sources) >= 6
    assert all(src.startswith("data:image/png;base64,") for src in checker.image_sources)  # nothing fetched
    assert "script" not in checker.counts  # the rep's name is text, not an element
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    for section in ("Balance", "Map", "Quotas", "Risk", "What moved"):
        assert f"<h2>{section}</h2>" in text


def test_workbook_has_its_sheets_formats_and_neutralised_formulas(awkward_run):
    from openpyxl import load_workbook

    _, folder, _ = awkward_run
    book = load_workbook(folder / "plan.xlsx")
    assert book.sheetnames == ["Summary", "Assignments", "Reps", "Quotas", "Simulation"]
    sheet = book["Assignments"]
    header = [cell.value for cell in sheet[1]]
    assert header[:4] == ["account_id", "account_name", "rep_id", "rep_name"]
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    cell = sheet.cell(row=2, column=2)
    assert cell.value == "'" + FORMULA_NAME and cell.data_type == "s"  # text, never a formula
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
    quotas = book["Quotas"]
    quota_column = [c.value for c in quotas[1]].index("quota") + 1
    assert quotas.cell(row=2, column=quota_column).number_format == "#,##0"
    assert quotas.column_dimensions["A"].width >= len("rep_id")


def test_report_renders_without_a_simulation(awkward_run):
    run, _, _ = awkward_run
    partial = type(run)(run.scenario, run.plan, None, None, run.steps[:1])
    text = render_report(partial)
    assert "<h2>Risk</h2>" not in text and "<h2>Map</h2>" in text


def test_cli_plan_runs_every_step(tmp_path: Path, capsys):
    code = main(["plan", str(REPO / "scenarios" / "acme_fy27.yaml"), "--solver", "quick", "--trials", "500",
                 "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "P(hit target)" in captured.out and "report:" in captured.out
    assert all((tmp_path / name).is_file() for name in RUN_FILES)
