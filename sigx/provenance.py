"""What a result was made with: sigx's commit, the libraries' versions, the threads, and the instruction set
torch's kernels run on. Written into every run's summary and every ablation session, and read back by the
report, so that a store filled in several batches (a fold-over, added seeds, another machine) says which runs
came from which code and which kind of machine: the same code and seed give other numbers on a CPU whose kernels
differ (AVX-512 against AVX2), and a GPU's. No machine path or host name goes in: a report is shared."""

from __future__ import annotations

import os
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
    kernels dispatch to (``AVX512``, ``AVX2``, ...), the settings that chose it where any did (``cpu_settings``),
    and, where one is used, the GPU's name."""
    import torch

    kind = {"cpu": torch.backends.cpu.get_cpu_capability()}
    settings = " ".join(f"{key}={os.environ[key]}" for key in AVX2_KERNELS if os.environ.get(key))
    if settings:  # kernels chosen by the environment, not the CPU (an AVX-512 CPU running AVX2's): said, not hidden
        kind["cpu_settings"] = settings
    if torch.cuda.is_available():
        kind["gpu"] = torch.cuda.get_device_name()
    return kind


#: What makes torch on a CPU with AVX-512 run the kernels of a CPU with AVX2 alone: ATen's dispatch, MKL's and
#: oneDNN's, each read when its library loads (so set before sigx starts). Measured on 2026-12-02: an AMD EPYC
#: (Zen 4) with these set built sigx/tiny warm starts bit for bit as an AVX2-only AMD EPYC had, and repeated a whole
#: 200-step run of it to the last digit (results/search-stress/README.md). No setting gives an AVX2 CPU AVX-512.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def another_build(subject: str, base_path, theirs: str, mine: str, their_cpu: str | None, usual: str) -> str:
    """The one line that refuses to go on from a build of a sigx/tiny warm start other than ``subject``'s.

    Why one helper: a store's cells and a run's checkpoint are refused for the same reason (a build's floating point
    depends on the CPU's kernels), and the way out depends on the two machines' kernels: a CPU with AVX-512 can run
    an AVX2 machine's (``AVX2_KERNELS``), an AVX2 one cannot run AVX-512's, and a process capped by
    ATEN_CPU_CAPABILITY runs other kernels than its CPU has. ``usual`` is the way out in the caller's terms."""
    name = Path(str(base_path)).name
    here = machine_kind()["cpu"]
    ways = []
    if their_cpu == "AVX2" and here.startswith("AVX512"):
        ways.append("run it here with " + " ".join(f"{key}={value}" for key, value in AVX2_KERNELS.items()) +
                    " (this CPU then runs an AVX2 machine's kernels)")
    elif their_cpu and their_cpu != here and os.environ.get("ATEN_CPU_CAPABILITY"):
        ways.append(f"unset ATEN_CPU_CAPABILITY (it caps this process's kernels at {here})")
    ways += [usual, f"put that build in $SIGX_CACHE/tiny/{name}"]
    kernels = f"{their_cpu} there, {here} here" if their_cpu else f"{here} here"
    return (f"{subject} started from the warm start {name} with weights {theirs}, and this machine built it with "
            f"weights {mine} (a build's floating point depends on the machine's CPU kernels: {kernels}): "
            + "; or ".join(ways))


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
