"""results/search-stress/done_when.py: issue #25's three criteria, each met only when the report's number says so."""

import json

import pytest
from results_script import load_results_script


@pytest.fixture(scope="module")
def done_when():
    return load_results_script("search-stress", "done_when.py")


def report(control_p=0.001, mdes=(0.019, 0.02), turns=2.4):
    effects = [{"term": f"t{i}", "role": "technique", "order": 1, "mde": m, "p_holm": 0.5, "effect": 0.0}
               for i, m in enumerate(mdes)]
    effects.append({"term": "t0 x t1", "role": "interaction", "order": 2, "mde": 0.9, "p_holm": 0.5, "effect": 0.0})
    effects.append({"term": "lr", "role": "control", "order": 1, "mde": 0.07, "p_holm": control_p, "effect": 0.1})
    return {"ablation": "x", "metric": "reward_auc", "effects": effects, "additivity": [],
            "room": [{"runs": "all runs", "turns": turns}, {"runs": "t0=on", "turns": 9.0}],
            "runs": [{"seed": s} for s in range(32)]}


def met(done_when, data):
    return [flag for _, flag, _ in done_when.criteria(data)]


def test_all_three_met_at_the_boundaries_the_issue_names(done_when):
    # an MDE of exactly 0.02 meets "<= 0.02"; an interaction's or the control's larger MDE is not a main effect's
    assert met(done_when, report()) == [True, True, True]


@pytest.mark.parametrize("change, failing", [
    ({"control_p": 0.05}, 0),                  # Holm p must be below 0.05
    ({"control_p": None}, 0),                  # no p: not detected
    ({"mdes": (0.019, 0.0201)}, 1),            # one main effect above 0.02
    ({"mdes": (0.019, float("nan"))}, 1),      # an MDE the report could not compute
    ({"turns": 1.99}, 2),                      # fewer than 2 turns on average over all runs
    ({"turns": None}, 2),
])
def test_each_criterion_fails_alone(done_when, change, failing):
    flags = met(done_when, report(**change))
    assert flags == [i != failing for i in range(3)]


def test_a_report_without_a_control_or_main_effects_is_not_done(done_when):
    data = report()
    data["effects"] = [row for row in data["effects"] if row["role"] == "interaction"]
    assert met(done_when, data) == [False, False, True]


def test_main_prints_each_criterion_and_exits_by_the_verdict(done_when, tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report()))
    assert done_when.main(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "(32 seeds)" in out and out.count("- met:") == 3 and "all three met" in out
    path.write_text(json.dumps(report(turns=1.5)))
    assert done_when.main(str(path)) == 1
    assert "- NOT met: >= 2 model turns" in capsys.readouterr().out
    assert done_when.main(str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err
    assert err.startswith("done_when.py: ") and "no such file" in err and "\n" == err[-1] and err.count("\n") == 1
