"""Read an ablation run store (``sigx ablate``'s output) into tables. The store is the source of truth, not W&B.

One row per planned run (cell x seed), whatever its state: ``status`` is ``done``, ``failed`` or ``missing``
(planned, never finished), so an incomplete matrix is visible downstream instead of silently averaged away.
Each factor is a 0/1 column (reference / treatment level). Stores written before field factors existed (their
plan lists technique names only) read as technique factors.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sigx.ablation.looks import look_alpha
from sigx.ablation.store import StoreError
from sigx.provenance import batch_key
from sigx.report.metrics import METRICS
from sigx.runs import (WRITTEN_INFINITY, UnreadableRecipe, cell_status, read_json, read_jsonl_lines,
                       read_stored_recipe)

#: Each mechanism's "room" in a run is declared by the engine and by each technique (sigx.engine.metrics.Room)
#: and written by the run into its summary.json (``room``: column -> value and what it says), so the report
#: spells no technique's measure. Runs written before 2026-11-30 carry none: their room is read off their
#: metrics.jsonl with the measures as they were then, below (column: metrics key, how summarised, what).
LEGACY_ROOM = {
    "turns": ("turns", "mean", "model turns per response, mean over steps (SORL's turn ratio differs from the "
              "sequence's only with 2 or more)"),
    "clip_fraction": ("clip_fraction", "mean", "tokens (or turns) whose ratio the clip cut, mean over steps"),
    "log_ratio_abs": ("log_ratio_abs", "mean", "|log pi/pi_behaviour| over trained tokens: how off-policy"),
    "zero_variance_groups": ("zero_variance_groups", "mean", "share of groups whose rewards all tie (no signal)"),
    "critique_accuracy_start": ("gcrl/critique_accuracy", "first", "GC-RL critique accuracy at the first step"),
    "failed_with_signal": ("search_p1/failed_with_signal", "mean", "share of failed trajectories Search-P1 "
                           "gives a reward > 0"),
}


#: the runs table's columns of text; every other column holds numbers (or nothing)
TEXT_COLUMNS = {"cell", "combination", "status", "batch", "warm_start", "base_weights", "error"}
#: the runs table's own columns (its text ones and three numbers about the run, not its outcome): a summary key of
#: the same name is not read as a metric
RESERVED = TEXT_COLUMNS | {"seed", "threads", "tokens_per_s"}


def _warm_start(summary: dict) -> tuple[str | None, str | None]:
    """The base model a run started from: its name (a sigx/tiny cache key), and which build of it (its weights'
    digest, where the run recorded one: a build differs between machines)."""
    if not isinstance(summary.get("base"), str):
        return None, None
    digest = summary.get("base_weights")
    return Path(summary["base"]).name, digest if isinstance(digest, str) and digest else None


def full_design(**stored) -> dict:
    """A store's design as the report reads it: a full factorial unless the plan (or archive) says otherwise."""
    return {"fraction": 0, "resolution": None, "words": [], "description": [], "aliases": [], **stored}


def complete_runs(runs: pd.DataFrame, room: dict[str, str]) -> pd.DataFrame:
    """Every column the report reads, present (None where a run has no value), metrics and room as floats."""
    for column in ["error", "batch", "threads", "warm_start", "base_weights", *METRICS, *room]:
        if column not in runs:
            runs[column] = None
    runs[list(METRICS) + list(room)] = runs[list(METRICS) + list(room)].astype(float)
    return runs


def numeric_metrics(runs: pd.DataFrame, factors: list[str], room: dict[str, str] | None = None) -> list[str]:
    """The columns of the runs table a report may analyse: the table's metrics and every numeric summary key (not
    the room measures, which describe a regime rather than an outcome)."""
    return [c for c in runs.columns if c not in RESERVED and c not in factors and c not in (room or {})
            and pd.api.types.is_numeric_dtype(runs[c])]


class ReportError(ValueError):
    """A directory that is not a readable ablation run store; one line for the CLI."""


@dataclass
class FactorInfo:
    name: str
    kind: str = "technique"  # technique | field
    role: str = "technique"  # technique | regime | control
    on_label: str = ""
    levels: tuple = (False, True)


