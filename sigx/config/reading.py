"""A recipe file read into plain data, safely: UTF-8 only, no repeated key, no alias bomb, no YAML type
beyond text, numbers, booleans, null, lists and mappings; every problem one line naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sigx.config.base import RecipeError


#: a recipe whose YAML aliases would expand to more values than this is refused before it is expanded
MAX_RECIPE_VALUES = 100_000


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: a key repeated in one mapping is an error (PyYAML keeps the last one
    silently), and so is a document whose aliases expand past MAX_RECIPE_VALUES (a few hundred bytes of nested
    aliases can expand to gigabytes: the recipe is copied as plain data)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many values ``node`` stands for once every alias is expanded (aliases share node objects)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_RECIPE_VALUES + 1  # a cycle counts as too large
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_RECIPE_VALUES + 1)
    return memo[id(node)]


def not_plain(data: Any, where: str = "") -> str | None:
    """What in a recipe's data YAML made of something other than text, numbers, booleans, null, lists and
    mappings (a ``!!binary``, ``!!set`` or timestamp value), with its field path; None when it is all plain."""
    if isinstance(data, dict):
        for key, value in data.items():
            found = not_plain(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = not_plain(value, f"{where}.{i}")
            if found:
                return found
    elif data is not None and not isinstance(data, (str, int, float, bool)):
        kind = {bytes: "a !!binary value", set: "a !!set value"}.get(type(data), f"a {type(data).__name__} value "
                                                                                 "(quote it to use it as text)")
        return f"{where or '(recipe)'}: {kind}; a recipe holds text, numbers, booleans, lists and mappings"
    return None


def read_recipe_file(path: Path) -> Any:
    """The YAML data of a recipe file, or a one-line RecipeError naming the file (and line) and the problem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError([f"{path}: not UTF-8 text (byte {err.start}); save the recipe as UTF-8"]) from None
    except OSError as err:
        raise RecipeError([f"{path}: cannot read the recipe ({err.strerror})"]) from None
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in text.splitlines()):
        raise RecipeError([f"{path}: empty recipe; write at least the sections you change (see recipes/tiny.yaml)"])
    try:
        loader = RecipeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}) > MAX_RECIPE_VALUES:
                raise RecipeError([f"{path}: the recipe's YAML aliases expand to more than {MAX_RECIPE_VALUES} "
                                   "values; write it out without nested aliases"])
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        problem = not_plain(data)
        if problem:
            raise RecipeError([f"{path}: {problem}"])
        return data
    except RecursionError:
        raise RecipeError([f"{path}: the recipe's YAML is nested too deep to read; a recipe is a few levels of "
                           "sections"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        position = getattr(err, "position", None)  # a reader error (a character YAML forbids) has no mark
        where = (f": line {mark.line + 1}, column {mark.column + 1}" if mark
                 else f": character {position + 1}" if isinstance(position, int) else "")
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError([f"{path}{where}: invalid YAML: {problem}"]) from None
