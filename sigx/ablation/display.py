"""What ``sigx ablate`` shows: the plan as a table, then live progress (all cells, plus one bar per running cell)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sigx.ablation.plan import Cell
from sigx.ablation.store import AblationStore
from sigx.runs import cell_status

STATUS_STYLE = {"done": "green", "failed": "red", "pending": "yellow", "in archive": "cyan"}


def plan_table(title: str, cells: list[Cell], store: AblationStore, archived: frozenset[str] = frozenset(),
               numbers: bool = True) -> Table:
    """One row per cell with its status; ``archived`` names the pending cells that ``--restore-from`` will restore
    (shown "in archive", without their numbers, so a new machine's table says what will run). ``numbers``: a done
    cell's held-out reward beside its status; off when written to a log file, which (like the per-cell lines) keeps
    to counts, so the logs of an experiment resumed over sittings do not show its results before the report."""
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("cell")
    table.add_column("factors on")
    table.add_column("seed", justify="right")
    table.add_column("status")
    for i, cell in enumerate(cells, 1):
        summary = store.summary(cell.id)
        status = cell_status(summary)
        if status == "pending" and cell.id in archived:
            status = "in archive"
        summary = summary or {}
        note = ""
        if numbers and status == "done" and summary.get("final_reward") is not None:
            note = f" (held-out {summary['final_reward']:.3f})"
        elif status == "failed":
            note = f" ({summary.get('error', '?')})"
        table.add_row(str(i), cell.id, ", ".join(cell.factors_on) or "none (baseline)", str(cell.seed),
                      f"[{STATUS_STYLE[status]}]{status}[/]{note}")
    return table


class AblationProgress:
    """A rich progress display: an overall bar over all cells and a transient bar per running cell. Written to a
    file (``nohup sigx ablate ... > log``), where no bar is drawn, it logs one timestamped line per finished cell
    instead: which cell, how many are done, its wall time (its numbers are for the report, not the log)."""

    def __init__(self, console: Console, total: int, already_done: int, steps_per_cell: int):
        self.steps = steps_per_cell
        self.total, self.done = total, already_done
        self.log_lines = not console.is_terminal
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console)
        self.overall = self.progress.add_task("cells", total=total, completed=already_done, stats="")
        self.failed = 0
        self.bars: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def started(self, cell_id: str) -> None:
        if cell_id not in self.bars:
            self.bars[cell_id] = self.progress.add_task(f"  {cell_id}", total=self.steps, stats="")

    def stepped(self, cell_id: str, step: int, stats: str) -> None:
        self.started(cell_id)
        self.progress.update(self.bars[cell_id], completed=step, stats=stats)

    def _stamp(self) -> str:
        """In a log file, the time in UTC (logs of sittings on several machines line up), else nothing."""
        return time.strftime("%Y-%m-%d %H:%M:%S UTC ", time.gmtime()) if self.log_lines else ""

    def on_event(self, event) -> None:
        """A launcher's event (:class:`sigx.ablation.launchers.Event`) on the display."""
        if event.kind == "started":
            self.started(event.cell_id)
        elif event.kind == "stepped":
            self.stepped(event.cell_id, event.step, event.stats)
        elif event.kind == "finished":
            self.finished(event.result)
        elif event.kind == "lost":
            bar = self.bars.pop(event.cell_id, None)
            if bar is not None:
                self.progress.remove_task(bar)
            self.progress.console.print(f"[red]{event.cell_id}: lost ({event.why}); it stays pending: run the "
                                        "same command to resume it[/red]", highlight=False, soft_wrap=True)

    def finished(self, result: dict) -> None:
        bar = self.bars.pop(result["cell"], None)
        if bar is not None:
            self.progress.remove_task(bar)
        self.done += 1
        if result["status"] == "failed":
            self.failed += 1
            self.progress.console.print(f"{self._stamp()}[red]failed[/red] {result['cell']}: {result['error']}",
                                        highlight=False, soft_wrap=True)
        elif self.log_lines:
            failed = f", {self.failed} of them failed" if self.failed else ""
            self.progress.console.print(f"{self._stamp()}finished {result['cell']} ({self.done}/{self.total} cells "
                                        f"finished{failed}; {result.get('wall_s', 0):.0f} s)",
                                        highlight=False, soft_wrap=True)
        self.progress.update(self.overall, advance=1,
                             stats=f"[red]{self.failed} failed[/red]" if self.failed else "")
