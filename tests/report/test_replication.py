"""`sigx report CHECK --replicates REFERENCE`: a reference report's conclusions tested on a second ablation.
Outcomes on planted data (the same truth, the opposite truth, no effect, a factor the check lacks), the family's
error rate by simulation on data shaped like the project's results (unequal noise across cells, many conclusions
at once), and one-line errors for bad references."""

import gc
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from test_report_error_rates import FACTORS, store

from sigx.cli import app
from sigx.report.build import Report, build_report
from sigx.report.load import Ablation, ReportError
from sigx.report.render import as_json, markdown
from sigx.report.replication import conclusions, read_reference, replication
from sigx.report.stats import ALPHA, additivity_table, factorial_effects



@pytest.fixture(autouse=True)
def no_full_collections(monkeypatch):
    """statsmodels' Holm calls gc.collect() on every call (0.2 s with torch loaded); the arithmetic is unchanged."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def flagship_like(on: set) -> float:
    """Effects of the size round 2 measured on search: SSPO and SORL cost off-policy, together less than their sum."""
    return (0.75 + 0.01 * ("search_p1" in on) - 0.1 * ("staleness" in on) - 0.3 * ({"sspo", "staleness"} <= on)
            - 0.15 * ({"sorl", "staleness"} <= on) + 0.1 * ({"sspo", "sorl", "staleness"} <= on))


def unequal_noise(on: set) -> float:
    """Seed-to-seed SDs 4x apart, as round 2's cells (0.01-0.04)."""
    return 0.01 if "staleness" not in on else (0.04 if on & {"sspo", "sorl"} else 0.02)


def planted(mean, rng, seeds=5, noise=unequal_noise, factors=FACTORS) -> Ablation:
    return store(mean, rng, seeds, noise, seed_sd=0.02, factors=factors)


def light_report(ab: Ablation) -> Report:
    """The parts of a report a replication reads (effects, gaps), without the cell tables and seed planning."""
    effects = factorial_effects(ab, "final_reward", margin=0.05)
    gaps = additivity_table(ab, "final_reward", 0.05, plan_seeds=False)
    return Report(ab, "final_reward", 0.05, pd.DataFrame(), effects, gaps, pd.DataFrame(), [])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """A precise reference (quiet cells, 5 seeds) written and read back as report.json, as the CLI does."""
    report = build_report(planted(flagship_like, np.random.default_rng(1), noise=lambda on: 0.005))
    path = tmp_path_factory.mktemp("reference") / "report.json"
    path.write_text(json.dumps(as_json(report)))
    return read_reference(path.parent)


def test_the_reference_fixes_the_conclusions_significant_terms_and_non_additive_gaps(reference):
    found = conclusions(reference)
    terms = {c["conclusion"] for c in found if c["kind"] == "term"}
    assert {"staleness", "sspo", "sorl", "sspo x staleness", "sorl x staleness", "sspo x sorl"} <= terms
    assert "gcrl" not in terms and "search_p1 x gcrl" not in terms
    gaps = {c["conclusion"]: c["reference_verdict"] for c in found if c["kind"] == "gap"}
    assert gaps["sspo + sorl (staleness=4)"] == "synergistic"
    assert not any(v == "additive" for v in gaps.values())  # additive verdicts are not conclusions to check


def test_the_same_truth_is_confirmed_the_opposite_contradicted_and_no_effect_not_confirmed(reference):
    rng = np.random.default_rng(2)
    same = replication(light_report(planted(flagship_like, rng, seeds=4)), reference).table
    strong = same[(same.kind == "term") & (same.reference_estimate.abs() >= 0.04)]
    assert len(strong) == 5 and (strong.outcome == "confirmed").all(), same
    assert not (same.outcome == "contradicted").any()
    # the gaps' seed-paired intervals have 3 degrees of freedom at 4 seeds: too wide here to confirm a 0.1 gap
    assert set(same[same.kind == "gap"].outcome) <= {"confirmed", "not confirmed"}
    opposite = replication(light_report(planted(lambda on: 1.5 - flagship_like(on), rng, seeds=4)), reference).table
    strong = opposite[(opposite.kind == "term") & (opposite.reference_estimate.abs() >= 0.04)]
    assert len(strong) == 5 and (strong.outcome == "contradicted").all(), opposite
    flat = replication(light_report(planted(lambda on: 0.75, rng, seeds=4)), reference)
    assert set(flat.table.outcome) == {"not confirmed"} and flat.family == len(flat.table)
    # sspo's effect is 0 on-policy and -0.3 + 0.1 / 2 off-policy: sspo x staleness = -0.125, inside its interval
    row = same.set_index("conclusion").loc["sspo x staleness"]
    assert row.ci_low <= -0.125 <= row.ci_high and row.p_holm < ALPHA