@dataclass
class Ablation:
    name: str
    root: Path
    factors: list[str]
    runs: pd.DataFrame  # one row per planned run: cell, combination, seed, status, error, <factor> 0/1, metrics, room
    curves: pd.DataFrame  # long format: cell, combination, seed, step, reward (held-out)
    info: dict[str, FactorInfo] = field(default_factory=dict)
    design: dict = field(default_factory=full_design)
    #: the store's resolved recipe (its ``recipe.yaml``), as plain data; None when the store has none
    recipe: dict | None = None
    #: the level of every test (alpha / looks under a sequential plan) and the line that says why
    alpha: float = 0.05
    sequential: str | None = None
    #: what was found damaged while reading the store (one line each; the report lists them in its notes)
    damage: list[str] = field(default_factory=list)
    #: the room measures the runs carry (runs-table columns), each with what it says, in the runs' order
    room: dict[str, str] = field(default_factory=dict)
    #: with ``--seeds`` (sigx.report.seeds): the line saying which seeds were analysed and which left out
    seed_subset: str | None = None

    @property
    def seeds_analysed(self) -> list[int] | None:
        """The seeds of a report of part of its seeds (``seed_subset``); None when it analyses them all."""
        return sorted(int(s) for s in set(self.runs.seed)) if self.seed_subset else None

    @property
    def declared(self) -> dict:
        """The analysis the recipe declared before its runs: ``metric`` and ``margin`` (None where not set)."""
        section = (self.recipe or {}).get("ablation") or {}
        return {"metric": section.get("metric"), "margin": section.get("margin")}

    def __post_init__(self):
        for name in self.factors:
            self.info.setdefault(name, FactorInfo(name, on_label=name))

    @property
    def done_mask(self) -> np.ndarray:
        """Which of the runs finished (as a numpy mask, so a caller can take a few columns before the rows)."""
        return (self.runs.status == "done").to_numpy()

    @property
    def done(self) -> pd.DataFrame:
        return self.runs[self.done_mask]

    @property
    def full(self) -> bool:
        return not self.design.get("fraction")

    def of_role(self, *roles: str) -> list[str]:
        return [f for f in self.factors if self.info[f].role in roles]

    def combination(self, on) -> str:
        """The cell name of a set of factors at their treatment level (the plan's own name where it has one)."""
        levels = tuple(int(f in on) for f in self.factors)
        for _, row in self.runs.drop_duplicates("combination").iterrows():
            if tuple(int(row[f]) for f in self.factors) == levels:
                return row.combination
        return "+".join(self.info[f].on_label for f in self.factors if f in on) or "baseline"


def _throughput(rows: list[dict]) -> float | None:
    keys = ("rollout_tokens_per_s", "rollout_s", "step_s")
    steps = [r for r in rows if all(is_number(r.get(k)) for k in keys)]
    if not steps:
        return None
    generated = sum(r["rollout_tokens_per_s"] * r["rollout_s"] for r in steps)
    return generated / sum(r["step_s"] for r in steps)


def _room(summary: dict, rows: list[dict]) -> dict[str, tuple[float | None, str]]:
    """A run's room measures, ``{column: (value, what it says)}``: from its summary, or, for a run written before
    runs recorded them, read off its metrics with LEGACY_ROOM."""
    stored = summary.get("room")
    if isinstance(stored, dict):
        return {str(c): (e.get("value") if is_number(e.get("value")) else None, str(e.get("about", "")))
                for c, e in stored.items() if isinstance(e, dict) and NAME.match(str(c)) and c not in RESERVED}
    out = {}
    for column, (key, how, about) in LEGACY_ROOM.items():
        values = [r[key] for r in rows if is_number(r.get(key))]
        out[column] = ((values[0] if how == "first" else statistics.fmean(values)) if values else None, about)
    return out


def _factor_info(entry) -> FactorInfo:
    if isinstance(entry, str):  # a store from before field factors
        return FactorInfo(entry, on_label=entry)
    levels = entry.get("levels", (False, True))
    return FactorInfo(entry["name"], str(entry.get("kind", "technique")), str(entry.get("role", "technique")),
                      str(entry.get("on_label", entry["name"])),
                      tuple(levels) if isinstance(levels, list) and len(levels) == 2 else (False, True))


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # the recipe's own rule for names: no path separators


