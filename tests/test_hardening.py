"""Bad input, end to end through the CLI: every case ends with a non-zero exit and one `error:` line that names
the file or field and what is allowed, no traceback, and nothing written outside the run / report directory."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sigx.cli import app
from sigx.runs import write_json_atomic

TINY = Path(__file__).parent.parent / "recipes" / "tiny.yaml"
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] + [
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdef", "bcdefg")]) + "\n"

# (file name, contents as text or bytes, what the single error line must contain)
RECIPES = [
    ("syntax.yaml", "training: {lr: 1e-4\n", "invalid YAML"),
    ("tabs.yaml", "training:\n\t lr: 1\n", "invalid YAML"),
    ("control.yaml", "name: x\n\x07\n", "control.yaml: character 9: invalid YAML: unacceptable character #x0007"),
    ("list.yaml", "- a\n- b\n", "must be a mapping of sections"),
    ("scalar.yaml", "42\n", "must be a mapping of sections"),
    ("unknown.yaml", "trainig: {lr: 1e-4}\n", "trainig: unknown field; allowed: name, seed"),
    ("unknown2.yaml", "training: {lrr: 1e-4}\n", "training.lrr: unknown field; allowed: steps, lr"),
    ("type.yaml", "training: {steps: many}\n", "training.steps: Input should be a valid integer"),
    ("negative.yaml", "training: {steps: -3}\n", "training.steps: Input should be greater than or equal to 1"),
    ("bool-lr.yaml", "training: {lr: true}\n", "training.lr: expected a number, got a boolean (true)"),
    ("bool-seed.yaml", "seed: yes\n", "seed: expected a number, got a boolean"),
    ("inf-lr.yaml", "training: {lr: .inf}\n", "training.lr: Input should be a finite number"),
    ("nan-temp.yaml", "rollout: {temperature: .nan}\n", "rollout.temperature: Input should be a finite number"),
    ("inf-temp.yaml", "rollout: {temperature: .inf}\n", "rollout.temperature: Input should be a finite number"),
    ("dup.yaml", "training:\n  lr: 1e-4\n  lr: 2e-4\n", "duplicate key 'lr' (first on line 2)"),
    ("empty.yaml", "", "empty recipe"),
    ("comments.yaml", "# nothing but a comment\n", "empty recipe"),
    ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ("bomb.yaml", BOMB, "aliases expand to more than"),
    ("longname.yaml", "name: " + "x" * 300 + "\n", "name: String should have at most 100 characters"),
    ("badname.yaml", "name: ../../etc\n", "name: String should match pattern"),
    ("bigseed.yaml", f"seed: {2**63}\n", "seed: 922337203685... is beyond a 64-bit integer (at most 9223372036854775807)"),
    ("negseed.yaml", "seed: -1\n", "seed: Input should be greater than or equal to 0"),
    ("task.yaml", "task: {name: chess}\n", "task: unknown task 'chess'; allowed: arithmetic, search, gsm8k"),
    ("backend.yaml", "rollout: {backend: sglang}\n", "rollout.backend: unknown rollout backend 'sglang'; allowed: hf,"),
    ("batch.yaml", "training: {mini_batches: 1000}\n", "exceeds the sequences per step"),
    ("ops.yaml", "task: {min_ops: 3, max_ops: 2}\n", "min_ops (3) must be <= max_ops (2)"),
    ("heads.yaml", "model: {tiny: {hidden_size: 100, num_heads: 3}}\n", "must be divisible by num_heads"),
    ("factor.yaml", "ablation: {factors: [sspo, dpo]}\n", "ablation.factors.1: unknown technique 'dpo'"),
    ("factor-field.yaml", "ablation: {factors: [sspo, {training.lrr: [1, 2]}]}\n", "training.lrr: unknown field"),
    ("factor-engine.yaml", "ablation: {factors: [sspo, {rollout.backend: [hf, vllm]}]}\n", "except the rollout engine's"),
    ("factor-level.yaml", "ablation: {factors: [sspo, {training.lr: [1.0e-4, 0]}]}\n", "level 0: training.lr"),
    ("fraction.yaml", "ablation: {factors: [sspo, sorl, gcrl, search_p1], fraction: 1}\n", "allowed for 4 factors: 0"),
    ("seeds.yaml", "ablation: {seeds: [1, 1]}\n", "seeds must not repeat"),
    ("technique.yaml", "techniques: {sspo: {tau_pos: 0}}\n", "techniques.sspo.tau_pos: Input should be greater than 0"),
    ("judge.yaml", "techniques: {search_p1: {judge: gpt}}\n", "techniques.search_p1.judge: Input should be 'rules' or 'llm'"),
    ("gcrl.yaml", "techniques: {gcrl: {critique_groups: batch}}\n", "techniques.gcrl.critique_groups"),
    ("ray.yaml", "ablation: {ray: {address: 'head'}}\n",
     "ablation.ray.address: 'head' is not a Ray address; allowed: auto, local, HOST:PORT, ray://HOST[:PORT]"),
    ("ray-port.yaml", "ablation: {ray: {address: 'ray://head:99999'}}\n", "'ray://head:99999' is not a Ray address"),
]


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning:")]
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("name, contents, expected", RECIPES, ids=[r[0] for r in RECIPES])
def test_a_malformed_recipe_is_one_line_naming_file_and_field(name, contents, expected, tmp_path, cwd):
    path = tmp_path / name
    path.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    line = one_error_line(CliRunner().invoke(app, ["validate", str(path)]))
    assert str(path) in line and expected in line, line


CLI = [
    (["train", str(TINY), "--enable", ""], "--enable: no technique named"),
    (["train", str(TINY), "--enable", "sspo,dpo"], "--enable: unknown technique dpo; allowed"),
    (["train", str(TINY), "--set", "training.lr"], "--set training.lr: expected KEY=VALUE"),
    (["train", str(TINY), "--set", "training..lr=1"], "malformed key"),
    (["train", str(TINY), "--set", "training.lr.x=1"], "--set training.lr.x=1: lr is a value, not a section"),
    (["train", str(TINY), "--set", "training.lr=true"], "training.lr: expected a number, got a boolean"),
    (["train", "missing.yaml"], "missing.yaml: no such recipe file"),
    (["validate", "."], ".: is a directory; name a recipe file"),
    (["ablate", str(TINY), "--dry-run", "--restore-from", "nowhere"], "nowhere: not a directory; name an archive"),
    (["validate", str(TINY), "--set", "seed=99999999999999999999"], "seed: 999999999999... is beyond a 64-bit integer"),
    (["ablate", str(TINY), "--executor", "slurmm"], "ablation.executor"),
    (["ablate", str(TINY), "--workers", "0"], "ablation.workers"),
    (["ablate", str(TINY), "--executor", "ray", "--address", "a: b"],
     "ablation.ray.address: 'a: b' is not a Ray address"),
    (["report", "--metric", "../loss", "nowhere"], "--metric: '../loss' is not a summary key"),
    (["report", "--format", "pdf", "nowhere"], "--format: unknown format pdf"),
    (["report", "--margin", "0", "nowhere"], "--margin: must be in (0, 1]"),
    (["report", "nowhere"], "nowhere: not a directory"),
    (["report", "nowhere", "--out", str(TINY)], f"--out {TINY}: {TINY} exists and is not a directory"),
    (["compare", "a", "b", "--out", f"{TINY}/x"], f"--out {TINY}/x: {TINY} exists and is not a directory"),
]


@pytest.mark.parametrize("args, expected", CLI, ids=[" ".join(a[:3]) for a, _ in CLI])
def test_bad_command_line_arguments_are_one_line(args, expected, cwd):
    line = one_error_line(CliRunner().invoke(app, args))
    assert expected in line, line


def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, cwd):
    target = tmp_path / "afile"
    target.write_text("x")
    line = one_error_line(CliRunner().invoke(app, ["train", str(TINY), "--run-dir", str(target)]))
    assert f"--run-dir {target}: exists and is not a directory" in line


@pytest.mark.parametrize("contents, expected", [
    ({"notes.txt": "mine", "config.json": '{"lr": 1}'}, "holds what no sigx run writes (config.json (not a sigx "
                                                        "recipe), notes.txt); a run could overwrite it"),
    ({"config.json": "not json"}, "(config.json (not a sigx recipe))"),
    ({"config.json": '{"model": {}, "training": {}, "rollout": {}, "optimizer": {}}'},
     "(config.json (not a sigx recipe))"),
    ({"plan.json": "{}"}, "is an ablation store (it has a plan.json); a run needs a directory of its own"),
], ids=["project files", "torn config", "another tool's config with sigx's three sections", "a store"])
def test_a_run_dir_holding_what_no_run_writes_is_refused_and_left_untouched(contents, expected, tmp_path, cwd):
    """A run writes config.json, metrics.jsonl and summary.json: into a folder of someone else's files it would
    overwrite theirs without a word (as HF Trainer refuses a non-empty output_dir), so sigx refuses it."""
    target = tmp_path / "project"
    target.mkdir()
    for name, text in contents.items():
        (target / name).write_text(text)
    line = one_error_line(CliRunner().invoke(app, ["train", str(TINY), "--run-dir", str(target)]))
    assert f"--run-dir {target}: " in line and expected in line, line
    assert {p.name: p.read_text() for p in target.iterdir()} == contents


def test_a_run_dir_of_a_run_is_accepted(tmp_path):
    """What a run leaves (its files, checkpoint and shards, saved model, W&B folder, lock, a killed write's
    temporaries) is not foreign: --fresh and resuming write into it."""
    from sigx.config import Recipe
    from sigx.runs import foreign_entries

    run = tmp_path / "run"
    for name in ("metrics.jsonl", "summary.json", "checkpoint.pt", ".lock", ".summary.json.ab12",
                 ".checkpoint.pt.x9"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("")
    for name in ("model", "wandb", "checkpoint.shards.20"):
        (run / name).mkdir()
    write_json_atomic(run / "config.json", {"model": {}, "training": {}, "rollout": {}, "name": "tiny"})
    assert foreign_entries(run, frozenset(Recipe.model_fields)) == []


def test_what_a_killed_write_leaves_is_the_runs_own(tmp_path, monkeypatch):
    """The temporaries that the run's writers themselves leave when a kill falls between writing and renaming
    (the checkpoint's and a JSON file's), not names typed here: were either writer's naming to change without
    the --run-dir check, a resumed run's own folder would be refused."""
    import shutil

    from sigx.checkpoint import Checkpoints
    from sigx.config import Recipe
    from sigx.runs import foreign_entries

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(os, "replace", shutil.copyfile)  # the file is written, the temporary never renamed
    write_json_atomic(run / "summary.json", {"status": "running"})
    Checkpoints(run, every=1, config={}).save(1, {}, [], 0.0)
    monkeypatch.undo()
    assert sorted(p.name[:14] for p in run.iterdir()) == [".checkpoint.pt", ".summary.json.", "checkpoint.pt",
                                                          "summary.json"]
    assert foreign_entries(run, frozenset(Recipe.model_fields)) == []


