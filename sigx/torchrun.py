"""torchrun for ``sigx train --nproc N``, ending in one line instead of torchrun's traceback.

Why: when one process of a run fails, torchrun (``torch.distributed.run``) stops the others and raises
``ChildFailedError``, whose 60-line traceback and failure table bury the process's own one-line error. This
module runs the same launcher (``torch.distributed.run.run``, same arguments) and turns that exception into the
failing process and how it ended; the error the process printed itself stays above it. A launch that cannot
start (its port taken, the rendezvous unreachable) is one line too. Exit status: 0, 1 (a process of the run
stopped), 2 (torchrun's own arguments, from its parser) or 3 (no process could start), so the launcher's last line
can say which."""

from __future__ import annotations

import sys

#: exit status of a launch whose processes never started (1: one of them stopped; 2: argparse's own)
COULD_NOT_START = 3


def how_it_ended(exitcode: int, signal_name: str) -> str:
    """``exit status 1``, or ``killed by SIGABRT`` for a process a signal ended (a negative exit code)."""
    return f"killed by {signal_name}" if exitcode < 0 else f"exit status {exitcode}"


def main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(argv))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        print(f"error: process {rank} of the run stopped first ({how_it_ended(failure.exitcode, failure.signal_name())})",
              file=sys.stderr)
        return 1
    except Exception as err:  # before any process ran: the rendezvous (a port in use, an unreachable node 0)
        print(f"error: torchrun could not start the run's processes: {type(err).__name__}: "
              f"{' '.join(str(err).split())[:400]}", file=sys.stderr)
        return COULD_NOT_START
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