def _check_plan(plan, root: Path) -> None:
    """A plan.json of the shape sigx writes, naming nothing outside the store; else one line."""
    where = root / "plan.json"
    if not isinstance(plan, dict) or not isinstance(plan.get("factors"), list) or not isinstance(plan.get("cells"), list):
        raise ReportError(f"{where}: not a sigx plan (expected an object with 'factors' and 'cells' lists)")
    name = plan.get("name", root.name)
    if not isinstance(name, str) or not NAME.match(name) or len(name) > 100:
        raise ReportError(f"{where}: name {name!r} is not a recipe name (letters, digits, _ . -)")
    for i, factor in enumerate(plan["factors"]):
        if not (isinstance(factor, str) or (isinstance(factor, dict) and isinstance(factor.get("name"), str))):
            raise ReportError(f"{where}: factors[{i}] is neither a technique name nor a factor object")
    for i, cell in enumerate(plan["cells"]):
        ok = (isinstance(cell, dict) and isinstance(cell.get("id"), str) and isinstance(cell.get("combination"), str)
              and isinstance(cell.get("seed"), int) and not isinstance(cell.get("seed"), bool)
              and isinstance(cell.get("factors_on"), list))
        if not ok:
            raise ReportError(f"{where}: cells[{i}] lacks an id, combination, seed or factors_on of the right type")
        parts = Path(cell["id"]).parts
        if Path(cell["id"]).is_absolute() or ".." in parts or len(parts) != 2:
            raise ReportError(f"{where}: cells[{i}] id {cell['id']!r} is not <combination>/seed<k> inside the store")
    _check_design(plan.get("design", {}), where)
    for part in ("factors", "cells"):
        if not plan[part]:
            raise ReportError(f"{where}: its '{part}' list is empty; a sigx plan has at least one factor and one cell")
    ids = [cell["id"] for cell in plan["cells"]]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:  # copies of one run would be read as independent runs: standard errors from copies
        raise ReportError(f"{where}: cell {repeated[0]!r} is listed {ids.count(repeated[0])} times; a plan lists "
                          "each run once (restore plan.json, or run `sigx ablate` on the recipe to rewrite it)")


def _check_design(design, where: Path) -> None:
    """A stored design (a plan's, or an archived report.json's) of the shape sigx writes; else one line."""
    if not isinstance(design, dict):
        raise ReportError(f"{where}: design is not an object (sigx writes its fraction, resolution and description)")
    for key in ("description", "aliases"):  # lines the report prints as they are
        if not (isinstance(design.get(key, []), list) and all(isinstance(line, str) for line in design.get(key, []))):
            raise ReportError(f"{where}: design.{key} is not a list of text lines")
    if not _is_int(design.get("fraction", 0)) or not (design.get("resolution") is None
                                                      or _is_int(design.get("resolution"))):
        raise ReportError(f"{where}: design.fraction or design.resolution is not a whole number")


def load_ablation(root: str | Path) -> Ablation:
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory; name an ablation run store (ablations/<name>)")
    plan = read_json(root / "plan.json")
    if plan is None:
        raise ReportError(f"{root}: not an ablation run store (no readable plan.json); run `sigx ablate RECIPE` first")
    _check_plan(plan, root)
    infos = [_factor_info(f) for f in plan["factors"]]
    factors = [i.name for i in infos]
    rows, curves, damage, room = [], [], [], {}
    for cell in plan["cells"]:
        row = {"cell": cell["id"], "combination": cell["combination"], "seed": cell["seed"],
               **{f: int(f in cell["factors_on"]) for f in factors}, "batch": None}
        summary_path = root / cell["id"] / "summary.json"
        summary = read_json(summary_path)
        if summary is None and summary_path.exists():
            damage.append(f"{cell['id']}/summary.json is unreadable (not UTF-8 JSON): the run counts as missing")
        if summary is not None and not isinstance(summary, dict):
            row.update(status="failed", error="summary.json is not a run summary (a JSON object)")
            rows.append(row)
            continue
        status = cell_status(summary)
        if status == "pending":
            row["status"] = "missing"
        elif status == "failed":
            row.update(status="failed", error=str(summary.get("error", "unknown error")))
        else:
            lines, unreadable = read_jsonl_lines(root / cell["id"] / "metrics.jsonl")
            metrics = [r for r in lines if isinstance(r, dict) and _is_int(r.get("step"))]
            if unreadable or len(metrics) < len(lines):
                damage.append(f"{cell['id']}/metrics.jsonl: {unreadable + len(lines) - len(metrics)} line(s) "
                              "unreadable or not a step's metrics, left out of its curve and room")
            numbers = {k: v for k, v in summary.items()
                       if is_number(v) and k not in RESERVED and k not in factors and NAME.match(str(k))}
            for k, v in summary.items():
                if k not in numbers and (k in METRICS and v is not None or _is_nonfinite(v)):
                    damage.append(f"{cell['id']}/summary.json: {k} is {str(v)[:20]!s}, not a finite number: left out")
            start, build = _warm_start(summary)
            made = summary.get("provenance") if isinstance(summary.get("provenance"), dict) else {}
            measures = {c: m for c, m in _room(summary, metrics).items() if c not in factors}
            for column, (_, about) in measures.items():
                room.setdefault(column, about)
            numbers = {k: v for k, v in numbers.items() if k not in measures}
            row.update(status="done", tokens_per_s=_throughput(metrics), **{c: v for c, (v, _) in measures.items()},
                       **numbers,
                       batch=batch_key(made or None),
                       threads=made.get("threads") if _is_int(made.get("threads")) else None,
                       warm_start=start, base_weights=build)
            curves += [{"cell": cell["id"], "combination": cell["combination"], "seed": cell["seed"],
                        "step": r["step"], "reward": r["eval/reward"]} for r in metrics
                       if is_number(r.get("eval/reward"))]
        rows.append(row)
    runs = complete_runs(pd.DataFrame(rows), room)
    curves = pd.DataFrame(curves, columns=["cell", "combination", "seed", "step", "reward"])
    design = full_design(**plan.get("design", {}))
    try:
        alpha, sequential = look_alpha(root)
    except StoreError as err:  # a damaged sequential.json: the level of every test is unknown, nothing to report
        raise ReportError(str(err)) from None
    return Ablation(plan.get("name", root.name), root, factors, runs, curves, {i.name: i for i in infos}, design,
                    _stored_recipe(root / "recipe.yaml"), alpha, sequential, damage, room)


