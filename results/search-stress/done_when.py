"""Does a flagship report meet issue #25's "done when" for results/search-stress? Each criterion, met or not.

Why: the extension's report decides whether #25 is resolved, and that decision should be mechanical, fixed before
the report is read, not argued afterwards. Written on 2026-12-03 before any of the extension's results was read
(run counts only). The issue's three criteria for `results/search-stress/report.{md,json}`, read literally:
  1. the positive control detected: every row of role "control" in the effects table has Holm p < 0.05;
  2. every main effect's MDE <= 0.02: the order-1 rows that are not controls (the techniques and the regime
     factor; the control is crossed with the baseline only, its MDE is not the design's);
  3. >= 2 model turns per trajectory on average: the room table's "all runs" row.
A criterion whose number the report lacks is not met (said so). Prints one line per criterion and a verdict; exit
0 when all three are met, 1 when one is not, 2 when the report cannot be read.

    python results/search-stress/done_when.py results/search-stress/extension/search-stress
"""

import sys

import pandas as pd

from sigx.ablation.sequential import mde_over
from sigx.report.load import ReportError, is_number
from sigx.report.replication import read_reference

CONTROL_ALPHA = 0.05
MDE_TARGET = 0.02
MIN_TURNS = 2.0


def criteria(report: dict) -> list[tuple[str, bool, str]]:
    """(criterion, met, what the report says) for the issue's three criteria."""
    effects = report["effects"]
    controls = [row for row in effects if row.get("role") == "control"]
    found = []
    if not controls:
        found.append(("positive control detected (Holm p < 0.05)", False, "the report has no control row"))
    for row in controls:
        p = row.get("p_holm")
        met = is_number(p) and p < CONTROL_ALPHA
        found.append((f"positive control {row['term']} detected (Holm p < {CONTROL_ALPHA})", met,
                      f"Holm p {p:.3g}" if is_number(p) else f"Holm p {p!r}"))
    mains = [row for row in effects if row.get("order") == 1 and row.get("role") != "control"]
    # the same main effects and test as `sigx ablate --until-mde` (a missing MDE counts as over)
    over = list(mde_over(pd.DataFrame(effects, columns=["term", "order", "role", "mde"]), MDE_TARGET))
    mdes = ", ".join(f"{row['term']} {row['mde']:.4f}" if is_number(row.get("mde")) else f"{row['term']} -"
                     for row in mains)
    found.append((f"every main effect's MDE <= {MDE_TARGET}", bool(mains) and not over,
                  (f"MDEs: {mdes}" if mains else "the report has no main effect") +
                  (f"; above: {', '.join(over)}" if over else "")))
    overall = [row for row in report.get("room") or [] if row.get("runs") == "all runs"]
    turns = overall[0].get("turns") if overall else None
    found.append((f">= {MIN_TURNS:g} model turns per trajectory on average", is_number(turns) and turns >= MIN_TURNS,
                  f"{turns:.2f} turns (room table, all runs)" if is_number(turns) else "the room table has no turns"))
    return found


def main(path: str) -> int:
    try:
        report = read_reference(path, option="done_when.py")
    except ReportError as err:
        print(err, file=sys.stderr)
        return 2
    found = criteria(report)
    seeds = len({row.get("seed") for row in report.get("runs") or []}) or "?"
    print(f"# Issue #25's done-when for {report['_source']} ({seeds} seeds)\n")
    for name, met, says in found:
        print(f"- {'met' if met else 'NOT met'}: {name}: {says}")
    all_met = all(met for _, met, _ in found)
    print(f"\n{'all three met' if all_met else 'not all met'}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