def test_a_factor_the_check_does_not_cross_is_not_estimable_and_leaves_the_family(reference):
    check = planted(lambda on: 0.75 - 0.1 * ("sspo" in on), np.random.default_rng(3), seeds=4,
                    factors=["search_p1", "gcrl", "sspo", "sorl"])
    result = replication(light_report(check), reference)
    table = result.table.set_index("conclusion")
    assert table.loc["staleness", "outcome"] == "not estimable"
    assert table.loc["sspo + sorl (staleness=4)", "outcome"] == "not estimable"
    assert table.loc["sspo", "outcome"] == "confirmed"  # -0.1 here, -0.3 (averaged) in the reference: same sign
    assert result.family == int((result.table.outcome != "not estimable").sum()) < len(result.table)


def test_with_no_conclusion_true_in_the_check_a_false_confirmation_anywhere_is_at_most_5_percent(reference):
    """Every conclusion null in the check's setting (no effect at all), cells' noise 4x apart, ~12 conclusions:
    the chance that any is called confirmed or contradicted is <= 5% (Holm over the family); unadjusted,
    each at 5%, it would be ~40%."""
    rng = np.random.default_rng(20261130)
    draws, any_call, unadjusted = 300, 0, 0
    for _ in range(draws):
        table = replication(light_report(planted(lambda on: 0.75, rng, seeds=4)), reference).table
        any_call += table.outcome.isin(["confirmed", "contradicted"]).any()
        unadjusted += (table.p < ALPHA).any()
    assert len(table) >= 10
    assert any_call / draws <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / draws), any_call / draws
    assert unadjusted / draws > 0.2  # what the family adjustment is for


def test_the_report_shows_the_replication_in_markdown_and_json(reference):
    report = light_report(planted(flagship_like, np.random.default_rng(4), seeds=4))
    report.replication = replication(report, reference)
    report.cells = build_report(report.ablation).cells
    report.room = build_report(report.ablation).room
    md = markdown(report, [])
    assert "## Replication of `planted`'s conclusions" in md
    assert "| sspo x staleness | term | -0.125 (significant) |" in md and "confirmed |" in md
    data = json.loads(json.dumps(as_json(report)))
    rows = {r["conclusion"]: r for r in data["replication"]["rows"]}
    assert rows["sspo x staleness"]["outcome"] == "confirmed" and data["alpha"] == ALPHA


def test_bad_references_are_one_line_errors(tmp_path, reference):
    with pytest.raises(ReportError, match=r"--replicates: .*nothing.json: no such file"):
        read_reference(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"bad.json: not JSON"):
        read_reference(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"ablation": "x", "metric": "final_reward"}))
    with pytest.raises(ReportError, match=r"other.json: not a sigx report.json \(no effects, additivity\)"):
        read_reference(tmp_path / "other.json")
    for damage, expected in [({"alpha": 2}, r"alpha 2 is not a level between 0 and 1"),
                             ({"alpha": "0.05"}, r"alpha '0.05' is not a level"),
                             ({"effects": [{"term": "sspo", "p_holm": "0.01"}]}, r"effects\[0\]\.p_holm is '0.01', "
                                                                                 "not a p value or null"),
                             ({"additivity": [["not", "a", "row"]]}, r"additivity\[0\]\.verdict is None, not a verdict")]:
        (tmp_path / "damaged.json").write_text(json.dumps({"ablation": "x", "metric": "final_reward", "effects": [],
                                                           "additivity": [], **damage}))
        with pytest.raises(ReportError, match=r"--replicates: .*damaged.json: " + expected):
            read_reference(tmp_path / "damaged.json")
    report = light_report(planted(flagship_like, np.random.default_rng(5), seeds=3))
    report.metric = "reward_auc"
    with pytest.raises(ReportError, match=r"reports `final_reward`, this report `reward_auc`: pass --metric final_reward"):
        replication(report, reference)


def test_the_cli_checks_one_store_against_a_reference_in_one_line_errors(tmp_path):
    from test_report import make_store, noise

    def value(on, seed):
        return 0.5 - 0.2 * on["sspo"] + noise(seed, on, 0.01)

    reference = make_store(tmp_path / "reference", ["sspo", "sorl"], [0, 1, 2], value)
    check = make_store(tmp_path / "check", ["sspo", "sorl"], [0, 1, 2], value)
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["report", str(reference), "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["report", str(check), "--out", str(out), "--replicates",
                                      str(out / "reference")])
    assert result.exit_code == 0, result.output
    assert "replication of reference's conclusions" in result.output and "confirmed" in result.output
    md = (out / "check" / "report.md").read_text()
    assert "## Replication of `reference`'s conclusions" in md
    assert "| sspo | term | -0.199 (significant) | -0.199 | [-0.213, -0.185] | <0.001 | confirmed |" in md
    assert str(tmp_path) not in md  # the reference is named by its folder and file, no machine path
    for args, expected in [(["--replicates", str(tmp_path / "none.json")], "none.json: no such file"),
                           ([str(reference), "--replicates", str(out / "reference")],
                            "--replicates: checks one ablation against its reference; 2 were named")]:
        result = CliRunner().invoke(app, ["report", str(check), "--out", str(out), *args])
        assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output, result.output
