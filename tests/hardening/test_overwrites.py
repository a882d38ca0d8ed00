"""No completed result is replaced without the user asking (issue #26, item 5)."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, tiny_data
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
