"""Every field of a recipe, set to each of a set of hostile values, is either a valid recipe or a RecipeError of one
line per problem, one of which names the field (or a section holding it): never another exception (a traceback
at the CLI). The recipes are whole default ones of each task, so every field a recipe may hold is reached; the
values are of every wrong kind (text for a number, a list for a mapping, a boolean, NaN, beyond 64 bits, empty).
Runs in a few seconds: the recipe is only read (`sigx validate` also plans memory, which builds a model: the
fuzz of 2026-12-01 ran it on these same cases by hand)."""

from __future__ import annotations

import copy

import pytest

from sigx.config import RecipeError, recipe_from_data

HOSTILE = ["x", None, [], {}, -1, 0, 1e308, True, "NaN", float("nan"), [1, 2], {"a": 1}, 10**30, 0.5, "", "\0"]
TASKS = {
    "arithmetic": {"name": "arithmetic"},
    "search": {"name": "search"},
    "gsm8k": {"name": "gsm8k", "path": "data/gsm8k"},
    "search_qa": {"name": "search_qa", "train": [{"path": "train.jsonl"}],
                  "eval": [{"hub": "org/sets", "subset": "nq", "split": "test", "limit": 5, "name": "nq"}],
                  "retriever": {"kind": "http", "url": "http://127.0.0.1:8000/retrieve"}},
}


def leaves(data, path=()):
    """Every path into ``data``: mappings' keys and lists' indices, the containers themselves included."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaves(value, path + (index,))
    if path:
        yield path


def with_value(data, path, value):
    changed = copy.deepcopy(data)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def field_name(path) -> str:
    return ".".join(str(part) for part in path)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_field_set_to_any_hostile_value_is_a_recipe_or_one_line_per_problem(task):
    full = recipe_from_data({"task": TASKS[task], "techniques": {"search_p1": {"judge": "llm"}},
                             "ablation": {"factors": ["sspo", {"rollout.staleness": [0, 4]}]}}).model_dump(mode="json")
    cases = refused = 0
    for path in leaves(full):
        for value in HOSTILE:
            cases += 1
            try:
                recipe_from_data(with_value(full, path, value))
            except RecipeError as err:
                refused += 1
                assert err.problems, (path, value)
                for line in err.problems:
                    assert "\n" not in line and len(line) < 600, (path, value, line)
                    assert line.startswith("recipe: "), (path, value, line)  # the source, then the field
                named = [f"recipe: {field_name(path[:k])}{end}" for k in range(len(path), 0, -1) for end in ":."]
                assert any(line.startswith(tuple(named)) for line in err.problems), (path, value, err.problems)
    assert cases > 1000 and refused > cases // 2, (cases, refused)  # most hostile values are wrong somewhere
