"""No completed result is replaced without the user asking (issue #26, item 5)."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, store, tiny_data
from sigx.cli import app
from sigx.runs import write_json_atomic


def recipe_file(tmp_path: Path, name: str, **sections) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_data(tmp_path, name=name, **sections)))
    return path


def test_training_into_a_completed_run_is_refused_unless_fresh(tmp_path, cwd):
    run = tmp_path / "run"
    first = CliRunner().invoke(app, ["train", str(recipe_file(tmp_path, "a")), "--run-dir", str(run)])
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    other = recipe_file(tmp_path, "b", training={"lr": 3e-4})
    line = one_error_line(CliRunner().invoke(app, ["train", str(other), "--run-dir", str(run)]))
    assert f"{run}: holds a completed run (recipe a, baseline, seed 0); pass --fresh to replace it" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    replaced = CliRunner().invoke(app, ["train", str(other), "--run-dir", str(run), "--fresh"])
    assert replaced.exit_code == 0 and json.loads((run / "config.json").read_text())["name"] == "b"


def test_an_empty_run_dir_is_refused_not_the_current_folder(tmp_path, cwd):
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe_file(tmp_path, "a")), "--run-dir", ""]))
    assert "--run-dir: empty or '.'" in line


def _store(root: Path, name: str) -> Path:
    cell = {"id": "baseline/seed0", "combination": "baseline", "factors_on": [], "techniques": [], "seed": 0}
    write_json_atomic(root / "plan.json", {"name": name, "factors": ["sspo"], "seeds": [0], "cells": [cell]})
    write_json_atomic(root / "baseline" / "seed0" / "summary.json",
                      {"status": "completed", "final_reward": 0.5, "reward_auc": 0.5})
    return root


def test_two_stores_of_one_name_are_not_reported_into_one_folder(tmp_path, cwd):
    a, b = _store(tmp_path / "x" / "same", "same"), _store(tmp_path / "y" / "same", "same")
    out = tmp_path / "results"
    line = one_error_line(CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(out)]))
    assert f"{a} and {b} are both ablation 'same'" in line and "each with its own --out" in line
    assert not out.exists()


def test_a_finished_cell_replaced_by_a_file_is_set_aside_with_its_cause_and_run_once(tmp_path, cwd):
    recipe = recipe_file(tmp_path, "cells")
    assert CliRunner().invoke(app, ["ablate", str(recipe)]).exit_code == 0
    store = tmp_path / "ablations" / "cells"
    cell = store / "sspo" / "seed0"
    import shutil

    shutil.rmtree(cell)
    cell.write_text("not a cell")
    again = CliRunner().invoke(app, ["ablate", str(recipe)])
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert "sspo/seed0: is not a directory (a file or a link where the finished cell belongs); set aside" in said
    assert json.loads((cell / "summary.json").read_text())["status"] == "completed"
    assert [p.read_text() for p in (store / ".failed").glob("sspo__seed0.not-a-directory.*")] == ["not a cell"]
    third = CliRunner().invoke(app, ["ablate", str(recipe)])
    assert third.exit_code == 0 and "0 run now" in " ".join(third.output.split()), third.output


def _report(root: Path, out: Path, *args: str):
    return CliRunner().invoke(app, ["report", str(root), "--out", str(out), "--format", "md", *args])


def test_a_report_is_replaced_without_a_word_only_by_its_update(tmp_path, cwd):
    """Regenerating as runs finish is silent; a report of other runs, or of the same runs analysed otherwise, is
    refused in one line naming what would be lost, and --overwrite replaces it."""
    out = tmp_path / "results"
    root = store(tmp_path / "x" / "same")
    (root / "sspo" / "seed1" / "summary.json").unlink()  # still running
    assert _report(root, out).exit_code == 0
    recorded = json.loads((out / "same" / "report.json").read_text())  # written whatever --format asks
    assert sorted(recorded["covers"]["runs"]["same"]) == ["baseline/seed0", "baseline/seed1", "sspo/seed0"]
    write_json_atomic(root / "sspo" / "seed1" / "summary.json",
                      {"status": "completed", "final_reward": 0.5 + 0.01 * 3, "reward_auc": 0.4 + 0.01 * 3})
    assert _report(root, out).exit_code == 0  # an update: one more run finished
    kept = (out / "same" / "report.json").read_bytes()
    assert len(json.loads(kept)["covers"]["runs"]["same"]) == 4

    rerun = store(tmp_path / "y" / "same", summaries={"baseline/seed0": {"status": "completed", "final_reward": 0.9,
                                                                         "reward_auc": 0.8}})
    line = one_error_line(_report(rerun, out))
    assert (f"{out / 'same'}: holds a report of 1 finished run(s) this one lacks or reports otherwise "
            "(same baseline/seed0); write this one elsewhere (--out) or pass --overwrite to replace it") in line
    line = one_error_line(_report(root, out, "--metric", "reward_auc"))
    assert ("holds a report of another analysis (margin 0.02, metric final_reward, seeds all; this one: margin "
            "0.02, metric reward_auc, seeds all)") in line
    line = one_error_line(_report(root, out, "--seeds", "0"))
    assert "seeds all; this one: margin 0.02, metric final_reward, seeds 0)" in line
    assert (out / "same" / "report.json").read_bytes() == kept
    assert _report(rerun, out, "--overwrite").exit_code == 0
    assert json.loads((out / "same" / "report.json").read_text())["covers"]["runs"]["same"]["baseline/seed0"] == \
        [0.9, 0.8]


def test_report_files_sigx_cannot_attribute_are_not_replaced(tmp_path, cwd):
    out, root = tmp_path / "results", store(tmp_path / "abl")
    (out / "abl").mkdir(parents=True)
    (out / "abl" / "report.md").write_text("# a report made by hand, or by a sigx that wrote no report.json\n")
    line = one_error_line(_report(root, out))
    assert f"{out / 'abl'}: holds report.md but no report.json saying which runs it reports" in line
    (out / "abl" / "report.json").write_text('{"notes": []}')
    line = one_error_line(_report(root, out))
    assert f"{out / 'abl' / 'report.json'}: holds no record of the runs it reports" in line
    assert _report(root, out, "--overwrite").exit_code == 0


def test_a_report_json_from_before_the_record_is_read_from_its_runs_table(tmp_path, cwd):
    """Reports committed before report.json recorded what it covers (results/*) are updated by their own runs."""
    out, root = tmp_path / "results", store(tmp_path / "abl")
    assert _report(root, out).exit_code == 0
    path = out / "abl" / "report.json"
    old = json.loads(path.read_text())
    del old["covers"]
    path.write_text(json.dumps(old))
    assert _report(root, out).exit_code == 0
    old["runs"][0]["final_reward"] += 0.01  # the same cell, another outcome: another run
    path.write_text(json.dumps(old))
    assert f"this one lacks or reports otherwise (abl {old['runs'][0]['cell']})" in one_error_line(_report(root, out))


def test_a_comparison_is_replaced_without_a_word_only_by_its_update(tmp_path, cwd):
    out = tmp_path / "results"
    uneven = {f"{c}/seed{s}": {"status": "completed", "final_reward": 0.5 + 0.01 * s + 0.03 * s * s * (c == "sspo"),
                               "reward_auc": 0.4 + 0.02 * s} for c in ("baseline", "sspo") for s in (0, 1, 2)}
    a = store(tmp_path / "a", summaries=uneven)  # an effect that varies from seed to seed
    b = store(tmp_path / "b", seeds=(0, 1, 2), summaries=uneven)

    def compare(first: Path, *args: str):
        return CliRunner().invoke(app, ["compare", str(first), str(b), "--out", str(out), *args])

    assert compare(a).exit_code == 0
    assert compare(a).exit_code == 0  # the same runs again
    kept = (out / "a-vs-b" / "compare.json").read_bytes()
    other_a = store(tmp_path / "elsewhere" / "a", summaries={**uneven, "sspo/seed1": {
        "status": "completed", "final_reward": 0.1, "reward_auc": 0.1}})
    line = one_error_line(compare(other_a))
    assert f"{out / 'a-vs-b'}: holds a comparison of 1 finished run(s) this one lacks or reports otherwise " \
        "(A sspo/seed1)" in line
    assert "seeds_b 0-1)" in one_error_line(compare(a, "--seeds-b", "0-1"))
    assert (out / "a-vs-b" / "compare.json").read_bytes() == kept
    assert compare(other_a, "--overwrite").exit_code == 0


def test_an_update_removes_the_earlier_reports_files_it_does_not_write_and_says_so(tmp_path, cwd):
    """A folder holds one report: an update written with fewer formats must not leave the earlier runs.csv (fewer
    runs) beside it, read as this report's. Files sigx does not write stay."""
    out = tmp_path / "results"
    root = store(tmp_path / "x" / "abl")
    (root / "sspo" / "seed1" / "summary.json").unlink()  # still running
    assert _report(root, out, "--format", "csv").exit_code == 0
    folder = out / "abl"
    assert (folder / "runs.csv").is_file() and (folder / "report.md").is_file()
    (folder / "notes.txt").write_text("mine")
    write_json_atomic(root / "sspo" / "seed1" / "summary.json",
                      {"status": "completed", "final_reward": 0.53, "reward_auc": 0.43})
    result = _report(root, out)  # md alone (and report.json, always)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert ("removed the earlier report's runs.csv, cells.csv, effects.csv, additivity.csv, room.csv (not written "
            "by this one)") in said
    assert not list(folder.glob("*.csv")) and (folder / "notes.txt").read_text() == "mine"
    assert len(json.loads((folder / "report.json").read_text())["covers"]["runs"]["abl"]) == 4
    again = _report(root, out)
    assert again.exit_code == 0 and "removed" not in again.output


def test_a_comparison_update_removes_the_earlier_csv_it_does_not_write(tmp_path, cwd):
    out = tmp_path / "results"
    a, b = store(tmp_path / "a"), store(tmp_path / "b")
    runner = CliRunner()
    first = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out), "--format", "csv"])
    assert first.exit_code == 0, first.output
    assert (out / "a-vs-b" / "compare.csv").is_file()
    second = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out)])
    assert second.exit_code == 0 and "removed the earlier comparison's compare.csv" in " ".join(second.output.split())
    assert sorted(p.name for p in (out / "a-vs-b").iterdir()) == ["compare.json", "compare.md"]


def test_a_report_of_several_stores_checks_every_folder_before_writing_any(tmp_path, cwd):
    """`sigx report A B`: when B's folder holds a report B's would not update, nothing is written, A's folder
    included (a refusal must not leave half of the command done)."""
    out = tmp_path / "results"
    a, b = store(tmp_path / "x" / "first"), store(tmp_path / "x" / "second")
    assert _report(b, out, "--metric", "reward_auc").exit_code == 0
    kept = (out / "second" / "report.json").read_bytes()
    line = one_error_line(CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(out)]))
    assert f"{out / 'second'}: holds a report of another analysis" in line
    assert not (out / "first").exists() and (out / "second" / "report.json").read_bytes() == kept
