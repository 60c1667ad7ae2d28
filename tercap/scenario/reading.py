"""Reading scenario YAML files: safe loading with line numbers, `extends:` and section validation."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from tercap.errors import ProblemLog
from tercap.scenario.schema import EXTENDS_KEY, TABLE_SPECS, TABLES_KEY, Settings, deep_merge

__all__ = ["Origin", "RawScenario", "deep_merge", "display_name", "load_yaml", "read_raw", "report_settings_errors",
           "suggest", "validate_settings"]

KeyPath = tuple[str | int, ...]

# Aliases (`*name`) let a few lines of YAML stand for a huge document ("billion laughs"). A
# scenario file is small: an alias may repeat a part, but the whole must stay below this many values.
MAX_EXPANDED_VALUES = 100_000


@dataclass(frozen=True)
class Origin:
    """Where a value of the merged scenario was written."""

    file: Path
    line: int


@dataclass(frozen=True)
class RawScenario:
    """A scenario file after `extends:` is resolved, before the sections are validated."""

    path: Path
    data: dict[str, Any]  # merged sections (tables and extends removed)
    table_paths: dict[str, Path]  # table name -> absolute path
    table_origins: dict[str, Origin]
    origins: dict[KeyPath, Origin]  # key path -> where it was written
    chain: tuple[Path, ...]  # the file, then what it extends, and so on


def display_name(path: Path, base: Path | None = None) -> str:
    """A short name for a file in messages: relative to `base` (or the working folder) when possible."""
    for root in (base, Path.cwd()):
        if root is None:
            continue
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


# -- the YAML loader -------------------------------------------------------------------------------


class _YamlProblem(yaml.YAMLError):
    """A problem found while building values from the YAML nodes, at a place in the file."""

    def __init__(self, message: str, mark: yaml.Mark | None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.key = key


class _Loader(yaml.SafeLoader):
    """The safe loader, stricter: duplicate keys and unreadable values are errors, not guesses."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. the date 2027-02-30
            what = "date" if node.tag == "tag:yaml.org,2002:timestamp" else "value"
            raise _YamlProblem(f"not a valid {what}: {node.value} ({exc})", node.start_mark) from exc


# YAML 1.1 reads `48e6` and `1.5e-3` as text; scenario authors mean numbers (YAML 1.2 does too).
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values the document stands for once aliases are expanded, distinct nodes); sizes above
    MAX_EXPANDED_VALUES are capped, and a document that contains itself counts as too large."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    too_large = MAX_EXPANDED_VALUES + 1

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:  # an alias inside its own anchor: endless
            return too_large
        open_nodes.add(key)
        total = 1
        for child in _children(node):
            total = min(total + size(child), too_large)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root), len(sizes)


def _node_lines(root: yaml.Node) -> dict[KeyPath, int]:
    """The line (1-based) of every key path, each node visited once (an alias is not walked again).

    Refuses what the safe loader would take silently or misreport: a key given twice in a mapping
    (the last would win) and a key that is a list or a mapping.
    """
    lines: dict[KeyPath, int] = {}
    visited: set[int] = set()

    def walk(node: yaml.Node, prefix: KeyPath) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys on purpose
                    walk(value_node, prefix)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _YamlProblem("a key must be a plain name, not a list or a mapping", key_node.start_mark)
                written = (key_node.tag, key_node.value)
                key = (*prefix, str(key_node.value))
                if written in seen:
                    raise _YamlProblem(f"the key '{key_node.value}' is given twice (first on line "
                                       f"{seen[written]}); keep one", key_node.start_mark, ".".join(map(str, key)))
                seen[written] = line
                lines.setdefault(key, line)
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                key = (*prefix, index)
                lines.setdefault(key, item.start_mark.line + 1)
                walk(item, key)

    walk(root, ())
    return lines