def store(root: Path, plan=None, summary=None, metrics=None) -> Path:
    """A one-cell run store, its plan / summary / metrics replaced by what the case gives."""
    cell = {"id": "baseline/seed0", "combination": "baseline", "factors_on": [], "techniques": [], "seed": 0}
    write_json_atomic(root / "plan.json", plan if plan is not None else
                      {"name": root.name, "factors": ["sspo"], "seeds": [0], "cells": [cell]})
    run = root / "baseline" / "seed0"
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "summary.json", summary if summary is not None else
                      {"status": "completed", "final_reward": 0.5, "reward_auc": 0.5})
    (run / "metrics.jsonl").write_text(metrics if metrics is not None else '{"step": 0, "eval/reward": 0.5}\n')
    return root


BAD_STORES = [
    ({"plan": ["not", "an", "object"]}, "plan.json: not a sigx plan"),
    ({"plan": {"factors": "sspo", "cells": []}}, "plan.json: not a sigx plan"),
    ({"plan": {"name": "../../x", "factors": ["sspo"], "cells": []}}, "name '../../x' is not a recipe name"),
    ({"plan": {"factors": ["sspo"], "cells": [{"id": "../../x/seed0", "combination": "b", "seed": 0,
                                                "factors_on": []}]}}, "is not <combination>/seed<k> inside the store"),
    ({"plan": {"factors": ["sspo"], "cells": [{"id": "a/seed0", "seed": "zero", "combination": "a",
                                                "factors_on": []}]}}, "cells[0] lacks an id, combination, seed"),
    ({"plan": {"factors": [3], "cells": []}}, "factors[0] is neither a technique name nor a factor object"),
    ({"plan": {"factors": [], "cells": [{"id": "a/seed0", "seed": 0, "combination": "a", "factors_on": []}]}},
     "plan.json: its 'factors' list is empty; a sigx plan has at least one factor and one cell"),
    ({"plan": {"factors": ["sspo"], "cells": []}}, "plan.json: its 'cells' list is empty"),
    ({"plan": {"factors": ["sspo"], "cells": [{"id": "a/seed0", "seed": 0, "combination": "a", "factors_on": []}],
               "design": {"description": "full"}}}, "plan.json: design.description is not a list of text lines"),
    ({"plan": {"factors": ["sspo"], "cells": [{"id": "a/seed0", "seed": 0, "combination": "a", "factors_on": []}],
               "design": {"fraction": "half"}}}, "plan.json: design.fraction or design.resolution is not a whole"),
]


