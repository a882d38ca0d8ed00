"""The run store: every cell once, resumes, a different experiment refused, older stores read."""

import json
from pathlib import Path

import pytest
import yaml

from ablation_fixtures import small_recipe, summaries
from sigx.ablation.runner import run_ablation
from sigx.ablation.store import AblationStore, StoreError
from sigx.runs import read_jsonl


# ------------------------------------------------------------------------------------------------ store
def test_runs_every_cell_once_and_a_rerun_runs_nothing(tmp_path, monkeypatch):
    from sigx.ablation import cell

    monkeypatch.setattr(cell, "_ENGINE", {"key": None, "engine": None, "setup_s": 0.0, "cells": 0})  # a new process's
    recipe = small_recipe(tmp_path)
    outcome = run_ablation(recipe)
    root = Path(outcome.root)
    assert outcome.count("done") == 4 and len(outcome.results) == 4
    assert len({r["pid"] for r in outcome.results}) == 1 and outcome.results[-1]["engine_cells"] == 4  # one engine
    first = summaries(root)
    assert sorted(first) == sorted(c.id for c in outcome.cells)
    for cell_id, text in first.items():
        summary = json.loads(text)
        assert summary["status"] == "completed" and summary["run_dir"] == str(root / cell_id)
        assert [r["step"] for r in read_jsonl(root / cell_id / "metrics.jsonl")] == [0, 1, 2, 3]
    assert yaml.safe_load((root / "recipe.yaml").read_text()) == recipe.model_dump(mode="json")
    assert [c["id"] for c in json.loads((root / "plan.json").read_text())["cells"]] == [c.id for c in outcome.cells]

    again = run_ablation(recipe)
    assert again.results == [] and summaries(root) == first
    sessions = read_jsonl(root / "sessions.jsonl")
    assert [s["event"] for s in sessions] == ["started", "finished"] * 2  # a killed one leaves "started"
    assert [s["cells_run"] for s in sessions if s["event"] == "finished"] == [4, 0]


def test_store_refuses_a_different_experiment_but_accepts_more_seeds_and_other_executors(tmp_path):
    run_ablation(small_recipe(tmp_path))
    changed = small_recipe(tmp_path)
    changed.training.lr = 3e-4
    with pytest.raises(StoreError, match=r"differs in training\.lr"):
        run_ablation(changed)
    smaller = small_recipe(tmp_path, seeds=[0, 1], workers=2)  # a resume may widen and parallelise, and lay out
    smaller.training.micro_batch_size = 2  # the update in smaller pieces (same update, less memory)
    more = run_ablation(smaller)
    assert more.count("done") == 8 and len(more.results) == 4


def test_a_fraction_completed_to_the_full_factorial_runs_only_the_missing_half(tmp_path):
    """The fold-over: a 2^(5-1) half, then fraction 0 on the same store runs the 16 cells the half left out and
    keeps the 16 done (their summaries untouched), so the report can de-alias the interactions."""
    factors = ["search_p1", "gcrl", "sspo", "sorl", {"rollout.staleness": [0, 1]}]
    half = run_ablation(small_recipe(tmp_path, factors=factors, fraction=1))
    root = Path(half.root)
    first = summaries(root)
    assert len(first) == 16 and half.count("done") == 16
    full = run_ablation(small_recipe(tmp_path, factors=factors, fraction=0))
    assert full.count("done") == 32 and len(full.results) == 16  # only the other half ran
    after = summaries(root)
    assert len(after) == 32 and all(after[cell] == text for cell, text in first.items())
    assert json.loads((root / "plan.json").read_text())["design"]["fraction"] == 0


def test_a_store_written_by_an_older_sigx_is_resumed_when_the_new_fields_keep_their_defaults(tmp_path):
    outcome = run_ablation(small_recipe(tmp_path))
    stored_path = Path(outcome.root) / "recipe.yaml"
    stored = yaml.safe_load(stored_path.read_text())
    del stored["rollout"]["decoder"], stored["training"]["rollout_correction"]  # fields added since
    stored["ablation"]["cpus_per_cell"] = 1  # where it ran, as sigx wrote it before the launchers' sections
    stored_path.write_text(yaml.safe_dump(stored))
    assert run_ablation(small_recipe(tmp_path)).count("done") == 4  # accepted: nothing to re-run
    lr = stored["training"]["lr"]
    stored["training"]["lr"] = 1.0  # a field that still exists and differs is refused as before
    stored_path.write_text(yaml.safe_dump(stored))
    with pytest.raises(StoreError, match=r"differs in training\.lr\)"):
        run_ablation(small_recipe(tmp_path))
    stored["training"]["lr"] = lr
    stored_path.write_text(yaml.safe_dump(stored))
    where = small_recipe(tmp_path)
    where.logging.wandb_unreachable = "offline"  # how it logs, not what it measures: the same experiment
    assert run_ablation(where).count("done") == 4
    recipe = small_recipe(tmp_path)
    recipe.rollout.decoder = "static"  # a new field away from its default is a different experiment
    with pytest.raises(StoreError, match=r"differs in rollout\.decoder\)"):
        run_ablation(recipe)


@pytest.mark.parametrize("damage", ["a directory", "empty", "not utf-8", "a list"])
def test_a_damaged_stored_recipe_is_one_line_from_store_archive_and_report(tmp_path, damage):
    """The store's recipe.yaml declares what it measures: damaged, every reader says so in one line naming it
    (before, a recipe.yaml that was a directory was a traceback from the store and the report)."""
    from sigx.ablation.archive import archive_store
    from sigx.report.load import ReportError, load_ablation

    root = Path(run_ablation(small_recipe(tmp_path)).root)
    stored_path = root / "recipe.yaml"
    stored_path.unlink()
    if damage == "a directory":
        stored_path.mkdir()
    else:
        stored_path.write_bytes({"empty": b"", "not utf-8": b"\xff\xfe: [", "a list": b"- 1\n- 2\n"}[damage])
    expected = r"recipe\.yaml: not a (readable )?recipe"
    with pytest.raises(StoreError, match=expected + r".*the store's record of what it measures is damaged"):
        run_ablation(small_recipe(tmp_path))
    with pytest.raises(StoreError, match=expected):
        archive_store(root, tmp_path / "archive")
    with pytest.raises(ReportError, match=expected):
        load_ablation(root)


def test_one_ablation_per_store_at_a_time(tmp_path):
    store = AblationStore(tmp_path / "store")
    with store.lock():
        with pytest.raises(StoreError, match="another sigx ablate is running"):
            with store.lock():
                pass
