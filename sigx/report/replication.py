"""Does a second ablation confirm the first one's conclusions? (``sigx report CHECK --replicates REFERENCE``)

Why: every run of a store starts from one warm start, so a factorial's conclusions may be about that base model
rather than the techniques. A check store (the same factors on another warm start, machine or seed range) is read
against the reference report's conclusions, which the *reference* fixes, so nothing is picked after looking at
the check:

- every term (main effect, interaction, positive control) the reference calls significant (Holm p < its alpha);
- every additivity gap it calls synergistic or redundant (shown different from zero).

Additive / within-margin verdicts are not checked: a check usually has fewer seeds and could not show equivalence,
so "not confirmed" there would say nothing.

Each conclusion is tested again on the check's data with the check report's own machinery (the term's estimate
and standard error from the seed-blocked fit; the gap's seed-paired estimate), two-sided against zero, **Holm
over the k conclusions checked**. Outcomes: *confirmed* (Holm p < alpha, the reference's sign), *contradicted*
(Holm p < alpha, the other sign), *not confirmed* (neither: the check cannot tell), *not estimable* (the check's
model has no such term or gap, e.g. a factor it does not cross). So when no conclusion holds in the check's
setting (every true value zero there), the chance of any confirmed or contradicted row is <= alpha (simulation:
tests/report/test_replication.py). The interval shown is the simultaneous one (Bonferroni, 1 - alpha/k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sigx.report.build import Replication, Report
from sigx.report.load import ReportError, is_number
from sigx.report.stats import ALPHA, holm, t_ppf

COLUMNS = ["kind", "conclusion", "reference_estimate", "reference_verdict", "estimate", "se", "df", "ci_low",
           "ci_high", "p", "p_holm", "outcome"]


def read_reference(path: str | Path, option: str = "--replicates") -> dict:
    """A report.json written by ``sigx report --format json`` (or the folder holding one); ``option`` names, in
    an error, what asked for it."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{option}: {path}: no such file (a report.json written by `sigx report --format "
                          "json`, or its folder)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{option}: {path}: cannot be read ({type(err).__name__}: {err})") from None
    except ValueError as err:
        raise ReportError(f"{option}: {path}: not JSON ({err})") from None
    missing = [k for k in ("ablation", "metric", "effects", "additivity") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ReportError(f"{option}: {path}: not a sigx report.json (no {', '.join(missing)})")
    if not isinstance(data["effects"], list) or not isinstance(data["additivity"], list):
        raise ReportError(f"{option}: {path}: 'effects' and 'additivity' must be lists of rows")
    _check_rows(data, path, option)
    data["_source"] = str(Path(*path.parts[-2:]))  # the reference's folder and file: no machine path in a report
    return data


def _check_rows(data: dict, path: Path, option: str) -> None:
    """What decides the reference's conclusions, of the types sigx writes: a damaged value would silently drop a
    conclusion from the check (a p value that is text) or turn every term into one (an alpha of 2)."""
    alpha = data.get("alpha", ALPHA)
    if not (is_number(alpha) and 0 < alpha < 1):
        raise ReportError(f"{option}: {path}: alpha {alpha!r} is not a level between 0 and 1")
    for part, key, kind in (("effects", "p_holm", "a p value or null"), ("additivity", "verdict", "a verdict")):
        for i, row in enumerate(data[part]):
            value = row.get(key) if isinstance(row, dict) else None
            ok = (value is None or (is_number(value) and 0 <= value <= 1)) if key == "p_holm" else isinstance(value, str)
            if not isinstance(row, dict) or not ok:
                raise ReportError(f"{option}: {path}: {part}[{i}].{key} is {value!r}, not {kind}")


def _number(row: dict, key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def conclusions(reference: dict) -> list[dict]:
    """The reference's conclusions: significant terms, then synergistic / redundant gaps."""
    alpha = _number(reference, "alpha")
    alpha = ALPHA if math.isnan(alpha) else alpha
    found = []
    for row in reference["effects"]:
        if isinstance(row, dict) and _number(row, "p_holm") < alpha:
            found.append({"kind": "term", "key": str(row.get("term")), "conclusion": str(row.get("term")),
                          "reference_estimate": _number(row, "effect"), "reference_verdict": "significant"})
    for row in reference["additivity"]:
        if isinstance(row, dict) and row.get("verdict") in ("synergistic", "redundant"):
            key = (str(row.get("regime")), str(row.get("techniques")))
            found.append({"kind": "gap", "key": key, "conclusion": f"{key[1]} ({key[0]})",
                          "reference_estimate": _number(row, "gap"), "reference_verdict": row["verdict"]})
    return found


def check_estimates(report: Report) -> tuple[dict, dict]:
    """The check's terms and gaps: key -> (estimate, se, df, p)."""
    terms = {}
    for _, row in report.effects.table.iterrows():
        terms[row.term] = (row.effect, row.se, row.df, row.p)
    gaps = {}
    if "gap" in report.additivity:
        for _, row in report.additivity.iterrows():
            if isinstance(row.get("gap"), float) and not math.isnan(row["gap"]):
                gaps[(row.regime, row.techniques)] = (row.gap, row.gap_se, row.df, row.p)
    return terms, gaps


def replication(report: Report, reference: dict, alpha: float = ALPHA) -> Replication:
    """The reference's conclusions tested on ``report``'s ablation (see the module docstring)."""
    if reference["metric"] != report.metric:
        raise ReportError(f"--replicates: {reference['_source']} reports `{reference['metric']}`, this report "
                          f"`{report.metric}`: pass --metric {reference['metric']} to check its conclusions")
    terms, gaps = check_estimates(report)
    rows = []
    for c in conclusions(reference):
        found = (terms if c["kind"] == "term" else gaps).get(c["key"])
        row = {k: c[k] for k in ("kind", "conclusion", "reference_estimate", "reference_verdict")}
        if found is None or any(math.isnan(float(x)) for x in found[:2]) or not float(found[1]) > 0:
            rows.append({**row, "outcome": "not estimable"})
            continue
        estimate, se, df, p = (float(x) for x in found)
        rows.append({**row, "estimate": estimate, "se": se, "df": df, "p": p, "outcome": None})
    tested = [r for r in rows if r["outcome"] is None]
    family = len(tested)
    if family:
        adjusted = holm(pd.Series([r["p"] for r in tested]))
        for r, p_holm in zip(tested, adjusted):
            half = t_ppf(1 - alpha / (2 * family), r["df"]) * r["se"]
            same = math.copysign(1, r["estimate"]) == math.copysign(1, r["reference_estimate"])
            outcome = ("confirmed" if same else "contradicted") if p_holm < alpha else "not confirmed"
            r.update(p_holm=float(p_holm), ci_low=r["estimate"] - half, ci_high=r["estimate"] + half, outcome=outcome)
    table = pd.DataFrame(rows, columns=COLUMNS)
    notes = []
    if isinstance(reference.get("seed_subset"), str):  # the conclusions came from part of its seeds
        notes.append(f"{reference['ablation']}'s conclusions are from {reference['seed_subset']}")
    if not rows:
        notes.append(f"{reference['ablation']} draws no conclusion to check (no significant term, no synergistic "
                     "or redundant gap)")
    return Replication(str(reference["ablation"]), reference["_source"], table, family, notes)


def summary_line(result: Replication) -> str:
    counts = result.table.outcome.value_counts()
    parts = [f"{int(counts.get(o, 0))} {o}" for o in ("confirmed", "contradicted", "not confirmed", "not estimable")
             if counts.get(o, 0)]
    return (f"Of {len(result.table)} conclusion(s) of `{result.reference}`: " + (", ".join(parts) or "none") +
            f" (Holm over the {result.family} tested; intervals simultaneous at 95%).")