@pytest.mark.parametrize("case, expected", BAD_STORES, ids=[e for _, e in BAD_STORES])
def test_a_corrupted_run_store_is_one_line(case, expected, tmp_path, cwd):
    root = store(tmp_path / "abl", **case)
    line = one_error_line(CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "out")]))
    assert expected in line, line
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("case", [{"summary": ["a", "list"]}, {"summary": {"status": "completed", "final_reward": "high"}},
                                  {"metrics": '["not a row"]\n{"step": "zero"}\n{"step": 1, "eval/reward": "x"}\n'}])
def test_wrong_shaped_cell_files_are_reported_not_crashed_on(case, tmp_path, cwd):
    root = store(tmp_path / "abl", **case)
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "out"), "--format", "json"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


def test_an_out_directory_that_is_a_file_or_read_only_is_one_line(tmp_path, cwd):
    root = store(tmp_path / "abl")
    (tmp_path / "outfile").write_text("x")
    line = one_error_line(CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "outfile")]))
    assert "outfile" in line
    if os.geteuid() != 0:  # root writes anywhere: the read-only case needs an ordinary user
        (tmp_path / "ro").mkdir(mode=0o500)
        line = one_error_line(CliRunner().invoke(app, ["report", str(root), "--out", str(tmp_path / "ro")]))
        assert "ro" in line and "Permission denied" in line


