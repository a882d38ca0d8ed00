"""The recipe reference (docs/recipe.md), generated from the Pydantic schema so that it cannot drift: every
section, every field with its type, default and description. ``python -m sigx.reference > docs/recipe.md``;
a test fails when a field has no description or the committed file differs from what this prints."""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel

from sigx.config import TASK_CONFIGS, AblationConfig, FieldFactor, Recipe, names_of, technique_order

HEADER = """# Recipe reference

Every field of a sigx recipe, generated from the schema in `sigx/config/` (`python -m sigx.reference >
docs/recipe.md`; a test keeps this file and the schema in step). A recipe is one YAML file; every section and
field is optional, unknown keys are errors, and any field can be overridden from the command line with
`--set section.field=value` (parsed as YAML).
"""


def _type(annotation) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    if text:
        return text
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type(a) for a in args if a is not type(None)) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"{origin.__name__} of {', '.join(dict.fromkeys(_type(a) for a in args if a is not Ellipsis))}"
    return str(annotation).replace("typing.", "")


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


def _nested(annotation) -> list[type[BaseModel]]:
    """The sections (models) a field's type holds, unions and lists unwrapped."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _nested(a)]


def section(model: type[BaseModel], title: str, lines: list[str], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    heading = f"`{title}`" if "(" not in title else "`{}` ({}".format(*title.split(" (", 1))
    lines += [f"## {heading}", "", " ".join((model.__doc__ or "").strip().split("\n\n")[0].split()), "",
              "| field | type | default | meaning |", "|---|---|---|---|"]
    children = []
    for name, field in model.model_fields.items():
        nested = [m for m in _nested(field.annotation) if m not in seen]
        kind = "section" if nested and name != "factors" or name == "task" else _type(field.annotation)
        if (names := names_of(field)) is not None:  # choices of a registry, checked when a recipe is read
            kind = " \\| ".join(f"`{n}`" for n in names)
        elif (model, name) == (AblationConfig, "factors"):
            kind = "list of " + " \\| ".join(f"`{n}`" for n in technique_order()) + " or FieldFactor"
        lines.append(f"| `{name}` | {kind} | {_default(field)} | {(field.description or '').replace('|', '/')} |")
        if name == "task":
            children += [(c, f"task (name: {n})") for n, c in TASK_CONFIGS.items()]
        elif name == "factors":
            children.append((FieldFactor, f"{title}.factors[]"))
        else:
            children += [(m, f"{title}.{name}" if title != "recipe" else name) for m in nested]
    lines.append("")
    for child, child_title in children:
        section(child, child_title, lines, seen)


def render() -> str:
    lines = [HEADER]
    section(Recipe, "recipe", lines, set())
    return "\n".join(lines).rstrip() + "\n"


def undocumented() -> list[str]:
    """Fields (and sections) without a description: the test allows none."""
    missing, seen = [], set()

    def walk(model, prefix):
        if model in seen:
            return
        seen.add(model)
        if not (model.__doc__ or "").strip():
            missing.append(f"{prefix or 'recipe'} (section docstring)")
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            for nested in _nested(field.annotation):
                walk(nested, f"{prefix}{name}.")

    walk(Recipe, "")
    for name, config in TASK_CONFIGS.items():
        walk(config, f"task({name}).")
    walk(FieldFactor, "ablation.factors[].")
    return missing


if __name__ == "__main__":
    print(render(), end="")