def _line_of_byte(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def load_yaml(path: Path, log: ProblemLog, *, referrer: tuple[str, int | None, str] | None = None
              ) -> tuple[dict[str, Any], dict[KeyPath, int]] | None:
    """Load one YAML mapping with the safe loader; return it and the line of each key path.

    `referrer` (file, line, key) names where the path was written, for a path that is no file.
    """
    name = display_name(path)
    if not path.is_file():
        folder = path.is_dir()
        if referrer is None:
            log.error(name, "this is a folder, not a scenario file" if folder else "file not found")
        else:
            file, line, key = referrer
            log.error(file, f"`{key}` names a folder, not a file: {name}" if folder else
                      f"`{key}` names a file that does not exist: {name}", line=line, key=key)
        return None
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        log.error(name, f"cannot read the file: {exc.strerror or exc}")
        return None
    try:
        text = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.error(name, f"the file is not UTF-8 text (byte 0x{data_bytes[exc.start]:02x}): save it as UTF-8",
                  line=_line_of_byte(data_bytes, exc.start))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            expanded, distinct = _expanded_size(node)
            if expanded > MAX_EXPANDED_VALUES and expanded > distinct:
                log.error(name, f"YAML aliases expand too far (more than {MAX_EXPANDED_VALUES:,} values): "
                          "a scenario file repeats a part with an alias at most a few times")
                return None
        lines = _node_lines(node) if node is not None else {}
        data = loader.construct_document(node) if node is not None else None
    except _YamlProblem as exc:
        log.error(name, exc.message, line=exc.mark.line + 1 if exc.mark else None, key=exc.key)
        return None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = exc.problem or "an unknown tag"
        if "could not determine a constructor" in problem:
            log.error(name, f"refused YAML tag ({problem}): scenario files hold data only, never code "
                      "or Python objects", line=line)
        else:
            log.error(name, f"not valid YAML: {problem}", line=line)
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        log.error(name, f"not valid YAML: {problem}", line=mark.line + 1 if mark else None)
        return None
    except RecursionError:
        log.error(name, "not valid YAML: the values are nested too deeply")
        return None
    finally:
        loader.dispose()
    if data is None:
        log.error(name, "the file is empty")
        return None
    if not isinstance(data, dict):
        log.error(name, f"expected a mapping of sections at the top level, got {type(data).__name__}")
        return None
    return data, lines


def _drop_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """Remove keys set to null: `key: null` resets a key to its default (in a file that extends
    another: to the default, not to the base's value)."""
    return {k: _drop_nulls(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}


def read_raw(path: str | Path, log: ProblemLog) -> RawScenario | None:
    """Read a scenario file and everything it extends; errors go to `log`."""
    path = Path(path)
    chain: list[Path] = []
    layers: list[tuple[Path, dict[str, Any], dict[KeyPath, int]]] = []
    current: Path | None = path
    referrer: tuple[Path, int] | None = None
    while current is not None:
        resolved = current.resolve()
        if resolved in chain:
            cycle = " → ".join(display_name(p, base=chain[0].parent) for p in [*chain, resolved])
            log.error(display_name(chain[-1]), f"`extends` forms a cycle: {cycle}",
                      line=referrer[1] if referrer else None, key=EXTENDS_KEY)
            return None
        named_by = (display_name(referrer[0]), referrer[1], EXTENDS_KEY) if referrer else None
        loaded = load_yaml(resolved, log, referrer=named_by)
        if loaded is None:
            return None
        data, lines = loaded
        chain.append(resolved)
        layers.append((resolved, data, lines))
        parent = data.get(EXTENDS_KEY)
        if parent is None:
            current = None
        elif not isinstance(parent, str) or not parent.strip():
            log.error(display_name(resolved), "`extends` must be the path of another scenario file",
                      line=lines.get((EXTENDS_KEY,)), key=EXTENDS_KEY)
            return None
        else:
            current = resolved.parent / parent
            referrer = (resolved, lines.get((EXTENDS_KEY,), 0))

    merged: dict[str, Any] = {}
    origins: dict[KeyPath, Origin] = {}
    table_paths: dict[str, Path] = {}
    table_origins: dict[str, Origin] = {}
    for file, data, lines in reversed(layers):  # base first, the named file last
        name = display_name(file)
        tables = data.get(TABLES_KEY, {})
        if tables is None:
            tables = {}
        if not isinstance(tables, dict):
            log.error(name, "`tables` must map table names to file paths",
                      line=lines.get((TABLES_KEY,)), key=TABLES_KEY)
            tables = {}
        for table, rel in tables.items():
            line = lines.get((TABLES_KEY, str(table)), 0)
            if table not in TABLE_SPECS:
                log.error(name, f"unknown table '{table}' (known: {', '.join(TABLE_SPECS)})"
                          f"{suggest(str(table), list(TABLE_SPECS))}", line=line, key=f"{TABLES_KEY}.{table}")
            elif rel is None:
                table_paths.pop(table, None)  # `reps: null` drops a table of the base
            elif not isinstance(rel, str) or not rel.strip():
                log.error(name, f"table '{table}' must be a file path", line=line,
                          key=f"{TABLES_KEY}.{table}")
            else:
                table_paths[table] = (file.parent / rel).resolve()
                table_origins[table] = Origin(file, line)
        sections = {k: v for k, v in data.items() if k not in (TABLES_KEY, EXTENDS_KEY)}
        merged = deep_merge(merged, sections)
        origins.update({key: Origin(file, line) for key, line in lines.items()})
    return RawScenario(path.resolve(), _drop_nulls(merged), table_paths, table_origins, origins,
                       tuple(chain))


# -- validation messages ---------------------------------------------------------------------------


def plain(value: Any) -> str:
    """A value as a user wrote it: text quoted, numbers, dates and flags plain (no numpy or repr noise)."""
    if not isinstance(value, str | bytes | dt.date) and hasattr(value, "item"):  # numpy scalars
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _pydantic_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    if not isinstance(value, Mapping | list | tuple | pydantic.BaseModel) and value is not None:
        message += f" (got {plain(value)})"
    return message


def suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' when an option is close to `word`."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _known_keys(loc: KeyPath) -> list[str]:
    """The keys a section accepts at `loc` (for did-you-mean suggestions)."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, pydantic.BaseModel)),
                     None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def report_settings_errors(exc: pydantic.ValidationError, log: ProblemLog,
                           locate: Callable[[KeyPath], tuple[str, int | None]]) -> None:
    """Log each error of a settings validation with its key, a plain message and a did-you-mean.

    `locate(key path)` says where the key was written: (file or 'replace()', line or None). The one
    translation of pydantic's errors, for files and for `Scenario.replace(...)` alike.
    """
    for error in exc.errors():
        loc: KeyPath = tuple(error["loc"])
        file, line = locate(loc)
        message = _pydantic_message(error)
        if error.get("type") == "extra_forbidden" and loc and isinstance(loc[-1], str):
            message += suggest(loc[-1], _known_keys(loc))
        key = ".".join(str(p) for p in loc) or None
        log.error(file, message, line=line, key=key)


def validate_settings(raw: RawScenario, log: ProblemLog) -> Settings | None:
    """Validate the merged sections against the schema; every error names its file, line and key."""

    def locate(loc: KeyPath) -> tuple[str, int | None]:
        for cut in range(len(loc), -1, -1):  # the deepest key that was written somewhere
            origin = raw.origins.get(loc[:cut])
            if origin is not None:
                return display_name(origin.file), origin.line
        return display_name(raw.path), None

    try:
        return Settings.model_validate(raw.data)
    except pydantic.ValidationError as exc:
        report_settings_errors(exc, log, locate)
        return None
