"""Run folders: every file is written to a staging folder first and moved into place at the end, so a
failed run leaves no half-written file behind."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@")
FLOAT_DECIMALS = 4


def neutralise_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would read as a formula get a leading apostrophe."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_string_dtype(out[column]) or out[column].dtype == object:
            text = out[column]
            risky = text.astype("string").str.startswith(FORMULA_STARTS).fillna(False).to_numpy(dtype=bool)
            if risky.any():
                out[column] = text.astype(object).where(~risky, "'" + text.astype("string").astype(object))
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


class RunFolder:
    """Collects a run's files in a staging folder; `commit` moves them into the run folder."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        self.written: list[Path] = []

    def path(self, relative: str) -> Path:
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(Path(relative))
        return target

    def csv(self, relative: str, frame: pd.DataFrame) -> None:
        neutralise_text(frame).round(FLOAT_DECIMALS).to_csv(self.path(relative), index=False)

    def parquet(self, relative: str, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.path(relative), index=False)

    def json(self, relative: str, data: dict[str, Any]) -> None:
        self.path(relative).write_text(json.dumps(_json_safe(data), indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")

    def commit(self) -> None:
        for relative in self.written:
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / relative, target)


@contextmanager
def run_folder(root: str | Path) -> Iterator[RunFolder]:
    """Write a run's files; they appear in `root` only if the block finishes without an error."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        folder = RunFolder(root, staging)
        yield folder
        folder.commit()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
