"""Files beside a CRM export that the import mapping names: a price list, a stage history, a sales team file
and an accounts file. Each is a CSV read like the export (see `read_export`); a missing file or column is
reported with its path, and a bad cell with its file, row and column."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tercap.errors import ProblemLog
from tercap.scenario.crm import (
    CrmImportError,
    CrmMapping,
    _amounts,
    _Cells,
    _date_convention,
    _dates,
    _map_stage_labels,
    _read_dates,
    _Report,
    _required,
    read_export,
)
from tercap.scenario.reading import display_name, plain, suggest

__all__ = ["PriceList", "SideTable", "product_key", "read_price_list", "read_side_file", "read_stage_history"]

_NOT_A_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def product_key(name: str) -> str:
    """A product name as compared: case folded, without spaces and punctuation ('GTX Pro' → 'gtxpro')."""
    return _NOT_A_LETTER_OR_DIGIT.sub("", str(name).casefold())


@dataclass(frozen=True)
class SideTable:
    """A file beside the export: its cells as stripped text (mapped field → column), the spreadsheet row of
    each row and the file's name in messages."""

    cells: dict[str, _Cells]
    rows: np.ndarray
    name: str

    def report(self, log: ProblemLog) -> _Report:
        return _Report(self.name, self.rows, log)

    def __len__(self) -> int:
        return len(self.rows)


def read_side_file(mapping: CrmMapping, key: str, file: str, headers: dict[str, str | None],
                   log: ProblemLog) -> SideTable | None:
    """Read the file that the mapping's section `key` names; None (and the problems logged) when it cannot
    be read or lacks a mapped column."""
    path = mapping.resolve(file)
    if not path.is_file():
        where = mapping.where(key, "file")
        log.error(where["file"], f"{'a folder, not a file' if path.is_dir() else 'file not found'}: {path}",
                  line=where["line"], key=where["key"])
        return None
    try:
        frame, rows, _footer = read_export(path)
    except CrmImportError as exc:
        for problem in exc.problems:
            log.add(problem)
        return None
    name = display_name(path)
    listed = ", ".join(plain(h) for h in frame.columns)
    cells: dict[str, _Cells] = {}
    for field, header in headers.items():
        if header is None:
            continue
        if header not in frame.columns:
            log.error(name, f"the mapping's {key}.{field} names this column but the file has no such column"
                      f"{suggest(header, list(frame.columns))}; its columns are: {listed}", row=1, column=header)
            continue
        column = frame.loc[:, [header]].iloc[:, 0]  # the first of a repeated header
        cells[field] = _Cells(header, column.astype("string").fillna("").str.strip().reset_index(drop=True))
    if len(cells) < sum(h is not None for h in headers.values()):
        return None
    if frame.empty:
        log.error(name, "the file has a header but no rows")
        return None
    return SideTable(cells, rows, name)


@dataclass(frozen=True)
class PriceList:
    """Prices by product, and how export names find a price-list name."""

    prices: dict[str, float]  #: price-list name → price
    by_key: dict[str, str]  #: product_key(price-list name) → price-list name
    aliases: dict[str, str]  #: product_key(export name) → price-list name

    def match(self, names: pd.Series) -> tuple[pd.Series, pd.Series]:
        """(price-list name or NA, how: 'as written', 'normalised', 'alias' or '') of each export name.

        A name is compared after normalising (`product_key`) first, then looked up in the aliases."""
        names = names.astype(object)
        keys = names.map(product_key)
        direct = keys.map(self.by_key)
        aliased = keys.map(self.aliases)
        blank = (names == "").to_numpy(dtype=bool)
        matched = direct.astype(object).where(direct.notna(), aliased).where(~blank)
        how = np.select([blank, (names == direct).to_numpy(dtype=bool), direct.notna().to_numpy(dtype=bool),
                         aliased.notna().to_numpy(dtype=bool)], ["", "as written", "normalised", "alias"], default="")
        return matched.astype("string"), pd.Series(how, index=names.index)

    def nearest(self, name: str) -> str:
        """' (did you mean X?)' with the nearest price-list name, or ''."""
        hint = suggest(product_key(name), list(self.by_key))
        key = hint.removeprefix(" (did you mean '").removesuffix("'?)")
        return f" (did you mean '{self.by_key[key]}'?)" if hint else ""


def read_price_list(mapping: CrmMapping, log: ProblemLog) -> PriceList | None:
    """The mapping's price list; None (problems logged) when it cannot be read or has a bad cell."""
    prices = mapping.prices
    assert prices is not None
    errors_before = log.error_count
    table = read_side_file(mapping, "prices", prices.file, {"product": prices.product, "price": prices.price}, log)
    if table is None:
        return None
    report = table.report(log)
    product, price_cells = table.cells["product"], table.cells["price"]
    _required(product, report)
    _required(price_cells, report)
    price = _amounts(price_cells, mapping, report)
    keys = product.text.map(product_key)
    by_key: dict[str, str] = {}
    price_of: dict[str, float] = {}
    for index, (name, key) in enumerate(zip(product.text, keys, strict=True)):
        if not name or not np.isfinite(price[index]):
            continue
        if key in by_key and price_of[by_key[key]] != price[index]:
            report.each(np.arange(len(keys)) == index, product, "same product twice", lambda i, k=key: (
                f"{plain(product.text.iloc[i])} is the product {plain(by_key[k])} again (names are compared "
                "ignoring case, spaces and punctuation) with another price"))
            continue
        by_key.setdefault(key, name)
        price_of[by_key[key]] = float(price[index])
    aliases: dict[str, str] = {}
    for alias, target in prices.aliases.items():
        if product_key(target) not in by_key:
            where = mapping.where("prices", "aliases", alias)
            log.error(where["file"], f"'{alias}' is an alias of '{target}', which the price list "
                      f"{table.name} does not name{suggest(target, list(price_of))}", line=where["line"],
                      key=where["key"])
            continue
        aliases[product_key(alias)] = by_key[product_key(target)]
    if log.error_count > errors_before:
        return None
    return PriceList(price_of, by_key, aliases)


def read_stage_history(mapping: CrmMapping, choices: str, log: ProblemLog) -> pd.DataFrame | None:
    """The mapping's stage history: opp_id, stage (mapped through `stages`), entered (date), in the file's
    order; None (problems logged) when it cannot be read or has a bad cell."""
    section = mapping.stage_history
    assert section is not None
    errors_before = log.error_count
    table = read_side_file(mapping, "stage_history", section.file,
                           {"opp_id": section.opp_id, "stage": section.stage, "date": section.date}, log)
    if table is None:
        return None
    report = table.report(log)
    for field in ("opp_id", "stage", "date"):
        _required(table.cells[field], report)
    everywhere = np.ones(len(table), dtype=bool)
    stage = _map_stage_labels(table.cells["stage"], mapping.stage_lookup(), choices, everywhere, report)
    readings = _read_dates(table.cells["date"], mapping)
    convention = _date_convention([readings], report) if mapping.date_format is None else None
    entered = _dates(readings, convention, mapping, report)
    if log.error_count > errors_before:
        return None
    return pd.DataFrame({"opp_id": table.cells["opp_id"].text.astype("string"), "stage": stage,
                         "entered": entered})
