"""CRM import of a raw export as it comes: price list, defaults, undated rows, the summary and --scenario.

A clean deals table is made messy by `write_messy_export` (lost amounts 0, open amounts and dates missing,
accounts missing, products misspelt) and imported back with the mapping written beside it: the tables
must be the clean deals again, less the undated rows, each of which is counted.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import tercap
from tercap.assign.inputs import read_inputs
from tercap.cli import main
from tercap.errors import TercapError
from tercap.scenario.crm import CrmImportError, import_crm, load_mapping
from tercap.scenario.crm_messy import BUCKET_ACCOUNT, EXPORT_FILE, write_messy_export
from tercap.scenario.crm_sources import product_key
from tests.conftest import REPO

AS_OF = dt.date(2017, 12, 31)
PRICES = {"GTX Pro": 4821.0, "GTX Basic": 550.0, "MG Special": 55.0, "MG Advanced": 3393.0, "GTK 500": 26768.0}


def clean_deals(seed: int = 3, count: int = 300) -> pd.DataFrame:
    """Deals as the CRM knows them: every date, account and amount in place."""
    rng = np.random.default_rng(seed)
    product = rng.choice(sorted(PRICES), count)
    price = np.array([PRICES[p] for p in product])
    stage = rng.choice(["Won", "Lost", "Prospecting", "Engaging"], count, p=[0.4, 0.3, 0.15, 0.15])
    created = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(30, 700, count), unit="D")
    closed = (created + pd.to_timedelta(rng.integers(1, 120, count), unit="D")).where(
        ~pd.Series(stage).isin(["Prospecting", "Engaging"]).to_numpy())
    closed = closed.where(closed <= pd.Timestamp(AS_OF), pd.Timestamp(AS_OF))
    won = stage == "Won"
    amount = np.where(won, np.round(price * rng.uniform(0.8, 1.1, count)), price)
    return pd.DataFrame({
        "opp_id": [f"{i:08X}" for i in rng.choice(2**31, count, replace=False)],
        "account": rng.choice([f"Account {i}" for i in range(25)], count),
        "owner": rng.choice(["Anna Snelling", "Cecily Lampkin", "Darcel Schlecht", "Moses Frase", "Zane Levy"],
                            count),
        "product": product, "price": price, "created": created, "closed": closed, "won": won, "amount": amount,
        "stage": stage})


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path, Path]:
    """(clean deals, mapping path, import folder) of one messy export imported with --scenario."""
    folder = tmp_path_factory.mktemp("messy")
    deals = clean_deals()
    mapping = write_messy_export(deals, AS_OF, folder / "raw", seed=5)
    out = folder / "crm import"
    import_crm(folder / "raw" / EXPORT_FILE, mapping, out, build_scenario=True)
    return deals, mapping, out


def _export(mapping: Path) -> pd.DataFrame:
    return pd.read_csv(mapping.parent / EXPORT_FILE, dtype=str, keep_default_na=False)


def test_the_messy_export_is_messy(messy: tuple[pd.DataFrame, Path, Path]) -> None:
    deals, mapping, _out = messy
    export = _export(mapping)
    lost, open_ = deals["stage"].eq("Lost"), deals["stage"].isin(["Prospecting", "Engaging"])
    assert (export.loc[lost, "close_value"] == "0").all() and (export.loc[open_, "close_value"] == "").all()
    assert (export.loc[open_, "close_date"] == "").all()
    early = deals["stage"].eq("Prospecting")
    assert 0 < (export.loc[early, "engage_date"] == "").sum() < early.sum()
    assert 0 < (export.loc[early, "account"] == "").sum() < early.sum()
    assert (export.loc[~early, "engage_date"] != "").all() and (export.loc[~early, "account"] != "").all()
    respelt = export["product"] != deals["product"]
    assert respelt.mean() > 0.2 and "GTXPro" in set(export["product"])
    known = {product_key(name) for name in PRICES}
    assert {p for p in export["product"] if product_key(p) not in known} == {"GTK 500 (legacy)"}  # the alias


def test_the_import_gives_the_clean_deals_back(messy: tuple[pd.DataFrame, Path, Path]) -> None:
    deals, mapping, out = messy
    export = _export(mapping)
    undated = export["engage_date"].eq("").to_numpy()
    no_account = export["account"].str.strip().eq("").to_numpy()
    kept = deals[~undated].reset_index(drop=True)
    pipeline = pd.read_csv(out / "pipeline.csv", dtype=str, keep_default_na=False)
    history = pd.read_csv(out / "history.csv", dtype=str, keep_default_na=False)

    open_ = kept[kept["stage"].isin(["Prospecting", "Engaging"])]
    assert list(pipeline["opp_id"]) == list(open_["opp_id"])
    expected_account = np.where(no_account[~undated], BUCKET_ACCOUNT, deals.loc[~undated, "account"])
    by_id = dict(zip(kept["opp_id"], expected_account, strict=True))
    assert list(pipeline["account_id"]) == [by_id[i] for i in pipeline["opp_id"]]
    assert list(pipeline["owner"]) == list(open_["owner"])
    assert list(pipeline["stage"]) == list(open_["stage"].str.lower())
    assert list(pipeline["amount"].astype(float)) == list(open_["price"])  # open: the price
    assert set(pipeline["amount_source"]) == {"price"}
    assert list(pipeline["created"]) == list(open_["created"].dt.strftime("%Y-%m-%d"))

    closed = kept[kept["stage"].isin(["Won", "Lost"])]
    assert list(history["opp_id"]) == list(closed["opp_id"])
    assert list(history["won"] == "true") == list(closed["won"])
    assert list(history["amount"].astype(float)) == list(closed["amount"])  # won: its value; lost: the price
    assert list(history["amount_source"]) == list(np.where(closed["won"], "export", "price"))
    assert list(history["created"]) == list(closed["created"].dt.strftime("%Y-%m-%d"))
    assert list(history["closed"]) == list(closed["closed"].dt.strftime("%Y-%m-%d"))
    assert (history["last_stage"] == "").all()  # no stage evidence: unknown, not invented

    summary = json.loads((out / "import-summary.json").read_text(encoding="utf-8"))
    notes = {note["rule"]: note for note in summary["notes"]}
    assert notes["undated rows skipped"]["rows"] == undated.sum() == summary["skipped"]
    assert notes[f"account defaulted to '{BUCKET_ACCOUNT}'"]["rows"] == (no_account & ~undated).sum()
    lost = int((~closed["won"]).sum())
    assert notes["amount from price list"]["by"] == {"missing": len(open_), "zero on lost": lost}
    assert notes["amount from price list"]["rows"] == len(open_) + lost
    written = export.loc[~undated, "product"]  # counted among the rows imported
    assert notes["product by alias → 'GTK 500'"]["by"] == {"'GTK 500 (legacy)'": (written == "GTK 500 (legacy)").sum()}
    assert notes["product spelt otherwise → 'GTX Pro'"]["by"]["'GTXPro'"] == (written == "GTXPro").sum()
    assert notes["last stage unknown (left empty)"]["rows"] == len(closed)
    assert "lost deals with amount 0 kept" not in notes
    assert summary["as_of"] == AS_OF.isoformat() and summary["as_of_from"] == "mapping"


def test_the_built_scenario_loads_and_says_what_needs_coordinates(messy: tuple[pd.DataFrame, Path, Path]) -> None:
    deals, _mapping, out = messy
    scenario = tercap.load(out / "scenario.yaml")
    assert scenario.name == "crm_import"
    assert scenario.settings.period.start == dt.date(2018, 1, 1)
    assert scenario.settings.simulation.stage_names == ("prospecting", "engaging")
    assert sorted(scenario.reps["rep_id"]) == sorted(deals["owner"].unique())
    assert scenario.reps["manager"].str.startswith("Manager").all() and scenario.reps["region"].ne("").all()
    assert BUCKET_ACCOUNT in set(scenario.accounts["account_id"])
    assert (scenario.accounts["potential"] > 0).all() and scenario.accounts["industry"].ne("").sum() > 0
    won = deals[deals["won"]].groupby("account")["amount"].sum()
    top = won.idxmax()
    potential = scenario.accounts.set_index("account_id")["potential"]
    assert potential.idxmax() == top and potential[BUCKET_ACCOUNT] == 1.0  # won a year; no won deal: 1
    with pytest.raises(TercapError, match="coordinates"):
        read_inputs(scenario)


def test_the_cli_imports_validates_and_refuses_bad_input(messy: tuple[pd.DataFrame, Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _deals, mapping, _out = messy
    out = tmp_path / "cli"
    assert main(["import", "crm", str(mapping.parent / EXPORT_FILE), str(out), "--mapping", str(mapping),
                 "--scenario"]) == 0
    printed = capsys.readouterr().out
    assert "undated rows skipped" in printed and "amount from price list" in printed
    assert main(["validate", str(out / "scenario.yaml")]) == 0

    lines = (mapping.parent / EXPORT_FILE).read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(lines) if ",Lost," in line)
    cells = lines[row].split(",")
    cells[2] = "GTX Prox"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:row], ",".join(cells), *lines[row + 1:]]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["import", "crm", str(bad), str(tmp_path / "nothing"), "--mapping", str(mapping)]) == 2
    printed = capsys.readouterr()
    message = printed.out + printed.err
    assert f"row {row + 1}" in message and "column product" in message and "'GTX Pro'" in message
    assert not (tmp_path / "nothing").exists()


def test_the_export_is_the_same_for_a_seed(tmp_path: Path) -> None:
    deals = clean_deals(count=60)
    first = write_messy_export(deals, AS_OF, tmp_path / "a", seed=9)
    again = write_messy_export(deals, AS_OF, tmp_path / "b", seed=9)
    other = write_messy_export(deals, AS_OF, tmp_path / "c", seed=10)
    for name in (EXPORT_FILE, "products.csv", "sales_teams.csv", "accounts.csv", "mapping.yaml"):
        assert (first.parent / name).read_bytes() == (again.parent / name).read_bytes()
    assert (first.parent / EXPORT_FILE).read_bytes() != (other.parent / EXPORT_FILE).read_bytes()


# -- the rules one by one, on small exports ------------------------------------------------------------------

HEADER = "id,owner,product,account,stage,engaged,closed,value"


def _small(folder: Path, rows: list[str], **mapping: object) -> tuple[Path, Path]:
    """An export of `rows` and a mapping (a price list beside it unless prices=None)."""
    export = folder / "export.csv"
    export.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    (folder / "prices.csv").write_text("product,sales_price\nGTX Pro,4821\nMG Special,55\n", encoding="utf-8")
    content: dict[str, object] = {
        "columns": {"opp_id": "id", "owner": "owner", "product": "product", "account_id": "account",
                    "stage": "stage", "created": "engaged", "close_date": "closed", "amount": "value"},
        "open_stages": ["prospecting", "engaging"],
        "stages": {"Prospecting": "prospecting", "Engaging": "engaging", "Won": "won", "Lost": "lost"},
        "prices": {"file": "prices.csv", "product": "product", "price": "sales_price",
                   "use_for": ["missing", "zero_lost"]},
    }
    content.update(mapping)
    path = folder / "mapping.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in content.items() if v is not None}), encoding="utf-8")
    return export, path


ROWS = ["1,Ann,GTX Pro,A1,Won,2017-01-02,2017-02-01,5000",
        "2,Ann,MG Special,A2,Lost,2017-01-03,2017-03-01,0",
        "3,Bob,GTXPro,,Prospecting,,,",
        "4,Bob,gtx pro,A1,Engaging,2017-05-01,,",
        "5,Bob,MG Special,A2,Lost,,2017-04-01,0"]


def test_undated_rows_error_skip_or_keep_as_of(tmp_path: Path) -> None:
    export, mapping = _small(tmp_path, ROWS, defaults={"account": "none"})
    with pytest.raises(CrmImportError) as caught:
        import_crm(export, mapping, tmp_path / "out")
    assert [(p.row, p.column) for p in caught.value.errors] == [(4, "engaged"), (6, "engaged")]

    export, mapping = _small(tmp_path, ROWS, defaults={"account": "none", "created_from": ["closed"]},
                             undated="keep_as_of")
    result = import_crm(export, mapping, tmp_path / "out")
    assert result.as_of == dt.date(2017, 5, 1) and result.as_of_from == "export"  # the latest date
    assert list(result.pipeline["created"].dt.strftime("%Y-%m-%d")) == ["2017-05-01", "2017-05-01"]
    assert result.history["created"].iloc[2] == pd.Timestamp("2017-04-01")  # from the close date
    rules = {note.rule: note.rows for note in result.notes}
    assert rules["created date from closed"] == 1 and rules["undated rows kept as created on 2017-05-01"] == 1
    assert rules["product spelt otherwise → 'GTX Pro'"] == 2
    assert "product spelt otherwise → 'GTX Pro': 2 rows ('GTXPro' 1, 'gtx pro' 1)" in result.summary()
    assert rules["account defaulted to 'none'"] == 1

    export, mapping = _small(tmp_path, ROWS, defaults={"account": "none"}, undated="skip")
    result = import_crm(export, mapping, tmp_path / "out")
    assert list(result.pipeline["opp_id"]) + list(result.history["opp_id"]) == ["4", "1", "2"]
    assert result.skipped == 2 and "undated rows skipped: 2 rows" in result.summary()


def test_lost_zero_amounts_are_kept_and_counted_without_a_price(tmp_path: Path) -> None:
    export, mapping = _small(tmp_path, [ROWS[0], ROWS[1], "6,Ann,,A1,Lost,2017-01-03,2017-03-01,0"],
                             prices={"file": "prices.csv", "product": "product", "price": "sales_price",
                                     "use_for": ["missing"]})
    result = import_crm(export, mapping, tmp_path / "out")
    assert list(result.history["amount"]) == [5000, 0, 0]
    assert list(result.history["amount_source"]) == ["export"] * 3
    note = next(n for n in result.notes if n.rule == "lost deals with amount 0 kept")
    assert note.rows == 2 and note.warning and "warning: lost deals with amount 0 kept: 2 rows" in result.summary()


def test_default_amount_and_located_errors(tmp_path: Path) -> None:
    export, mapping = _small(tmp_path, ["7,Ann,,A1,Engaging,2017-01-03,,"], defaults={"amount": 1000})
    result = import_crm(export, mapping, tmp_path / "out")
    assert list(result.pipeline["amount"]) == [1000] and list(result.pipeline["amount_source"]) == ["default"]

    export, mapping = _small(tmp_path, ["7,Ann,,A1,Engaging,2017-01-03,,", "8,Ann,MG Specal,A1,Engaging,2017-01-03,,"])
    with pytest.raises(CrmImportError) as caught:
        import_crm(export, mapping, tmp_path / "out")
    found = {(p.row, p.column): p.message for p in caught.value.errors}
    assert "no price applies" in found[(2, "value")]
    assert "did you mean 'MG Special'?" in found[(3, "product")]

    export, mapping = _small(tmp_path, ROWS[:1], prices={"file": "nowhere/prices.csv", "product": "product",
                                                         "price": "sales_price", "aliases": {"X": "Y"}})
    with pytest.raises(CrmImportError) as caught:
        import_crm(export, mapping, tmp_path / "out")
    (problem,) = caught.value.errors
    assert problem.key == "prices.file" and problem.line is not None
    assert str(tmp_path / "nowhere" / "prices.csv") in problem.message

    export, mapping = _small(tmp_path, ROWS[:1], prices={"file": "prices.csv", "product": "product",
                                                         "price": "price", "aliases": {"Old": "GTX Pr"}})
    with pytest.raises(CrmImportError) as caught:
        import_crm(export, mapping, tmp_path / "out")
    messages = [str(p) for p in caught.value.errors]
    assert any("row 1, column price" in m and "did you mean 'sales_price'?" in m for m in messages)


def test_mapping_keys_are_checked(tmp_path: Path) -> None:
    _export, mapping = _small(tmp_path, ROWS, undated="drop", defaults={"acount": "x"})
    with pytest.raises(CrmImportError) as caught:
        load_mapping(mapping)
    found = {p.key: p for p in caught.value.errors}
    assert "did you mean 'account'?" in found["defaults.acount"].message and found["defaults.acount"].line
    assert "keep_as_of" in found["undated"].message

    _export, mapping = _small(tmp_path, ROWS, columns={"opp_id": "id", "stage": "stage", "account_id": "account",
                                                       "amount": "value", "created": "engaged", "close_date": "closed"})
    with pytest.raises(CrmImportError) as caught:
        load_mapping(mapping)
    assert "prices needs columns.product" in caught.value.errors[0].message


def test_stage_history_gives_the_last_stage(tmp_path: Path) -> None:
    (tmp_path / "history.csv").write_text(
        "deal,to_stage,changed\n1,Prospecting,2017-01-02\n1,Engaging,2017-01-10\n2,Prospecting,2017-01-03\n"
        "2,Lost,2017-03-01\n99,Engaging,2017-01-01\n", encoding="utf-8")
    export, mapping = _small(tmp_path, ROWS[:2], stage_history={"file": "history.csv", "opp_id": "deal",
                                                                "stage": "to_stage", "date": "changed"})
    result = import_crm(export, mapping, tmp_path / "out")
    assert list(result.history["last_stage"]) == ["engaging", "prospecting"]
    written = pd.read_csv(tmp_path / "out" / "stage_history.csv", dtype=str)
    assert list(written.columns) == ["opp_id", "stage", "entered"] and len(written) == 4
    assert list(written["stage"]) == ["prospecting", "engaging", "prospecting", "lost"]
    rules = {note.rule: note.rows for note in result.notes}
    assert rules["stage history rows of deals not imported, left out"] == 1
    assert rules["last stage from the stage history"] == 2
    built = import_crm(export, mapping, tmp_path / "built", build_scenario=True)
    scenario = tercap.load(built.scenario_path)  # the scenario reads the stage history as a table
    assert scenario.stage_history is not None and list(scenario.stage_history["stage"]) == list(written["stage"])


def test_the_example_and_documented_mappings_load(tmp_path: Path) -> None:
    example = load_mapping(REPO / "scenarios" / "crm" / "price-list-mapping.yaml")
    assert example.prices is not None and example.prices.use_for == ("missing", "zero_lost")
    assert example.undated == "skip" and example.defaults.account == "unassigned"
    text = (REPO / "docs" / "crm-import.md").read_text(encoding="utf-8")
    block = text.split("## Exports with a price list", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "mapping.yaml").write_text(block, encoding="utf-8")
    documented = load_mapping(tmp_path / "mapping.yaml")
    assert documented.model_dump() == example.model_dump()