def _is_nonfinite(value) -> bool:
    return (isinstance(value, float) and (not math.isfinite(value) or abs(value) >= WRITTEN_INFINITY))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, not a boolean (JSON's true is no metric), and not the +-1e308 sigx writes for an
    infinite value (:func:`sigx.runs.write_json_atomic`)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) < WRITTEN_INFINITY)


def _stored_recipe(path: Path) -> dict | None:
    """The store's recipe.yaml as data; a damaged one is a one-line error (it declares the analysis)."""
    if not path.exists():
        return None
    try:
        return read_stored_recipe(path)
    except UnreadableRecipe as err:
        raise ReportError(str(err)) from None


def load_archive(runs_csv: str | Path, recipe_path: str | Path) -> Ablation:
    """An ablation from its archived ``runs.csv`` (what ``sigx report --format csv`` writes, one row per planned
    run) and the recipe that made it: for re-analysing a result whose run store is gone. Reward curves are not
    archived, so the report has no curve plot. A ``batch`` column, where present, says which batch each run came
    from (stores record it themselves since 2026-11-30)."""
    from sigx.ablation.plan import factors_of
    from sigx.config import load_recipe

    runs_csv = Path(runs_csv)
    if not runs_csv.is_file():
        raise ReportError(f"{runs_csv}: not a file (an archived runs.csv)")
    recipe = load_recipe(recipe_path)
    infos = [_factor_info(f.to_json()) for f in factors_of(recipe)]
    factors = [i.name for i in infos]
    try:
        # (a cache key or weights digest of hex digits alone would otherwise be read as a number)
        runs = pd.read_csv(runs_csv, dtype={"warm_start": str, "base_weights": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ReportError(f"{runs_csv}: not a readable runs table ({type(err).__name__})") from None
    needed = {"cell", "combination", "seed", "status", *factors}
    if not needed <= set(runs.columns):
        raise ReportError(f"{runs_csv}: lacks the columns {', '.join(sorted(needed - set(runs.columns)))} "
                          f"(the recipe's factors: {', '.join(factors)})")
    columns = list(runs.columns)
    columns_between = [c for c in columns[columns.index("seed") + 1: columns.index("status")]
                       if c not in ("batch", "threads")]
    if columns_between and columns_between != factors:  # the archive's factor columns sit between seed and status
        raise ReportError(f"{runs_csv}: its factors are {', '.join(columns_between)}, the recipe's "
                          f"{', '.join(factors)}: name the recipe that made these runs")
    named = runs.cell.dropna()  # (an empty id is for the check of ids against combination and seed)
    if named.duplicated().any():
        raise ReportError(f"{runs_csv}: run {named[named.duplicated()].iloc[0]!r} is listed twice")
    _check_archived_values(runs, runs_csv, factors)
    archived = read_json(runs_csv.parent / "report.json")
    room = _archived_room(archived, runs)
    runs = complete_runs(runs, room)
    stored = archived.get("design", {}) if isinstance(archived, dict) else {}
    _check_design(stored, runs_csv.parent / "report.json")
    design = full_design(**stored)
    curves = pd.DataFrame(columns=["cell", "combination", "seed", "step", "reward"])
    subset = archived.get("seed_subset") if isinstance(archived, dict) else None  # a report of part of the seeds
    subset = (f"{subset} (as archived in {runs_csv.parent.name}/report.json)"
              if isinstance(subset, str) and subset else None)
    return Ablation(recipe.name, runs_csv.parent, factors, runs, curves, {i.name: i for i in infos}, design,
                    recipe.model_dump(mode="json"), room=room, seed_subset=subset)


def _check_archived_values(runs: pd.DataFrame, runs_csv: Path, factors: list[str]) -> None:
    """An archived table's values, as ``sigx report`` writes them: each run's status one of the three, its seed a
    whole number and its id ``<combination>/seed<seed>``, each factor column 0 or 1 and one set of levels per
    combination, every other column a finite number or empty. Anything else is a one-line error naming the run
    and column: a factor level of 0.5, a seed of "x" or a metric of "high" would otherwise be analysed (or
    dropped) without a word."""
    def bad(i, column: str, allowed: str):
        value = runs[column].iloc[i]
        shown = (repr(value) if isinstance(value, str) else str(bool(value)) if isinstance(value, (bool, np.bool_))
                 else "empty" if pd.isna(value) else f"{float(value):g}")  # as the file has it: 'x', True, 0.5, inf
        raise ReportError(f"{runs_csv}: {run_label(i)}, column {column}: {shown} is not {allowed}")

    def run_label(i) -> str:  # the run's id, or its row of the table (header aside) where its id is empty
        cell = runs.cell.iloc[i]
        return f"run {cell!r}" if isinstance(cell, str) else f"run {i + 1} of the table (its cell id empty)"

    for i, status in enumerate(runs.status):
        if status not in ("done", "failed", "missing"):
            bad(i, "status", "done, failed or missing")
    numbers = {c: pd.to_numeric(runs[c], errors="coerce") for c in runs.columns if c not in TEXT_COLUMNS}
    for column, values in numbers.items():
        unreadable = runs[column].notna() & ~(values.abs() < WRITTEN_INFINITY)  # text, or infinite
        unreadable |= runs[column].map(lambda v: isinstance(v, (bool, np.bool_)))  # "True" alone in a column
        if unreadable.any():
            bad(int(unreadable.to_numpy().argmax()), column, "a finite number (or empty)")
    for column, allowed in [("seed", "a whole number"), *((f, "0 or 1 (the factor off or on)") for f in factors)]:
        values = numbers[column]
        wrong = ~((values == values.round()) & (values >= 0)) | (~values.isin([0, 1]) if column != "seed" else False)
        if wrong.any():
            bad(int(wrong.to_numpy().argmax()), column, allowed)
    ids = runs.combination.astype(str) + "/seed" + numbers["seed"].astype("Int64").astype(str)
    for i in range(len(runs)):
        if runs.cell.iloc[i] != ids.iloc[i]:
            bad(i, "cell", f"{ids.iloc[i]!r}, its combination and seed")
    if factors:
        levels = runs.groupby("combination")[factors].nunique().max(axis=1)
        if (levels > 1).any():
            combination = levels.index[levels.to_numpy().argmax()]
            raise ReportError(f"{runs_csv}: the runs of {combination!r} differ in their factor columns; one "
                              "combination is one set of levels")


def _archived_room(archived, runs: pd.DataFrame) -> dict[str, str]:
    """The room measures of an archived runs table: as its report.json names them (``room_measures``), else the
    LEGACY_ROOM columns the table has (archives written before the runs recorded their own)."""
    named = archived.get("room_measures") if isinstance(archived, dict) else None
    if isinstance(named, dict):
        return {str(c): str(a) for c, a in named.items() if c in runs.columns}
    return {c: about for c, (_, _, about) in LEGACY_ROOM.items() if c in runs.columns}


def find_ablations(base: str | Path = "ablations") -> list[Path]:
    return sorted(p.parent for p in Path(base).glob("*/plan.json"))
