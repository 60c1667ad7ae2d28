"""Problems found in user input, and the error that carries them to the user."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad a problem is."""

    ERROR = "error"  #: the scenario cannot be used
    WARNING = "warning"  #: legal but suspicious; the scenario is used as it is


@dataclass(frozen=True)
class Problem:
    """One problem in a scenario, located as precisely as the input allows.

    `row` counts as a spreadsheet user counts: the header is row 1, the first data row is row 2.
    For YAML files `line` is the line of the offending key and `key` its dotted path.
    A summary line that stands for further problems of the same rule (listed once, not one by one)
    has `omitted` set to how many it stands for.
    """

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    line: int | None = None
    key: str | None = None
    severity: Severity = Severity.ERROR
    omitted: int = 0

    @property
    def count(self) -> int:
        """How many problems this line stands for: 1, or `omitted` for a summary line."""
        return self.omitted or 1

    def location(self) -> str:
        """Where the problem is, e.g. `reps.csv, row 7, column capacity_hours`."""
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.key:
            parts.append(f"key {self.key}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


class TercapError(Exception):
    """Base of the errors tercap raises on purpose; the CLI shows them without a traceback."""


def count_problems(problems: Iterable[Problem]) -> int:
    """How many problems `problems` stand for: summary lines count for the problems they summarise."""
    return sum(p.count for p in problems)


class ScenarioError(TercapError):
    """A scenario could not be loaded; `problems` lists every error found (warnings too).

    `errors` and `warnings` are the lines to show (a rule that failed on many rows is listed for its
    first rows, then summarised in one line); `error_count` and `warning_count` are how many problems
    there are in all.
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        self.errors = tuple(p for p in self.problems if p.severity is Severity.ERROR)
        self.warnings = tuple(p for p in self.problems if p.severity is Severity.WARNING)
        self.error_count = count_problems(self.errors)
        self.warning_count = count_problems(self.warnings)
        super().__init__(self.render())

    def render(self, limit: int = 50) -> str:
        """The errors, one a line, capped at `limit` lines."""
        lines = [f"{self.error_count} error(s) in the scenario:"]
        lines += [f"  - {p}" for p in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"  … and {count_problems(self.errors[limit:])} more")
        return "\n".join(lines)


class ProblemLog:
    """Collects problems, keeping each repeated problem readable.

    The same rule failing on many rows of one column is listed for the first `per_rule` rows and
    summarised after that, so a bad column of 100,000 rows gives a readable list.
    """

    def __init__(self, per_rule: int = 10) -> None:
        self.per_rule = per_rule
        self._problems: list[Problem] = []
        self._counts: Counter[tuple[str, str | None, str, Severity]] = Counter()

    def add(self, problem: Problem, rule: str = "") -> None:
        """Record `problem`; `rule` groups repeats of the same check (default: the message)."""
        group = (problem.file, problem.column, rule or problem.message, problem.severity)
        self._counts[group] += 1
        if self._counts[group] <= self.per_rule:
            self._problems.append(problem)

    def error(self, file: str, message: str, *, rule: str = "", **where: object) -> None:
        self.add(Problem(file, message, **where), rule)  # type: ignore[arg-type]

    def warning(self, file: str, message: str, *, rule: str = "", **where: object) -> None:
        self.add(Problem(file, message, severity=Severity.WARNING, **where), rule)  # type: ignore[arg-type]

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Every problem, with a summary line for each rule that repeated past `per_rule`."""
        extra = [
            Problem(file, f"… and {count - self.per_rule} more row(s) with the same problem",
                    column=column, severity=severity, omitted=count - self.per_rule)
            for (file, column, _rule, severity), count in self._counts.items()
            if count > self.per_rule
        ]
        return (*self._problems, *extra)

    @property
    def has_errors(self) -> bool:
        return any(p.severity is Severity.ERROR for p in self._problems)

    @property
    def error_count(self) -> int:
        """Every error recorded, including those only summarised."""
        return sum(n for (_f, _c, _r, severity), n in self._counts.items() if severity is Severity.ERROR)

    def raise_if_errors(self) -> None:
        """Raise `ScenarioError` with everything collected when any error was found."""
        if self.has_errors:
            raise ScenarioError(self.problems)
