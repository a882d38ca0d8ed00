"""The console sigx prints its messages on: a line of prose written to a log stays one line.

Why: rich wraps every printed string at the console's width, and a console that writes to a file or a pipe (a
run's log, `nohup sigx ablate ... > log`, CI) is 80 columns wide. A message that names a path or an error
("resuming <run dir> from its checkpoint at step N", "failed <cell>: <error>") was broken across lines there,
so `grep` missed it and tests that read the log had to join pieces (CI stop 41 failed when a tmp path grew
one character). Soft wrap prints a string whole and leaves the wrapping to whatever shows it.

Only strings get it: a table or a progress bar is laid out for the width (soft wrap would turn off the word
wrapping inside its cells), and a terminal keeps rich's word wrapping, which reads better there than the
terminal's own break in mid-word.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console


class LogConsole(Console):
    """A rich Console whose text messages are printed whole (soft wrap) when it does not write to a terminal.

    An explicit `soft_wrap=` on a call still wins."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and not self.is_terminal and objects and all(isinstance(o, str) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


def log_console(**kwargs: Any) -> LogConsole:
    """The console for sigx's messages: stderr (stdout is left to what a command returns), see LogConsole."""
    kwargs.setdefault("stderr", True)
    return LogConsole(**kwargs)
