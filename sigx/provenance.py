"""What a result was made with: sigx's commit, the libraries' versions, the threads. Written into every run's
summary and every ablation session, and read back by the report, so that a store filled in several batches
(a fold-over, added seeds, another machine) says which runs came from which code. No machine path or host name
goes in: a report is shared."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

#: the libraries whose version can change a number
LIBRARIES = ("torch", "transformers", "numpy", "tokenizers", "scipy", "statsmodels", "pandas")


@lru_cache(maxsize=1)
def sigx_commit() -> str | None:
    """The commit of the sigx source tree in use (with ``+dirty`` for uncommitted changes), or None outside a git
    checkout (an installed wheel)."""
    source = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0 or not (source / ".git").exists():
            return None
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--",
                                "sigx"], capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(threads: bool = True) -> dict:
    """sigx's version and commit, python's and the libraries' versions, and (for a run) torch's thread count."""
    record = {"sigx": _version("sigx"), "commit": sigx_commit(), "python": platform.python_version(),
              "libraries": {name: _version(name) for name in LIBRARIES}}
    if threads:
        import torch

        record["threads"] = torch.get_num_threads()
    return record


def batch_key(record: dict | None) -> str:
    """One label per batch of runs made with the same code and libraries (not the thread count: it does not
    change a number on the CPU path beyond float reassociation, which the report would show as noise)."""
    if not isinstance(record, dict):
        return "not recorded"
    libraries = record.get("libraries") if isinstance(record.get("libraries"), dict) else {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if k in ("torch", "transformers") and v)
    return f"commit {record.get('commit') or 'unknown'} ({versions})" if versions else \
        f"commit {record.get('commit') or 'unknown'}"
