"""A recipe validated: ``--set`` overrides applied, pydantic's errors turned into one line per problem
(the field's path and what is allowed), each field factor's levels checked to make valid recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sigx.config.ablation import MAX_LABEL, level_label
from sigx.config.base import FIELD_PROBLEM, RecipeError
from sigx.config.reading import not_plain, read_recipe_file
from sigx.config.recipe import FACTOR_SECTIONS, Recipe
from sigx.config.sections import ENGINE_FIELDS
from sigx.config.tasks import DEFAULT_TASK, TASK_CONFIGS
from sigx.config.techniques import TECHNIQUE_CONFIGS, TechniquesConfig


def _field_path(loc: tuple) -> str:
    # Drop the discriminator tags pydantic inserts for unions ("ablation.factors.2.field.levels" ->
    # "ablation.factors.2.levels").
    parts = [str(p) for p in loc]
    if parts[:2] == ["ablation", "factors"] and len(parts) >= 4 and parts[3] in ("technique", "field"):
        parts = parts[:3] + parts[4:]
    return ".".join(parts) or "(recipe)"


def _allowed_keys(loc: tuple, data: dict) -> list[str]:
    """Names a section accepts, to turn 'extra field' errors into 'allowed: ...' hints."""
    model: Any = Recipe
    node: Any = data
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part, {})
        if model is TechniquesConfig and part in TECHNIQUE_CONFIGS:  # a registered technique's section
            model = TECHNIQUE_CONFIGS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        if part == "task":
            name = node.get("name", DEFAULT_TASK) if isinstance(node, dict) else DEFAULT_TASK
            ann = TASK_CONFIGS.get(name, TASK_CONFIGS[DEFAULT_TASK])
        model = ann
    return list(getattr(model, "model_fields", {})) + (list(TECHNIQUE_CONFIGS) if model is TechniquesConfig else [])


def format_validation_error(err: ValidationError, data: dict, source: str) -> list[str]:
    lines = []
    for e in err.errors():
        path = _field_path(e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(e["loc"], data)
            msg = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif e["msg"].removeprefix("Value error, ").startswith(FIELD_PROBLEM):
            field, msg = e["msg"].removeprefix("Value error, ").removeprefix(FIELD_PROBLEM).split(": ", 1)
            path = f"{path}.{field}" if path != "(recipe)" else field
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], (dict, list)):
                shown = repr(e["input"])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                if shown not in msg:  # the message names the value already
                    msg += f" (got {shown})"
        lines.append(f"{source}: {path}: {msg}")
    return lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.lr=1e-4`` -> (["training", "lr"], 1e-4); the value is parsed as YAML so types come out right."""
    if "=" not in text:
        raise RecipeError([f"--set {text}: expected KEY=VALUE, e.g. training.lr=1e-4"])
    key, raw = text.split("=", 1)
    if not key or any(not p for p in key.split(".")):
        raise RecipeError([f"--set {text}: malformed key {key!r}; use dotted paths like training.lr"])
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _is_section(path: list[str]) -> bool:
    """Whether ``path`` names a recipe section (a model of fields), not a value."""
    model: Any = Recipe
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return False
        model = field.annotation
    return isinstance(model, type) and issubclass(model, BaseModel) or path == ["task"]


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError([f"--set {text}: {part} is a value, not a section"])
            node = child
        if isinstance(value, dict) and (isinstance(node.get(path[-1]), dict) or _is_section(path)):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise RecipeError([f"--set {shown}: would replace the whole section {'.'.join(path)}; set its fields one "
                               f"by one (--set {'.'.join(path)}.FIELD=VALUE)"])
        problem = not_plain(value, ".".join(path))
        if problem:
            raise RecipeError([f"--set {'.'.join(path)}: {problem.split(': ', 1)[1]}"])
        node[path[-1]] = value
    return data


def set_path(data: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def field_factor_problems(recipe: Recipe, source: str) -> list[str]:
    """Each field factor names a field a cell may vary, and both its levels make a valid recipe."""
    base = recipe.model_dump(mode="json")
    del base["ablation"]  # its defaults: a trial recipe must not check its own factors again
    problems = []
    for i, factor in enumerate(recipe.ablation.factors):
        if isinstance(factor, str):
            continue
        where = f"{source}: ablation.factors.{i} ({factor.field})"
        path = factor.field.split(".")
        if path[0] not in FACTOR_SECTIONS or (path[0] == "rollout" and path[-1] in ENGINE_FIELDS):
            problems.append(f"{where}: a factor may vary {', '.join(FACTOR_SECTIONS)} fields, except the rollout "
                            f"engine's ({', '.join(ENGINE_FIELDS)}): one shared engine serves every "
                            "cell; run separate ablations for another model, task or backend and compare "
                            "them with `sigx compare A B`")
            continue
        if path[0] == "techniques" and path[-1] == "enabled":
            problems.append(f"{where}: write the technique's name ({path[1]}) as the factor")
            continue
        label = level_label(factor.levels[1])
        if len(label.encode()) > MAX_LABEL:
            problems.append(f"{where}: the treatment level names the cells' directories and is {len(label.encode())} "
                            f"bytes written as a name; at most {MAX_LABEL} allowed")
            continue
        found = []
        for level in factor.levels:
            trial = json.loads(json.dumps(base))
            set_path(trial, path, level)
            try:
                Recipe.model_validate(trial)
                found.append([])
            except ValidationError as err:
                found.append([line.removeprefix("trial: ") for line in format_validation_error(err, trial, "trial")])
        if found[0] and found[0] == found[1]:  # the field itself is wrong, whatever the level
            problems += [f"{where}: {line}" for line in found[0]]
        else:
            problems += [f"{where}: level {level!r}: {line}" for level, lines in zip(factor.levels, found)
                         for line in lines]
    return problems


def recipe_from_data(data: Any, source: str = "recipe", overrides: list[str] | None = None) -> Recipe:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([f"{source}: the recipe must be a mapping of sections (model, task, training, ...)"])
    data = apply_overrides(data, overrides or [])
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(format_validation_error(err, data, source)) from None
    problems = field_factor_problems(recipe, source)
    if problems:
        raise RecipeError(problems)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if path.is_dir():
        raise RecipeError([f"{path}: is a directory; name a recipe file (e.g. recipes/tiny.yaml)"])
    if not path.is_file():
        raise RecipeError([f"{path}: no such recipe file"])
    return recipe_from_data(read_recipe_file(path), str(path), overrides)
