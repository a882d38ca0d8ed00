"""`sigx ablate`: the plan, the run store, failures, W&B metadata, the executors, and kill -9 + resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sigx.ablation.plan import expand
from sigx.ablation.runner import run_ablation
from sigx.ablation.store import AblationStore, StoreError
from sigx.cli import app
from sigx.config import RecipeError, load_recipe, recipe_from_data
from sigx.runs import read_jsonl

RECIPES = Path(__file__).parent.parent / "recipes"

# A very small model and very short runs: a cell takes about a second, so the store logic is what is tested.
SMALL = {
    "name": "abl-test",
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                       "intermediate_size": 64, "sft_steps": 20}},
    "task": {"name": "arithmetic", "eval_prompts": 8},
    "rollout": {"group_size": 2, "max_new_tokens": 24},
    "training": {"steps": 3, "prompts_per_step": 2, "eval_every": 3, "eval_samples": 1},
    "ablation": {"factors": ["sspo", "sorl"], "seeds": [0]},
    "logging": {"wandb": "disabled"},
}


def small_recipe(tmp_path, **ablation):
    data = json.loads(json.dumps(SMALL))
    data["ablation"].update(output_dir=str(tmp_path / "ablations"), **ablation)
    return recipe_from_data(data)


def write_recipe(tmp_path, data_overrides=None, **ablation) -> Path:
    data = json.loads(json.dumps(SMALL))
    data["ablation"].update(output_dir=str(tmp_path / "ablations"), **ablation)
    data.update(data_overrides or {})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def summaries(root: Path) -> dict[str, str]:
    """cell id -> summary.json text, for every published cell."""
    return {str(p.parent.relative_to(root)): p.read_text() for p in root.glob("*/seed*/summary.json")}


# ------------------------------------------------------------------------------------------------ plan
def test_demo_recipe_expands_to_sixteen_cells_times_three_seeds():
    cells = expand(load_recipe(RECIPES / "tiny.yaml"))
    assert len(cells) == 48 and len({c.id for c in cells}) == 48
    assert cells[0].id == "baseline/seed0" and cells[-1].id == "search_p1+gcrl+sspo+sorl/seed2"
    combos = {c.combination for c in cells}
    assert len(combos) == 16
    for combo in combos:
        assert sorted(c.seed for c in cells if c.combination == combo) == [0, 1, 2]
    gs = next(c for c in cells if c.id == "gcrl+sspo/seed1")
    assert gs.recipe.seed == 1 and gs.recipe.techniques.enabled_names() == ["gcrl", "sspo"]


def test_non_factor_techniques_stay_as_the_recipe_sets_them(tmp_path):
    data = json.loads(json.dumps(SMALL))
    data["techniques"] = {"gcrl": {"enabled": True}}
    cells = expand(recipe_from_data(data))
    assert [c.id for c in cells] == ["gcrl/seed0", "gcrl+sspo/seed0", "gcrl+sorl/seed0", "gcrl+sspo+sorl/seed0"]
    assert [c.factors_on for c in cells] == [(), ("sspo",), ("sorl",), ("sspo", "sorl")]


def test_bad_ablation_sections_name_the_field():
    for ablation, field in [({"factors": ["sspo", "dpo"]}, "ablation.factors.1"),
                            ({"seeds": [1, 1]}, "ablation: seeds must not repeat"),
                            ({"executor": "kubernetes"}, "ablation.executor"), ({"workers": 0}, "ablation.workers")]:
        with pytest.raises(RecipeError) as err:
            recipe_from_data({"ablation": ablation})
        assert field in str(err.value), (ablation, str(err.value))


def test_a_recipe_field_is_a_factor_with_two_levels_and_readable_cell_names(tmp_path):
    recipe = small_recipe(tmp_path, factors=["sspo", {"rollout.staleness": [0, 2]},
                                             {"field": "training.lr", "levels": [1e-4, 2e-5], "role": "control"}])
    cells = expand(recipe)  # sspo x staleness crossed; the positive control beside the baseline only
    assert [c.id for c in cells] == ["baseline/seed0", "sspo/seed0", "staleness=2/seed0", "sspo+staleness=2/seed0",
                                     "lr=2e-05/seed0"]
    stale = next(c for c in cells if c.id == "sspo+staleness=2/seed0")
    assert stale.recipe.rollout.staleness == 2 and stale.recipe.training.lr == 1e-4 and stale.techniques == ("sspo",)
    assert stale.factors_on == ("sspo", "staleness")
    assert next(c for c in cells if c.id == "lr=2e-05/seed0").recipe.training.lr == 2e-5


def test_a_fractional_design_runs_half_the_cells_baseline_included(tmp_path):
    factors = ["search_p1", "gcrl", "sspo", "sorl", {"rollout.staleness": [0, 2]}]
    cells = expand(small_recipe(tmp_path, factors=factors, fraction=1))
    assert len(cells) == 16 and cells[0].id == "baseline/seed0"
    # resolution V: every pair of factors appears at all four level combinations, equally often
    for a, b in [("search_p1", "gcrl"), ("sspo", "staleness"), ("gcrl", "staleness")]:
        counts = {(a in c.factors_on, b in c.factors_on) for c in cells}
        assert len(counts) == 4
    with pytest.raises(RecipeError, match="fraction 1: .*resolution IV.*allowed for 4 factors: 0"):
        small_recipe(tmp_path, factors=["search_p1", "gcrl", "sspo", "sorl"], fraction=1)


def test_dry_run_of_a_fraction_prints_its_design_and_aliases(tmp_path):
    path = write_recipe(tmp_path, factors=["search_p1", "gcrl", "sspo", "sorl", {"rollout.staleness": [0, 2]}],
                        fraction=1)
    result = CliRunner().invoke(app, ["ablate", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2^(5-1) x 1 seed(s) = 16 cells" in result.output
    assert "resolution V" in result.output and "generator: staleness = -search_p1·gcrl·sspo·sorl" in result.output
    assert "sspo x staleness = search_p1 x gcrl x sorl" in result.output


@pytest.mark.parametrize("factor, message", [
    ({"rollout.backend": ["hf", "hf_synced"]}, "except the rollout engine's"),
    ({"model.tiny.hidden_size": [32, 64]}, "a factor may vary rollout, training, techniques fields"),
    ({"training.lrr": [1, 2]}, "training.lrr: unknown field"),
    ({"training.lr": [1e-4, -1]}, "level -1: training.lr: Input should be greater than 0"),
    ({"rollout.staleness": [1, 1]}, "the two levels must differ"),
    ("dpo", "unknown technique 'dpo'; a factor is a technique"),
])
def test_bad_factors_are_one_line_errors_naming_the_factor(tmp_path, factor, message):
    with pytest.raises(RecipeError) as err:
        small_recipe(tmp_path, factors=["sspo", factor])
    (line,) = err.value.problems
    assert "ablation.factors.1" in line and message in line, line


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    path = write_recipe(tmp_path, seeds=[0, 1])
    result = CliRunner().invoke(app, ["ablate", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    for cell_id in ["baseline/seed0", "sspo+sorl/seed1"]:
        assert cell_id in result.output
    assert "8 cells: 0 done, 0 failed, 8 pending" in result.output
    assert not (tmp_path / "ablations").exists()


def test_cli_errors_are_one_line(tmp_path):
    path = write_recipe(tmp_path)
    result = CliRunner().invoke(app, ["ablate", str(path), "--executor", "kubernetes"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "ablation.executor" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------ store
def test_runs_every_cell_once_and_a_rerun_runs_nothing(tmp_path):
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


def test_one_ablation_per_store_at_a_time(tmp_path):
    store = AblationStore(tmp_path / "store")
    with store.lock():
        with pytest.raises(StoreError, match="another sigx ablate is running"):
            with store.lock():
                pass


# ------------------------------------------------------------------------------------------------ failures
def test_failed_cells_are_recorded_the_rest_continue_and_retry_reruns_only_them(tmp_path, monkeypatch):
    import sigx.engine.trainer as trainer

    real_step, real_aggregate = trainer.GRPOTrainer.step, trainer.aggregate_loss

    def step(self):
        if self.recipe.techniques.sorl.enabled and not self.recipe.techniques.sspo.enabled:
            raise RuntimeError("planted failure")
        return real_step(self)

    def aggregate(per_token, mask, how, trainer_self=None):
        return real_aggregate(per_token, mask, how) * float("nan")

    monkeypatch.setattr(trainer.GRPOTrainer, "step", step)
    recipe = small_recipe(tmp_path)
    outcome = run_ablation(recipe)
    root = Path(outcome.root)
    assert outcome.status == {"baseline/seed0": "done", "sspo/seed0": "done", "sorl/seed0": "failed",
                              "sspo+sorl/seed0": "done"}
    failed = json.loads((root / "sorl/seed0/summary.json").read_text())
    assert failed["error"] == "RuntimeError: planted failure" and "Traceback" in failed["traceback"]

    # a NaN loss is a failure too (the trainer refuses to step on it)
    monkeypatch.setattr(trainer.GRPOTrainer, "step", real_step)
    monkeypatch.setattr(trainer, "aggregate_loss", aggregate)
    recipe_nan = small_recipe(tmp_path / "nan", factors=["sspo"])
    # the barely trained model's groups may all tie, and rows with zero advantage get no forward at all
    recipe_nan.training.skip_zero_advantage = False
    nan_outcome = run_ablation(recipe_nan)
    assert nan_outcome.count("failed") == 2
    assert "NonFiniteLossError" in json.loads((Path(nan_outcome.root) / "sspo/seed0/summary.json").read_text())["error"]
    monkeypatch.setattr(trainer, "aggregate_loss", real_aggregate)

    before = summaries(root)
    assert run_ablation(recipe).results == []  # failed cells are kept, not silently re-run
    retried = run_ablation(recipe, retry_failed=True)
    assert [r["cell"] for r in retried.results] == ["sorl/seed0"] and retried.count("done") == 4
    after = summaries(root)
    assert {k: v for k, v in after.items() if k != "sorl/seed0"} == {k: v for k, v in before.items() if k != "sorl/seed0"}
    kept = list((root / ".failed").glob("sorl__seed0.*/summary.json"))
    assert len(kept) == 1 and "planted failure" in kept[0].read_text()


# ------------------------------------------------------------------------------------------------ W&B
def test_each_cell_is_tracked_with_group_name_tags_and_resolved_config(tmp_path, monkeypatch):
    import sigx.train

    calls = []

    class FakeTracker:
        def __init__(self, mode, project, run_dir, name, config, group=None, tags=None, job_type="train",
                     run_id=None, unreachable="stop", warn=None):
            calls.append(dict(mode=mode, name=name, group=group, tags=tags, job_type=job_type, config=config,
                              run_id=run_id))

        def log(self, row, step):
            pass

        def finish(self, summary=None, exit_code=0):
            pass

    monkeypatch.setattr(sigx.train, "Tracker", FakeTracker)
    recipe = small_recipe(tmp_path)
    recipe.logging.wandb = "offline"
    run_ablation(recipe)
    by_name = {c["name"]: c for c in calls}
    assert sorted(by_name) == ["baseline/seed0", "sorl/seed0", "sspo+sorl/seed0", "sspo/seed0"]
    call = by_name["sspo+sorl/seed0"]
    assert call["group"] == "abl-test" and call["tags"] == ["sspo", "sorl"] and call["job_type"] == "train"
    assert call["mode"] == "offline" and call["config"]["techniques"]["sorl"]["enabled"] is True
    assert by_name["baseline/seed0"]["tags"] == ["baseline"]
    assert len({c["run_id"] for c in calls}) == 4 and all(c["run_id"] for c in calls)  # one W&B run per cell


# ------------------------------------------------------------------------------------------------ executors
def test_ray_executor_runs_cells_as_tasks_reusing_engines(tmp_path):
    pytest.importorskip("ray")
    outcome = run_ablation(small_recipe(tmp_path, seeds=[0, 1], executor="ray", ray={"cpus_per_cell": 1}))
    assert outcome.count("done") == 8
    pids = [r["pid"] for r in outcome.results]
    assert len(set(pids)) < len(pids)  # Ray worker processes are reused, each with its shared engine
    assert max(r["engine_cells"] for r in outcome.results) >= 2


def _cli(path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sigx.cli", "ablate", str(path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"sigx ablate ended before the kill point:\n{proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail("kill point not reached")


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_minus_nine_then_same_command_resumes_with_no_duplicate_and_no_missing_cell(tmp_path, workers):
    path = write_recipe(tmp_path, {"training": {**SMALL["training"], "steps": 6, "eval_every": 2}},
                        seeds=[0, 1], workers=workers)
    root = tmp_path / "ablations" / "abl-test"
    staging = root / ".staging"

    def running_cell() -> bool:  # a cell in the middle of training: its metrics log has rows
        return any(p.stat().st_size > 0 for p in staging.glob("*/metrics.jsonl"))

    # kill 1: early, while the first cell trains; kill 2: later, with cells done and another mid-run
    for kill_point in [running_cell, lambda: len(summaries(root)) >= 3 and running_cell()]:
        proc = _cli(path)
        _wait_for(kill_point, 120, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, as `kill -9 <pid>` does
        proc.wait()
        deadline = time.time() + 10  # its worker processes die with it
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("worker processes outlived the killed sigx ablate")
    done_before = summaries(root)
    assert 3 <= len(done_before) < 8

    proc = _cli(path)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "8/8 cells done" in output
    after = summaries(root)
    assert sorted(after) == sorted(c.id for c in expand(load_recipe(path)))  # none missing, none extra
    assert {k: after[k] for k in done_before} == done_before  # finished cells were not re-run
    for cell_id in after:
        steps = [r["step"] for r in read_jsonl(root / cell_id / "metrics.jsonl")]
        assert steps == list(range(7)), (cell_id, steps)  # each step logged exactly once
    assert list(staging.iterdir()) == []
    resumed = read_jsonl(root / "sessions.jsonl")[-1]
    assert resumed["cells_run"] == 8 - len(done_before)


def test_a_cell_killed_after_a_checkpoint_resumes_from_it(tmp_path):
    path = write_recipe(tmp_path, {"training": {**SMALL["training"], "steps": 8, "eval_every": 4,
                                                "checkpoint_every": 2}})
    root = tmp_path / "ablations" / "abl-test"
    proc = _cli(path)
    _wait_for(lambda: any((root / ".staging").glob("*/checkpoint.pt")), 120, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = {p.parent.name.split(".")[0].replace("__", "/") for p in (root / ".staging").glob("*/checkpoint.pt")}

    proc = _cli(path)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    resumed = {cell: json.loads(text).get("resumed_from_step") for cell, text in summaries(root).items()}
    assert len(resumed) == 4 and interrupted
    for cell in interrupted:
        assert resumed[cell] in (2, 4, 6), (cell, resumed)  # from its checkpoint, not from step 0
        steps = [r["step"] for r in read_jsonl(root / cell / "metrics.jsonl")]
        assert steps == list(range(9)), (cell, steps)
        assert not (root / cell / "checkpoint.pt").exists()
    assert list((root / ".staging").iterdir()) == []


@pytest.mark.parametrize("executor", [{"workers": 1}, {"workers": 2}, {"executor": "ray"}])
def test_a_model_that_cannot_load_stops_the_ablation_with_one_line(tmp_path, executor):
    if executor.get("executor") == "ray":
        pytest.importorskip("ray")
    empty = tmp_path / "no-model"
    empty.mkdir()
    path = write_recipe(tmp_path, {"model": {"name": str(empty)}}, **executor)
    result = CliRunner().invoke(app, ["ablate", str(path)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"model.name: cannot load '{empty}'" in errors[0], result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------ slurm
SLURM_LOCAL = {"executor": "slurm", "slurm": {"local": True, "cpus_per_cell": 1}}


def test_the_slurm_executor_runs_each_cell_as_a_job(tmp_path):
    pytest.importorskip("submitit")
    outcome = run_ablation(small_recipe(tmp_path, seeds=[0], **SLURM_LOCAL))
    assert outcome.count("done") == 4 and len(outcome.results) == 4
    jobs = json.loads((Path(outcome.root) / ".slurm" / "jobs.json").read_text())
    assert sorted(jobs) == sorted(c.id for c in outcome.cells)
    assert len({r["pid"] for r in outcome.results}) == 4  # one job (process) per cell


def _job_processes(root: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
    return out.stdout.split()


def test_slurm_kill_minus_nine_then_same_command_resumes_with_no_duplicate_and_no_missing_cell(tmp_path):
    pytest.importorskip("submitit")
    path = write_recipe(tmp_path, {"training": {**SMALL["training"], "steps": 12, "eval_every": 4,
                                                "checkpoint_every": 2}}, seeds=[0, 1], **SLURM_LOCAL)
    root = tmp_path / "ablations" / "abl-test"
    proc = _cli(path)
    _wait_for(lambda: any((root / ".staging").glob("*/checkpoint.pt")), 120, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15  # local jobs end with the sigx ablate that launched them
    while _job_processes(root) and time.time() < deadline:
        time.sleep(0.2)
    assert not _job_processes(root), "local jobs outlived the killed sigx ablate"
    done_before = summaries(root)

    proc = _cli(path)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    after = summaries(root)
    assert sorted(after) == sorted(c.id for c in expand(load_recipe(path)))  # none missing, none extra
    assert {k: after[k] for k in done_before} == done_before
    resumed = [json.loads(t).get("resumed_from_step") for t in after.values()]
    assert any(step in (2, 4, 6, 8, 10) for step in resumed), resumed  # a cell resumed from its checkpoint
    for cell_id in after:
        steps = [r["step"] for r in read_jsonl(root / cell_id / "metrics.jsonl")]
        assert steps == list(range(13)), (cell_id, steps)


# ------------------------------------------------------------------------------------------------ sequential seeds
def test_until_resolved_runs_the_planned_looks_records_them_and_the_report_tests_at_alpha_over_looks(tmp_path):
    from sigx.ablation.looks import load_plan
    from sigx.ablation.sequential import run_until_resolved
    from sigx.report.load import load_ablation
    from sigx.report.stats import build_report

    undeclared = small_recipe(tmp_path, seeds=[0, 1])
    with pytest.raises(RecipeError, match="ablation.metric: --until-resolved stops on the declared metric"):
        run_until_resolved(undeclared, max_seeds=3)
    recipe = small_recipe(tmp_path, seeds=[0, 1], metric="final_reward", margin=0.5)
    outcome, last = run_until_resolved(recipe, max_seeds=4, step=1)
    plan = load_plan(Path(outcome.root))
    assert [len(s) for s in plan.schedule] == [2, 3, 4] and plan.alpha_per_look == pytest.approx(0.05 / 3)
    looks = [d["seeds"] for d in plan.looks_done]
    assert looks == list(range(2, last["seeds"] + 1))  # one record per look, in order, up to where it stopped
    assert last["stopped"] in ("every declared gap resolved", "the cap of 4 seeds reached")
    report = build_report(load_ablation(outcome.root))
    assert report.alpha == pytest.approx(0.05 / 3) and any("sequential seeds: 3 planned look(s)" in n for n in report.notes)
    assert report.declaration.startswith("Analysis: metric `final_reward` as declared")
    again, _ = run_until_resolved(recipe, max_seeds=4, step=1)  # resumed: the same looks, nothing new to run
    assert again.results == [] and load_plan(Path(outcome.root)).looks_done == plan.looks_done
    with pytest.raises(StoreError, match="fixed at the first look"):
        run_until_resolved(recipe, max_seeds=6, step=1)
