"""What a result was made with: sigx's commit, the libraries' versions, the threads, and the instruction set
torch's kernels run on. Written into every run's summary and every ablation session, and read back by the
report, so that a store filled in several batches (a fold-over, added seeds, another machine) says which runs
came from which code and which kind of machine: the same code and seed give other numbers on a CPU whose kernels
differ (AVX-512 against AVX2), and a GPU's. No machine path or host name goes in: a report is shared."""

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
        record.update(machine_kind())
    return record


def machine_kind() -> dict:
    """What kind of machine the numbers were made on, as far as it changes them: the CPU instruction set torch's
    kernels dispatch to (``AVX512``, ``AVX2``, ...) and, where one is used, the GPU's name."""
    import torch

    kind = {"cpu": torch.backends.cpu.get_cpu_capability()}
    if torch.cuda.is_available():
        kind["gpu"] = torch.cuda.get_device_name()
    return kind


def batch_key(record: dict | None) -> str:
    """One label per batch of runs made with the same code, libraries and kind of machine (not the thread count:
    it does not change a number on the CPU path beyond float reassociation, which the report would show as noise).
    Records made before sigx wrote the machine's kind have no machine part."""
    if not isinstance(record, dict):
        return "not recorded"
    libraries = record.get("libraries") if isinstance(record.get("libraries"), dict) else {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if k in ("torch", "transformers") and v)
    machine = "; ".join(f"{k} {record[k]}" for k in ("cpu", "gpu") if isinstance(record.get(k), str) and record[k])
    details = "; ".join(part for part in (versions, machine) if part)
    return f"commit {record.get('commit') or 'unknown'}" + (f" ({details})" if details else "")
