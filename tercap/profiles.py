"""Solver profiles: data files in solvers/*.toml; every key missing from a file takes its default."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from tercap.errors import TercapError

Strategy = Literal["auto", "mip", "decompose", "greedy"]
PROFILE_DIR = Path(__file__).resolve().parent.parent / "solvers"


@dataclass(frozen=True)
class SolverProfile:
    """How to solve: which backend, which strategy, within what time and gap.

    Strategies: `mip` hands the whole model to the backend; `decompose` solves the LP relaxation,
    fixes the accounts it assigns whole, solves the small residual MIP and polishes by local search;
    `greedy` builds a regret-greedy plan and polishes it; `auto` picks `mip` for models up to
    `mip_max_pairs` eligible pairs and, above, `decompose` followed by exact solves of the independent
    blocks (segments) of at most `mip_max_pairs` pairs. After decompose and greedy, `lns_rounds`
    neighbourhoods of `lns_reps` nearby reps ("auto": enough to visit every rep three times) are
    re-solved exactly while time is left. Every strategy reports the LP bound, and the bound raised
    by any exact solve.
    """

    name: str = "default"
    backend: str = "highs"
    strategy: Strategy = "auto"
    time_limit: float = 60.0  # seconds for the whole solve
    mip_gap: float = 0.005  # relative gap at which a MIP search may stop
    threads: int = 1
    seed: int = 0
    mip_max_pairs: int = 20_000
    local_search: bool = True
    lns_rounds: int | Literal["auto"] = "auto"  # neighbourhood re-solves after decompose/greedy (0: none)
    lns_reps: int = 6  # reps whose accounts each neighbourhood frees

    @classmethod
    def from_file(cls, path: str | Path) -> SolverProfile:
        """Read a TOML profile; unknown keys are an error, missing keys take the defaults."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TercapError(f"{path}: solver profile not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise TercapError(f"{path}: not valid TOML: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise TercapError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: "
                              f"{', '.join(sorted(known))})")
        data.setdefault("name", path.stem)
        profile = cls(**data)
        profile.check(str(path))
        return profile

    @classmethod
    def named(cls, name_or_path: str, search: tuple[Path, ...] = ()) -> SolverProfile:
        """A profile by name (solvers/NAME.toml, looked up in `search` then the project's solvers/)
        or by path."""
        candidate = Path(name_or_path)
        if candidate.suffix == ".toml" or candidate.exists():
            return cls.from_file(candidate)
        for folder in (*search, PROFILE_DIR):
            path = folder / f"{name_or_path}.toml"
            if path.exists():
                return cls.from_file(path)
        available = sorted(p.stem for p in PROFILE_DIR.glob("*.toml")) if PROFILE_DIR.exists() else []
        raise TercapError(f"unknown solver profile '{name_or_path}' (available: {', '.join(available)})")

    def check(self, where: str) -> None:
        from tercap.backends import backend_names

        if self.backend not in backend_names():
            raise TercapError(f"{where}: backend must be one of {', '.join(backend_names())}, "
                              f"got '{self.backend}'")
        if self.strategy not in ("auto", "mip", "decompose", "greedy"):
            raise TercapError(f"{where}: strategy must be auto, mip, decompose or greedy, got '{self.strategy}'")
        if self.lns_rounds != "auto" and not (isinstance(self.lns_rounds, int) and self.lns_rounds >= 0):
            raise TercapError(f"{where}: lns_rounds must be \"auto\" or a whole number ≥ 0, got {self.lns_rounds!r}")
        if self.time_limit <= 0 or self.mip_gap < 0 or self.threads < 1:
            raise TercapError(f"{where}: time_limit must be > 0, mip_gap ≥ 0 and threads ≥ 1")
