"""`sigx report --seeds` / `sigx compare --seeds-a/--seeds-b`: an analysis of whole seed blocks named in advance,
when a later block is part-finished (the flagship's fallback: seeds 0-11 of a plan grown to 0-15)."""

import json

import pytest
from typer.testing import CliRunner

from test_report import make_store, noise

from sigx.cli import app
from sigx.report.load import ReportError, load_ablation
from sigx.report.seeds import keep_seeds, parse_seeds, span
from sigx.report.build import build_report

FACTORS = ["sspo", "sorl"]


def planted(on, seed):
    """Effects 0.10 (sspo) and 0.04 (sorl), noise 0.01; seed 3's runs sit far off (a block that would pull the
    effects if its part-finished runs were analysed)."""
    shift = 0.3 * on["sspo"] if seed == 3 else 0.0
    return 0.4 + 0.10 * on["sspo"] + 0.04 * on["sorl"] + shift + noise(seed, on, 0.01)


@pytest.mark.parametrize("text, seeds", [("0-11", list(range(12))), ("0,2,5-7", [0, 2, 5, 6, 7]), (" 3 ", [3]),
                                         ("4-4,1", [1, 4]), ("0-2,1-3", [0, 1, 2, 3])])
def test_seed_lists_parse(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, says", [("x", "not a list of seeds"), ("5-2", "runs backwards"), ("", "not a list"),
                                        ("1-", "not a list"), ("-1", "not a list"), ("0,,1", "not a list"),
                                        ("1.5", "not a list"), ("0-100000000000", "more than 100000 seeds")])
def test_bad_seed_lists_are_one_line_errors(text, says):
    with pytest.raises(ReportError, match=says) as err:
        parse_seeds(text, "--seeds-a")
    assert str(err.value).startswith("--seeds-a: ") and "\n" not in str(err.value)


def test_span_writes_ranges():
    assert span([8, 0, 1, 2, 3]) == "0-3, 8" and span([5]) == "5" and span(range(12)) == "0-11"


def part_finished(tmp_path):
    """Seeds 0-3 planned; seed 3's block part-finished (2 of its 4 runs)."""
    return make_store(tmp_path / "grown", FACTORS, [0, 1, 2, 3], planted,
                      missing={"sspo/seed3", "sorl/seed3"})


def test_the_kept_seeds_give_the_report_of_a_store_with_those_seeds_alone(tmp_path):
    store = part_finished(tmp_path)
    alone = build_report(load_ablation(make_store(tmp_path / "alone", FACTORS, [0, 1, 2], planted)))
    kept = build_report(keep_seeds(load_ablation(store), parse_seeds("0-2")))
    whole = build_report(load_ablation(store))
    for column in ("effect", "se", "p", "ci_low", "ci_high"):
        assert list(kept.effects.table[column]) == pytest.approx(list(alone.effects.table[column]), rel=1e-12)
    assert kept.effects.residual_df == alone.effects.residual_df == 6
    assert list(kept.cells.sort_values("combination").final_reward) == pytest.approx(
        list(alone.cells.sort_values("combination").final_reward))
    # without --seeds the part-finished block moves the estimates (why a whole-block subset is analysed)
    sspo = whole.effects.table.set_index("term").loc["sspo", "effect"]
    assert abs(sspo - alone.effects.table.set_index("term").loc["sspo", "effect"]) > 0.01
    assert not any("incomplete" in n for n in kept.notes)  # seed 3's unfinished runs are not "missing" here
    assert kept.declaration.endswith("seeds 0-2 of the plan's 0-3, chosen at report time (--seeds): 4 planned "
                                     "run(s) of seed(s) 3 left out of every table, 2 of them finished.")
    assert set(kept.ablation.curves.seed) == {0, 1, 2}


def test_report_cli_with_seeds_writes_them_into_the_first_line_and_the_json(tmp_path):
    store = part_finished(tmp_path)
    result = CliRunner().invoke(app, ["report", str(store), "--seeds", "0-2", "--out", str(tmp_path / "out"),
                                      "--format", "md", "--format", "json", "--format", "csv"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "grown" / "report.json").read_text())
    assert data["seeds"] == [0, 1, 2] and "2 of them finished" in data["seed_subset"]
    assert {r["seed"] for r in data["runs"]} == {0, 1, 2}
    md = (tmp_path / "out" / "grown" / "report.md").read_text().splitlines()
    assert "seeds 0-2 of the plan's 0-3" in md[2]  # the Analysis line, under the title
    # its archived runs table, re-analysed against the recipe, still says it holds part of the seeds
    recipe = tmp_path / "grown.yaml"
    recipe.write_text("name: grown\nablation:\n  factors: [sspo, sorl]\n  seeds: [0, 1, 2, 3]\n")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "out" / "grown" / "runs.csv"), "--recipe",
                                      str(recipe), "--out", str(tmp_path / "again"), "--format", "json"])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again" / "grown" / "report.json").read_text())
    assert again["seeds"] == [0, 1, 2] and again["declaration"].endswith(
        "2 of them finished (as archived in grown/report.json).")
    assert again["effects"][0]["effect"] == pytest.approx(data["effects"][0]["effect"])
    # a reference analysed on part of its seeds says so in the check's notes
    check = make_store(tmp_path / "check", FACTORS, [0, 1], planted)
    result = CliRunner().invoke(app, ["report", str(check), "--replicates", str(tmp_path / "out" / "grown"),
                                      "--out", str(tmp_path / "out2"), "--format", "json"])
    assert result.exit_code == 0, result.output
    notes = json.loads((tmp_path / "out2" / "check" / "report.json").read_text())["replication"]["notes"]
    assert any(n.startswith("grown's conclusions are from seeds 0-2 of the plan's 0-3") for n in notes)


@pytest.mark.parametrize("seeds, says", [("0-5", "--seeds: seed(s) 4-5 are not in grown's plan (its seeds: 0-3)"),
                                         ("a", "--seeds: 'a' is not a list of seeds")])
def test_report_cli_seed_errors_are_one_line(tmp_path, seeds, says):
    store = part_finished(tmp_path)
    result = CliRunner().invoke(app, ["report", str(store), "--seeds", seeds, "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and says in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "grown").exists()  # nothing written


def test_compare_with_seeds_of_each_store(tmp_path):
    a = part_finished(tmp_path)
    b = make_store(tmp_path / "other", FACTORS, [0, 1, 2, 3, 4], planted)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--seeds-a", "0-2", "--seeds-b", "0,1,2,4",
                                      "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "grown-vs-other" / "compare.json").read_text())
    rows = {r["term"]: r for r in data["rows"]}
    assert rows["sspo"]["seeds_a"] == 3 and rows["sspo"]["seeds_b"] == 4
    assert any("grown: seeds 0-2 of the plan's 0-3" in n for n in data["notes"])
    assert any("other: seeds 0-2, 4 of the plan's 0-4" in n for n in data["notes"])
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--seeds-b", "7", "--out", str(out)])
    assert result.exit_code != 0 and "--seeds-b: seed(s) 7 are not in other's plan" in result.output
