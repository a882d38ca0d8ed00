"""What this machine has free for a run, read where the run starts (the memory plan's warning, the tiny model's
build check): a module of its own so that both can read it without importing each other."""

from __future__ import annotations

from pathlib import Path


def available_memory() -> int | None:
    """Bytes of memory this machine can give without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