def test_p_values_keep_their_precision_in_report_json(tmp_path):
    from sigx.report.render import _records
    import pandas as pd

    (row,) = _records(pd.DataFrame({"p": [1e-20], "q": [float("nan")]}))
    assert row == {"p": 1e-20, "q": None}


@pytest.mark.parametrize("lines, expected", [
    ('{"question": "q", "answer": "#### 1"}\nnot json\n', "train.jsonl line 2: not a JSON object"),
    ('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n', "row 2 has no 'answer'"),
    ('[1, 2]\n', "train.jsonl line 1: not a JSON object"),
    ('{"question": "q", "answer": "#### 1", "reference_path": {"a": 1}}\n',  # was read as the step "a"
     "row 1: column reference_path is dict {\"a\": 1}, not a list"),
])
def test_a_malformed_gsm8k_file_is_one_line(lines, expected, tmp_path, cwd):
    data = tmp_path / "gsm8k"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text(lines)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: {{name: gsm8k, path: {data}}}\nlogging: {{wandb: disabled}}\n")
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(tmp_path / "run")]))
    assert expected in line, line


def test_two_trainings_into_one_run_dir_are_kept_apart(tmp_path):
    from sigx.config import RecipeError
    from sigx.train import run_lock

    with run_lock(tmp_path / "run"):
        with pytest.raises(RecipeError, match="another sigx train is writing this run"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released with its holder
        pass


def test_a_damaged_finished_cell_is_set_aside_and_run_again(tmp_path):
    from sigx.ablation.runner import run_ablation
    from sigx.config import recipe_from_data

    recipe = recipe_from_data({
        "name": "stuck", "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                                            "intermediate_size": 64, "sft_steps": 5}},
        "task": {"eval_prompts": 4}, "rollout": {"group_size": 2, "max_new_tokens": 16},
        "training": {"steps": 2, "prompts_per_step": 2, "eval_every": 2, "eval_samples": 1},
        "ablation": {"factors": ["sspo"], "seeds": [0], "output_dir": str(tmp_path / "ablations")},
        "logging": {"wandb": "disabled"}})
    first = run_ablation(recipe)
    summary = Path(first.root) / "sspo" / "seed0" / "summary.json"
    summary.write_text(summary.read_text()[:20])  # truncated after the fact
    second = run_ablation(recipe)
    assert second.count("done") == 2 and [r["cell"] for r in second.results] == ["sspo/seed0"]
    assert json.loads(summary.read_text())["status"] == "completed"
    assert list((Path(first.root) / ".failed").glob("sspo__seed0.unreadable.*"))


def test_a_read_only_model_cache_that_holds_the_model_is_used(tmp_path, monkeypatch):
    from sigx.config import TinyModelConfig, ArithmeticTaskConfig
    from sigx.models.tiny import ensure_tiny_base, tiny_cache_key
    from sigx.tasks.arithmetic import ArithmeticTask

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    config = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                             sft_steps=0)
    task_config = ArithmeticTaskConfig()
    built = ensure_tiny_base(config, ArithmeticTask(task_config), task_config, log=lambda m: None)
    for lock in (tmp_path / "cache" / "tiny").glob("*.lock"):
        lock.unlink()
    (tmp_path / "cache" / "tiny").chmod(0o500)
    try:
        assert ensure_tiny_base(config, ArithmeticTask(task_config), task_config, log=lambda m: None) == built
    finally:
        (tmp_path / "cache" / "tiny").chmod(0o700)
    # held-out settings are not part of the warm start: changing them reuses the model
    assert tiny_cache_key(config, ArithmeticTaskConfig(eval_prompts=7, seed=5)) == tiny_cache_key(config, task_config)
    assert tiny_cache_key(config, ArithmeticTaskConfig(max_ops=4)) != tiny_cache_key(config, task_config)


