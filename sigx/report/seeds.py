"""Analyse a subset of an ablation's seeds (``sigx report --seeds 0-11``, ``sigx compare --seeds-a/--seeds-b``).

Why: a plan may grow by blocks of seeds (``sigx ablate``'s seed rule adds 4 at a time) and a block may not be
finished when the analysis is due. Its finished runs are then a part of a block, chosen by the order they ran in:
in the report's seed-blocked model they would still move the effects, and a partial block is no replicate of the
whole design. The honest analysis uses whole blocks, named in advance; this module keeps those seeds' runs and
says, in the report's first line, which seeds were analysed, which were left out and how many of their runs had
finished, so nothing is dropped without a word. The tool cannot know whether the subset was declared before the
results were read: the line says it was chosen at report time, and a write-up says where it was declared.
"""

from __future__ import annotations

import dataclasses
import re

from sigx.report.load import Ablation, ReportError

_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
#: more seeds than any plan holds: a typo like 0-100000000 is a one-line error, not minutes of building a set
MAX_SEEDS = 100_000


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"0-11"``, ``"0,2,5-7"`` -> the sorted seeds. Anything else is a one-line ReportError naming the option."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        match = _PART.match(part)
        if not match:
            raise ReportError(f"{option}: {text!r} is not a list of seeds; allowed: whole numbers and ranges, "
                              "e.g. 0-11 or 0,2,5-7")
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if high < low:
            raise ReportError(f"{option}: the range {part.strip()!r} runs backwards; write it low-high, e.g. 0-11")
        if high - low + 1 + len(seeds) > MAX_SEEDS:
            raise ReportError(f"{option}: {text!r} names more than {MAX_SEEDS} seeds; name the plan's seeds, e.g. 0-11")
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def span(seeds) -> str:
    """Seeds as ranges: [0, 1, 2, 3, 8] -> '0-3, 8'."""
    out, seeds = [], sorted(set(int(s) for s in seeds))
    for s in seeds:
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in out)


def keep_seeds(ab: Ablation, seeds: list[int], option: str = "--seeds") -> Ablation:
    """The ablation restricted to ``seeds`` (every one must be in its plan), with a line saying what was left
    out in ``seed_subset``."""
    planned = sorted(set(int(s) for s in ab.runs.seed))
    absent = [s for s in seeds if s not in planned]
    if absent:
        raise ReportError(f"{option}: seed(s) {span(absent)} are not in {ab.name}'s plan (its seeds: "
                          f"{span(planned)})")
    kept = ab.runs.seed.isin(seeds)
    dropped = ab.runs[~kept]
    line = f"seeds {span(seeds)} of the plan's {span(planned)}, chosen at report time ({option})"
    if len(dropped):
        finished = int((dropped.status == "done").sum())
        line += (f": {len(dropped)} planned run(s) of seed(s) {span(dropped.seed)} left out of every table, "
                 f"{finished} of them finished")
    return dataclasses.replace(ab, runs=ab.runs[kept].reset_index(drop=True),
                               curves=ab.curves[ab.curves.seed.isin(seeds)].reset_index(drop=True),
                               seed_subset=line)
