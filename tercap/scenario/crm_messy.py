"""A raw CRM export made from a clean deals table, messy the way real exports are, for testing the import.

`write_messy_export` writes an opportunity export shaped like a common public CRM sample (one row per deal:
opportunity_id, sales_agent, product, account, deal_stage, engage_date, close_date, close_value), with a
price list, a sales team file, an accounts file and the mapping that imports them without hand edits:

- lost deals have close_value 0 and open deals none (the price list gives their amounts);
- open deals have no close date; deals in the early open stage have no account on about half the rows and
  no date at all on about half;
- product names are spelt differently on some rows (spaces dropped, odd case and spaces, a legacy name that
  only an alias maps), and a few owner and account cells have spaces around them.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

__all__ = ["BUCKET_ACCOUNT", "EXPORT_FILE", "write_messy_export"]

EXPORT_FILE = "sales_pipeline.csv"
BUCKET_ACCOUNT = "unassigned"  # the mapping's defaults.account
CLEAN_COLUMNS = ("opp_id", "account", "owner", "product", "price", "created", "closed", "won", "amount", "stage")
EARLY_BLANK_ACCOUNT = 0.5  # share of early-stage open deals without an account
EARLY_UNDATED = 0.5  # share of early-stage open deals without any date
RESPELT = 0.3  # share of rows whose product is spelt another way
PADDED = 0.05  # share of owner and account cells with spaces around them
SECTORS = ("retail", "software", "medical", "finance", "technology", "services")
OFFICES = ("Central", "East", "West")


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.casefold()).strip("_") or "stage"


def _legacy_name(product: str) -> str:
    """A name of `product` that no normalising reads as it: only the mapping's alias does."""
    return f"{product} (legacy)"


def _respelt(product: str, kind: int) -> str:
    if kind == 0 and " " in product:
        return product.replace(" ", "")  # GTX Pro → GTXPro
    if kind == 1:
        return f"  {product.upper()} "  # odd case and spaces
    return product.lower().replace(" ", "-")  # gtx-pro


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.strftime("%Y-%m-%d").fillna("")


def _money(values: np.ndarray) -> list[str]:
    return [f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}" for v in values]


def write_messy_export(deals: pd.DataFrame, as_of: dt.date, out_dir: str | Path, seed: int,
                       open_labels: tuple[str, ...] = ("Prospecting", "Engaging")) -> Path:
    """Write the export, products.csv, sales_teams.csv, accounts.csv and mapping.yaml into `out_dir`; return
    the mapping's path. Deterministic for a seed.

    `deals` is clean: opp_id, account, owner, product (the price list's name), price, created, closed (NaT
    when open at `as_of`), won (False when open), amount (won: the final value; otherwise the price) and
    stage (an open deal's label from `open_labels`, the first being the early stage; "Won" or "Lost").
    """
    missing = set(CLEAN_COLUMNS) - set(deals.columns)
    if missing:
        raise ValueError(f"the deals table lacks the columns {', '.join(sorted(missing))}")
    prices = deals.groupby("product")["price"].unique()
    if (prices.map(len) > 1).any():
        raise ValueError("each product needs one price: the price list has one line per product")
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = len(deals)
    is_open = deals["stage"].isin(open_labels).to_numpy(dtype=bool)
    early = deals["stage"].eq(open_labels[0]).to_numpy(dtype=bool)
    lost = deals["stage"].eq("Lost").to_numpy(dtype=bool)

    products = sorted(prices.index)
    product = deals["product"].astype(str).to_numpy(dtype=object).copy()
    respelt = rng.random(count) < RESPELT
    kinds = rng.integers(0, 3, count)
    product[respelt] = [_respelt(p, k) for p, k in zip(product[respelt], kinds[respelt], strict=True)]
    legacy = (deals["product"].eq(products[0]).to_numpy(dtype=bool)) & (rng.random(count) < RESPELT)
    product[legacy] = _legacy_name(products[0])

    account = deals["account"].astype(str).to_numpy(dtype=object).copy()
    account[early & (rng.random(count) < EARLY_BLANK_ACCOUNT)] = ""
    undated = early & (rng.random(count) < EARLY_UNDATED)
    owner = deals["owner"].astype(str).to_numpy(dtype=object).copy()
    for cells in (owner, account):
        padded = (rng.random(count) < PADDED) & (cells != "")
        cells[padded] = [f" {c}  " for c in cells[padded]]

    engage = _dates(deals["created"]).to_numpy(dtype=object)
    engage[undated] = ""
    close = _dates(deals["closed"]).to_numpy(dtype=object)
    close[is_open] = ""
    value = np.array(_money(deals["amount"].to_numpy(dtype=float)), dtype=object)
    value[lost] = "0"
    value[is_open] = ""
    pd.DataFrame({
        "opportunity_id": deals["opp_id"].astype(str), "sales_agent": owner, "product": product, "account": account,
        "deal_stage": deals["stage"].astype(str), "engage_date": engage, "close_date": close, "close_value": value,
    }).to_csv(out_dir / EXPORT_FILE, index=False)

    pd.DataFrame({"product": products, "series": [p.split(" ")[0] for p in products],
                  "sales_price": _money(np.array([prices[p][0] for p in products], dtype=float))}
                 ).to_csv(out_dir / "products.csv", index=False)
    agents = sorted(deals["owner"].astype(str).unique())
    managers = [f"Manager {chr(ord('A') + i)}" for i in range(max(1, len(agents) // 5))]
    pd.DataFrame({"sales_agent": agents, "manager": rng.choice(managers, len(agents)),
                  "regional_office": rng.choice(OFFICES, len(agents))}).to_csv(out_dir / "sales_teams.csv", index=False)
    names = sorted(deals["account"].astype(str).unique())
    pd.DataFrame({"account": names, "sector": rng.choice(SECTORS, len(names)),
                  "year_established": rng.integers(1960, 2015, len(names)),
                  "revenue": np.round(rng.lognormal(7, 1, len(names)), 2),
                  "employees": rng.integers(10, 20_000, len(names)),
                  "office_location": rng.choice(("United States", "Kenya", "Norway", "Japan"), len(names)),
                  "subsidiary_of": ""}).to_csv(out_dir / "accounts.csv", index=False)

    mapping = {
        "columns": {"opp_id": "opportunity_id", "account_id": "account", "owner": "sales_agent",
                    "stage": "deal_stage", "amount": "close_value", "created": "engage_date",
                    "close_date": "close_date", "product": "product"},
        "open_stages": [_slug(label) for label in open_labels],
        "stages": {**{label: _slug(label) for label in open_labels}, "Won": "won", "Lost": "lost"},
        "as_of": as_of,
        "prices": {"file": "products.csv", "product": "product", "price": "sales_price",
                   "aliases": {_legacy_name(products[0]): products[0]}, "use_for": ["missing", "zero_lost"]},
        "defaults": {"account": BUCKET_ACCOUNT},
        "undated": "skip",
        "teams": {"file": "sales_teams.csv", "owner": "sales_agent", "region": "regional_office",
                  "manager": "manager"},
        "accounts": {"file": "accounts.csv", "id": "account", "industry": "sector", "region": "office_location"},
    }
    path = out_dir / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
