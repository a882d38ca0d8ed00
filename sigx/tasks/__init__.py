"""Task registry: a recipe's ``task.name`` picks the class that builds prompts, environments and rewards."""

from __future__ import annotations

from typing import Callable

from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Problem, Score, Segment, Task

TASKS: dict[str, Callable[..., Task]] = {"arithmetic": ArithmeticTask}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    TASKS[name] = factory


def build_task(config) -> Task:
    return TASKS[config.name](config)


def _register_builtins() -> None:
    from sigx.tasks.search import SearchTask

    register_task("search", SearchTask)


_register_builtins()

__all__ = ["Problem", "Score", "Segment", "Task", "TASKS", "build_task", "register_task"]
