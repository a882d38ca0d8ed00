"""The launcher interface and registry (see :mod:`sigx.ablation.launchers`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

from rich.console import Console

from sigx.ablation.cell import run_cell
from sigx.ablation.plan import Cell
from sigx.ablation.store import AblationStore
from sigx.config import AblationConfig, register_executor
from sigx.console import log_console


@dataclass(frozen=True)
class Event:
    """What a launcher reports: ``started`` / ``stepped`` (cell id, step, stats line) / ``finished`` (result) /
    ``lost`` (cell id, why: it stays pending and the next invocation runs it)."""

    kind: str
    cell_id: str
    step: int = 0
    stats: str = ""
    result: dict | None = None
    why: str = ""


Report = Callable[[Event], None]


class Launcher(ABC):
    name: ClassVar[str] = ""

    def __init__(self, config: AblationConfig, store: AblationStore, group: str, console: Console):
        self.config = config
        self.store = store
        self.group = group
        self.console = console

    @abstractmethod
    def launch(self, cells: list[Cell], report: Report) -> list[dict]:
        """Run ``cells`` (all pending), reporting events as they happen; the results of those that finished."""

    def where(self) -> str:
        """Where the cells run, for one line of the plan."""
        return self.name


LAUNCHERS: dict[str, type[Launcher]] = {}


def register_launcher(cls: type[Launcher]) -> type[Launcher]:
    """Class decorator: make ``cls`` the launcher of ``ablation.executor: <cls.name>`` (the recipe accepts the
    name from then on)."""
    if cls.name in LAUNCHERS:
        raise ValueError(f"launcher {cls.name!r} is registered twice")
    register_executor(cls.name)
    LAUNCHERS[cls.name] = cls
    return cls


def launcher_for(config: AblationConfig, store: AblationStore, group: str, console: Console) -> Launcher:
    if config.executor not in LAUNCHERS:
        raise ValueError(f"unknown executor {config.executor!r}; allowed: {', '.join(LAUNCHERS)}")
    return LAUNCHERS[config.executor](config, store, group, console)


def die_with_parent() -> None:
    """Linux: have the kernel kill this process the moment its parent (the ``sigx ablate`` that started it) dies,
    even by ``kill -9``, so no orphan keeps training a cell that the resumed ablation runs again (nor finishes it
    in the meantime and drops the checkpoint the resumed run would have started from)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the store's atomic publish still keeps a cell from being recorded twice


def run_cell_remotely(store_root: str, recipe_data: dict, cell_id: str, group: str, threads: int,
                      **across_nodes) -> dict:
    """A cell in a process a launcher started elsewhere (a Ray worker, a Slurm job): ``threads`` CPU threads, no
    display of its own (the launcher's events drive the one display); ``across_nodes``: run_cell's ``nodes``
    and ``tell_staging``."""
    import torch

    torch.set_num_threads(threads)
    return run_cell(store_root, recipe_data, cell_id, group, console=log_console(quiet=True),
                    **across_nodes)


def payload(cell: Cell) -> dict:
    """A cell's resolved recipe as plain data: what crosses a process or machine boundary."""
    return cell.recipe.model_dump(mode="json")