@pytest.mark.parametrize("damage", ["truncated weights", "cut weights", "broken tokenizer"])
def test_a_damaged_cached_warm_start_is_one_line_saying_how_to_rebuild_it(damage, tmp_path, monkeypatch, cwd):
    """A truncated safetensors file raised safetensors' own error (no OSError): a traceback."""
    from sigx.config import ArithmeticTaskConfig, ModelConfig, RecipeError, TinyModelConfig
    from sigx.models.loading import load_base
    from sigx.models.tiny import ensure_tiny_base
    from sigx.tasks.arithmetic import ArithmeticTask

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    config = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                             sft_steps=0)
    task_config = ArithmeticTaskConfig()
    built = ensure_tiny_base(config, ArithmeticTask(task_config), task_config, log=lambda m: None)
    weights = built / "model.safetensors"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])  # the header's length points past the end
    elif damage == "cut weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (built / "tokenizer.json").write_text("{")
    with pytest.raises(RecipeError) as err:
        load_base(ModelConfig(tiny=config), ArithmeticTask(task_config), task_config, log=lambda m: None)
    (line,) = err.value.problems
    assert line.startswith(f"model.name: cannot load {str(built)!r}: ") and "\n" not in line
    assert line.endswith(f"; the cached warm start is damaged: remove {built} and sigx builds it again")


def test_a_ray_address_in_each_form_ray_connects_to_is_accepted(cwd):
    """auto, local, HOST:PORT (IPv4, a name, [IPv6]) and ray://HOST[:PORT], given on the command line as they are
    (an IPv6 head's brackets are not read as YAML)."""
    for address in ["auto", "local", "10.0.0.1:6379", "head-0:6379", "[::1]:6379", "ray://head:10001", "ray://head"]:
        result = CliRunner().invoke(app, ["ablate", str(TINY), "--dry-run", "--executor", "ray", "--address", address])
        assert result.exit_code == 0, (address, result.output)
