"""Task registry: a recipe's ``task.name`` picks the class that builds prompts, environments and rewards."""

from __future__ import annotations

from typing import Callable

from sigx.config import TASK_CONFIGS, register_task_config
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Problem, Score, Segment, Task

TASKS: dict[str, Callable[..., Task]] = {"arithmetic": ArithmeticTask}


def register_task(name: str, factory: Callable[..., Task], config: type | None = None) -> None:
    """Make ``task: {name: <name>, ...}`` build ``factory(section)``. ``config`` is the task's recipe section (a
    sigx.config.Strict subclass whose ``name`` field defaults to ``name``); the built-in tasks' sections are in
    sigx.config already. One call adds a task: nothing else in sigx needs to know it."""
    if config is not None:
        if config.model_fields.get("name") is None or config.model_fields["name"].default != name:
            raise ValueError(f"task {name!r}: its config's name field must default to {name!r}")
        register_task_config(config)
    elif name not in TASK_CONFIGS:
        raise ValueError(f"task {name!r} has no recipe section: pass config=<its sigx.config.Strict subclass>")
    TASKS[name] = factory


def build_task(config) -> Task:
    if config.name not in TASKS:
        raise ValueError(f"task {config.name!r} has a recipe section but no registered factory; registered: "
                         f"{', '.join(TASKS)}")
    return TASKS[config.name](config)


def _search_task(config) -> Task:
    """The search environment in the surface its model reads: compact (sigx/tiny) or natural (instruct)."""
    from sigx.tasks.search import SearchTask
    from sigx.tasks.search_natural import NaturalSearchTask

    return NaturalSearchTask(config) if config.interface == "natural" else SearchTask(config)


def _qa_task(config) -> Task:
    from sigx.tasks.qa import QASearchTask

    return QASearchTask(config)


def _register_builtins() -> None:
    from sigx.tasks.gsm8k import GSM8KTask

    register_task("search", _search_task)
    register_task("gsm8k", GSM8KTask)
    register_task("search_qa", _qa_task)


_register_builtins()

__all__ = ["Problem", "Score", "Segment", "Task", "TASKS", "build_task", "register_task"]
