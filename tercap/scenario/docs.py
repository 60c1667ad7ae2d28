"""The reference part of docs/scenario-format.md, generated from the schema.

`python -m tercap.scenario.docs docs/scenario-format.md` rewrites the text between the markers;
a test checks that the file is up to date with the schema.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tercap.scenario.schema import TABLE_ORDER, TABLE_SPECS, Settings

BEGIN = "<!-- BEGIN REFERENCE (generated from tercap/scenario/schema.py; do not edit by hand) -->"
END = "<!-- END REFERENCE -->"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # Strict() and other constraints: the type is the first argument
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or none" if type(None) in args else "")
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} → {_type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return annotation.__name__.lower()
        return {"str": "text", "float": "number", "int": "integer", "bool": "true/false",
                "date": "date"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "see below"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if value is None:
        return "none"
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return "; ".join(", ".join(f"{k}={v}" for k, v in item.model_dump().items()) for item in value)
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
        return "; ".join(f"{k}: " + ", ".join(f"{a}={b:g}" for a, b in v.model_dump().items())
                         for k, v in value.items())
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {list(v) if isinstance(v, tuple) else v}" for k, v in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value}" if value != "" else "empty"


def _model_rows(model: type[BaseModel], prefix: str, nested: list[tuple[str, type[BaseModel]]]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _section_model(field.annotation)
        if sub is not None:
            nested.append((key, sub))
        unit = (field.json_schema_extra or {}).get("unit", "") if isinstance(field.json_schema_extra,
                                                                              dict) else ""
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {unit} | {_default_text(field)} | "
                    f"{description} |")
    return rows


def _section_markdown(key: str, model: type[BaseModel]) -> list[str]:
    lines = [f"### `{key}`", "", (model.__doc__ or "").strip(), "",
             "| key | type | unit | default | meaning |", "|---|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    lines += _model_rows(model, f"{key}.", nested)
    lines.append("")
    for sub_key, sub_model in nested:
        lines += _section_markdown(sub_key, sub_model)
    return lines


def reference_markdown() -> str:
    """The generated reference: every section key and every table column."""
    lines = ["## Reference", "", "### Top level", "",
             "| key | type | unit | default | meaning |", "|---|---|---|---|---|",
             "| `extends` | path | | none | Another scenario file this one overrides, section by section. |",
             "| `tables` | mapping of table → path | | | Table files, relative to the file that names "
             "them. |"]
    nested: list[tuple[str, type[BaseModel]]] = []
    lines += _model_rows(Settings, "", nested)
    lines.append("")
    for key, model in nested:
        lines += _section_markdown(key, model)
    lines += ["## Tables", ""]
    for name in TABLE_ORDER:
        spec = TABLE_SPECS[name]
        need = "required" if spec.required else "optional"
        lines += [f"### `{name}` ({need})", "", spec.description, "",
                  "| column | type | unit | must be present | empty cell means | rules | meaning |",
                  "|---|---|---|---|---|---|---|"]
        for col in spec.columns:
            rules = []
            if col.unique:
                rules.append("unique")
            if not col.nullable:
                rules.append("not empty")
            if col.minimum is not None:
                rules.append(f"≥ {col.minimum:g}")
            if col.maximum is not None:
                rules.append(f"≤ {col.maximum:g}")
            if col.choices:
                rules.append("one of " + ", ".join(f"`{c}`" for c in col.choices))
            if col.references:
                rules.append(f"a `{col.references[1]}` of `{col.references[0]}`")
            empty = "—" if not col.nullable else (col.default or "no value")
            lines.append(f"| `{col.name}` | {col.kind.value} | {col.unit} | "
                         f"{'yes' if col.required else 'no'} | {empty} | {'; '.join(rules)} | "
                         f"{col.description} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(document: str) -> str:
    """`document` with the text between the markers replaced by the current reference."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference_markdown()}\n{END}{tail}"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/scenario-format.md")
    target.write_text(render(target.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {target}")
