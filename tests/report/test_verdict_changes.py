"""results/search-stress/verdict_changes.py: every verdict of the declared report beside the extension's.

It decides what the extension's write-up must name as changed, so each way a verdict can change (or not) is
checked on hand-built reports: a sign flip of a significant term, significant -> within the margin, a gap's verdict
word, a term missing from the extension, and an unchanged row.
"""

import json

import pytest
from results_script import load_results_script


@pytest.fixture(scope="module")
def verdict_changes():
    return load_results_script("search-stress", "verdict_changes.py")


def term(name, effect, p_holm, p_equivalent_holm=1.0):
    return {"term": name, "effect": effect, "p_holm": p_holm, "p_equivalent_holm": p_equivalent_holm}


def gap(techniques, verdict, value, seeds, regime="reference"):
    return {"regime": regime, "techniques": techniques, "gap": value, "verdict": verdict, "seeds": seeds}


def declared():
    return {"ablation": "search-stress", "metric": "reward_auc", "alpha": 0.05,
            "effects": [term("gcrl", -0.12, 0.001), term("sorl", -0.015, 0.21, 0.001), term("sspo", 0.03, 0.01),
                        term("search_p1", -0.015, 0.21, 0.2), term("lr", -0.17, 0.0001)],
            "additivity": [gap("gcrl + sspo", "redundant", -0.06, 16), gap("sspo + sorl", "synergistic", 0.03, 16)]}


def extended():
    return {"ablation": "search-stress", "metric": "reward_auc", "alpha": 0.05,
            "effects": [term("gcrl", -0.11, 0.0001),                    # same: significant -
                        term("sorl", -0.014, 0.3, 0.0001),              # same: within +-margin
                        term("sspo", -0.02, 0.04),                      # sign flip: significant + -> significant -
                        term("search_p1", -0.01, 0.5, 0.01)],           # inconclusive -> within; lr missing
            "additivity": [gap("gcrl + sspo", "redundant", -0.05, 32), gap("sspo + sorl", "inconclusive", 0.02, 32)]}


def changes(lines):
    """name -> (declared cell, extension cell, changes cell) of the table's data rows."""
    rows = [line.strip("|").split(" | ") for line in lines[2:]]
    return {row[1].strip(): (row[2].strip(), row[3].strip(), row[4].strip()) for row in rows}


def test_each_kind_of_change_is_named_and_counted(verdict_changes):
    lines, changed, total = verdict_changes.table(declared(), extended())
    assert lines[0] == "| kind | term or gap | 16 seeds (declared) | 32 seeds (extension) | changes |"
    rows = changes(lines)
    assert rows == {
        "gcrl": ("-0.120 significant -", "-0.110 significant -", "no"),
        "sorl": ("-0.015 within +-margin", "-0.014 within +-margin", "no"),
        "sspo": ("+0.030 significant +", "-0.020 significant -", "**yes**"),
        "search_p1": ("-0.015 inconclusive", "-0.010 within +-margin", "**yes**"),
        "lr": ("-0.170 significant -", "- not in the extension", "**yes**"),
        "gcrl + sspo (reference)": ("-0.060 redundant", "-0.050 redundant", "no"),
        "sspo + sorl (reference)": ("+0.030 synergistic", "+0.020 inconclusive", "**yes**"),
    }
    assert (changed, total) == (4, 7)


def test_a_p_value_at_alpha_is_not_significant(verdict_changes):
    # the report's rule is "Holm p < alpha": exactly 0.05 is not a detection, and a missing p is none either
    report = {"effects": [term("a", 0.1, 0.05), term("b", 0.1, None, None)], "additivity": []}
    assert verdict_changes.term_verdicts(report) == {"a": (0.1, "inconclusive"), "b": (0.1, "inconclusive")}


def test_main_reads_report_folders_and_prints_the_count(verdict_changes, tmp_path, capsys):
    for name, data in (("declared", declared()), ("extension", extended())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(data))
    assert verdict_changes.main(str(tmp_path / "declared"), str(tmp_path / "extension")) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Verdicts at 16 seeds (declared) and 32 seeds (extension, decided after reading)")
    assert "4 of 7 verdicts change." in out


def test_a_missing_report_is_one_line_naming_it(verdict_changes, tmp_path):
    with pytest.raises(SystemExit) as stop:
        verdict_changes.main(str(tmp_path / "nowhere"), str(tmp_path / "nowhere"))
    message = str(stop.value.code)
    assert "nowhere" in message and "\n" not in message


def test_a_report_of_an_incomplete_store_says_its_terms_and_gaps_rest_on_different_seeds(verdict_changes):
    # the interim (make_interim.sh): terms fitted on every finished run (seeds 0-31), gaps paired over the seeds that
    # hold every cell (0-15); one count alone would misstate one or the other
    interim = dict(extended(), additivity=[gap("gcrl + sspo", "redundant", -0.05, 16)],
                   runs=[{"seed": seed, "status": "done"} for seed in range(32)] + [{"seed": 40, "status": "failed"}])
    assert verdict_changes.seeds(interim) == "32 seeds, gaps on 16"
    assert verdict_changes.seeds(dict(interim, runs=interim["runs"][:16])) == "16 seeds"  # complete: one count
    assert verdict_changes.seeds(declared()) == "16 seeds"  # a report without its runs table: the gaps' count
    lines, _, _ = verdict_changes.table(declared(), interim)
    assert lines[0] == "| kind | term or gap | 16 seeds (declared) | 32 seeds, gaps on 16 (extension) | changes |"
