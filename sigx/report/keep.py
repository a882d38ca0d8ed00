"""Whether a report (or comparison) may be written over the one already in its folder.

``sigx report`` writes to OUT/<ablation name>/ and ``sigx compare`` to OUT/<A>-vs-<B>/, so a folder is named by
ablation, not by the runs it reports. Regenerating a report as more runs finish is the everyday case and must
stay silent; but a report of *another* store of the same name (a rerun elsewhere, an archive of part of the
seeds), or of the same runs analysed otherwise (another metric, margin or seed subset), would replace a result
the user may no longer be able to make (its store gone with its machine). So a folder's report is replaced
without a word only by an *update*: the same analysis over every finished run it covered, each with the same
outcome, and possibly more. Anything else is refused in one line naming what would be lost, unless the user
passes ``--overwrite`` (as ``sigx train --fresh`` replaces a completed run; HF's ``overwrite_output_dir``).

What a report covers is recorded in its JSON file (``covers``: the analysis, and each finished run's cell and
outcome per store), which is therefore written whatever ``--format`` asks. A report.json written before this
record existed is read from its ``runs`` table; report files without a JSON record cannot be attributed and are
refused likewise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sigx.report.load import ReportError
from sigx.report.seeds import span

OUTCOMES = ("final_reward", "reward_auc")  # what identifies a finished run's result beside its cell id
EXAMPLES = 3  # runs named in a refusal


def json_value(x):
    """A table's value as plain JSON at full precision (a numpy scalar as its Python value), NaN as null: how
    report.json writes its tables (sigx.report.render), so a recorded outcome compares equal to its re-read."""
    if hasattr(x, "item"):
        x = x.item()
    return None if isinstance(x, float) and math.isnan(x) else x


def finished_runs(runs: pd.DataFrame | list[dict]) -> dict[str, list]:
    """cell id -> its outcomes (OUTCOMES, null where absent) for each finished run of a runs table."""
    rows = runs.to_dict(orient="records") if isinstance(runs, pd.DataFrame) else runs
    return {str(r["cell"]): [json_value(r.get(k)) for k in OUTCOMES] for r in rows
            if isinstance(r, dict) and r.get("status") == "done" and "cell" in r}


def covers(analysis: dict, runs: dict[str, pd.DataFrame]) -> dict:
    """The record written into a report's JSON: its analysis and, per store name, its finished runs."""
    return {"analysis": analysis, "runs": {name: finished_runs(table) for name, table in runs.items()}}


def _recorded(path: Path) -> dict | None:
    """The ``covers`` record of an earlier report's JSON; derived from its runs table for a report.json written
    before the record existed; None when it holds no record sigx can read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    record = data.get("covers")
    if isinstance(record, dict) and isinstance(record.get("analysis"), dict) and isinstance(record.get("runs"), dict):
        return record if all(isinstance(runs, dict) for runs in record["runs"].values()) else None
    if not (isinstance(data.get("runs"), list) and "metric" in data and "ablation" in data):
        return None
    try:  # a report.json written before the record: its analysis and runs table say the same
        seeds, replication = data.get("seeds"), data.get("replication") or {}
        return covers({"metric": data.get("metric"), "margin": data.get("margin"),
                       "seeds": span(seeds) if isinstance(seeds, list) and seeds else None,
                       "replicates": replication.get("source") if isinstance(replication, dict) else None},
                      {str(data["ablation"]): data["runs"]})
    except (TypeError, ValueError):  # a damaged one
        return None


def _described(analysis: dict) -> str:
    """e.g. "margin 0.05, metric reward_auc, seeds 0-15" (names in order; seeds "all" where no subset was chosen)."""
    return ", ".join(f"{k} {'all' if v is None else v}" for k, v in sorted(analysis.items())
                     if v is not None or k.startswith("seeds"))


def check_replaceable(folder: Path, record_file: str, report_files: tuple[str, ...], record: dict,
                      overwrite: bool) -> None:
    """Raise ReportError (one line) unless ``record`` (see :func:`covers`) is an update of the report in
    ``folder``, or the folder holds none, or ``overwrite``."""
    if overwrite or not folder.is_dir():
        return
    advice = "write this one elsewhere (--out) or pass --overwrite to replace it"
    kind = "comparison" if record_file == "compare.json" else "report"
    path = folder / record_file
    if not path.exists():
        present = [name for name in report_files if (folder / name).exists()]
        if present:
            raise ReportError(f"{folder}: holds {', '.join(present)} but no {record_file} saying which runs it "
                              f"reports; {advice}")
        return
    old = _recorded(path)
    if old is None:
        raise ReportError(f"{path}: holds no record of the runs it reports (written by an earlier sigx, or not "
                          f"sigx's); {advice}")
    if old["analysis"] != record["analysis"]:
        raise ReportError(f"{folder}: holds a {kind} of another analysis ({_described(old['analysis'])}; this "
                          f"one: {_described(record['analysis'])}); {advice}")
    lost = []
    for store, runs in old["runs"].items():
        new = record["runs"].get(store, {})
        lost += [f"{store} {cell}" for cell, outcome in runs.items() if cell not in new or outcome != new[cell]]
    if lost:
        shown = ", ".join(lost[:EXAMPLES]) + (f" and {len(lost) - EXAMPLES} more" if len(lost) > EXAMPLES else "")
        raise ReportError(f"{folder}: holds a {kind} of {len(lost)} finished run(s) this one lacks or reports "
                          f"otherwise ({shown}); {advice}")


def remove_stale(folder: Path, report_files: tuple[str, ...], written: list[Path]) -> list[str]:
    """Remove the files an earlier report (or comparison) left in ``folder`` that this one did not write, and
    return their names. Why: a folder holds one report; an update written with fewer formats (md alone after md,
    csv and json) or fewer plots (an archive has no curves) would otherwise leave the earlier runs.csv or
    reward_curves.png beside it, read as this report's while covering fewer runs. Only sigx's own file names are
    touched (anything else in the folder stays), and only after :func:`check_replaceable` allowed the replacement
    and this report's files were written: what is removed was superseded by them (an update, or --overwrite)."""
    mine = {path.name for path in written}
    stale = [name for name in report_files if name not in mine and (folder / name).is_file()]
    for name in stale:
        (folder / name).unlink()
    return stale


def analysed(ablation) -> str | None:
    """The seeds a report of part of an ablation's seeds analyses ('0-15'); None for all of them."""
    seeds = ablation.seeds_analysed
    return span(seeds) if seeds else None


def report_record(report) -> dict:
    """The ``covers`` record of a :class:`sigx.report.build.Report`: its analysis (metric, margin, seed subset,
    the reference it replicates) and its finished runs."""
    replication = getattr(report, "replication", None)
    return covers({"metric": report.metric, "margin": report.margin, "seeds": analysed(report.ablation),
                   "replicates": replication.source if replication is not None else None},
                  {report.ablation.name: report.ablation.runs})
