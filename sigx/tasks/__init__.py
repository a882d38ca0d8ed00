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
