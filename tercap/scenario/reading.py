"""Reading scenario YAML files: safe loading with line numbers, `extends:` and section validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from tercap.errors import ProblemLog
from tercap.scenario.schema import EXTENDS_KEY, TABLE_SPECS, TABLES_KEY, Settings

KeyPath = tuple[str | int, ...]


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


def _node_lines(node: yaml.Node, prefix: KeyPath, out: dict[KeyPath, int]) -> None:
    """Record the line of every key (1-based) under `node`."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _node_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, index)
            out[key] = item.start_mark.line + 1
            _node_lines(item, key, out)


def load_yaml(path: Path, log: ProblemLog) -> tuple[dict[str, Any], dict[KeyPath, int]] | None:
    """Load one YAML mapping with the safe loader; return it and the line of each key path."""
    name = display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.error(name, "file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.error(name, f"cannot read the file: {exc}")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        tag = exc.problem or "an unknown tag"
        log.error(name, f"refused YAML tag ({tag}): scenario files hold data only, never code "
                  "or Python objects", line=line)
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        log.error(name, f"not valid YAML: {problem}", line=mark.line + 1 if mark else None)
        return None
    if data is None:
        log.error(name, "the file is empty")
        return None
    if not isinstance(data, dict):
        log.error(name, f"expected a mapping of sections at the top level, got {type(data).__name__}")
        return None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    return data, lines


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings: the override wins key by key; lists and values are replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _drop_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """Remove keys set to null: `key: null` in a file that extends another resets it to its default."""
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
        if not resolved.exists() and referrer is not None:
            log.error(display_name(referrer[0]), f"`extends` names a file that does not exist: "
                      f"{display_name(resolved)}", line=referrer[1], key=EXTENDS_KEY)
            return None
        loaded = load_yaml(resolved, log)
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
                log.error(name, f"unknown table '{table}' (known: {', '.join(TABLE_SPECS)})",
                          line=line, key=f"{TABLES_KEY}.{table}")
            elif rel is None:
                table_paths.pop(table, None)  # `reps: null` drops a table of the base
            elif not isinstance(rel, str):
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


def _pydantic_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    if kind != "missing" and not isinstance(value, dict | list) and value is not None:
        message += f" (got {value!r})"
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


def validate_settings(raw: RawScenario, log: ProblemLog) -> Settings | None:
    """Validate the merged sections against the schema; every error names its file, line and key."""
    try:
        return Settings.model_validate(raw.data)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            loc: KeyPath = tuple(error["loc"])
            origin = None
            for cut in range(len(loc), -1, -1):  # the deepest key that was written somewhere
                origin = raw.origins.get(loc[:cut])
                if origin is not None:
                    break
            file = origin.file if origin else raw.path
            message = _pydantic_message(error)
            if error.get("type") == "extra_forbidden" and isinstance(loc[-1], str):
                message += suggest(loc[-1], _known_keys(loc))
            key = ".".join(str(p) for p in loc) or None
            log.error(display_name(file), message, line=origin.line if origin else None, key=key)
        return None
