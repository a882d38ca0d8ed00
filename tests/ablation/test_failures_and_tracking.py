"""Failed cells recorded and retried, and each cell's W&B metadata."""

import json
from pathlib import Path

from ablation_fixtures import small_recipe, summaries
from sigx.ablation.runner import run_ablation


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


def test_a_log_file_gets_one_utc_line_per_finished_cell_failures_counted():
    """Written to a file (no bars), each finished cell is one line stamped in UTC (sittings on machines in other
    time zones line up); the count says how many of the finished cells failed; no cell's numbers appear."""
    import io
    import re

    from rich.console import Console

    from sigx.ablation.display import AblationProgress

    log = io.StringIO()
    with AblationProgress(Console(file=log, width=200), total=3, already_done=0, steps_per_cell=4) as progress:
        progress.finished({"cell": "sspo/seed0", "status": "failed", "error": "RuntimeError: boom"})
        progress.finished({"cell": "baseline/seed0", "status": "done", "wall_s": 12.4, "final_reward": 0.5})
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
    lines = [line for line in log.getvalue().splitlines() if re.match(stamp, line)]
    assert len(lines) == 2, log.getvalue()
    assert re.fullmatch(stamp + r"failed sspo/seed0: RuntimeError: boom", lines[0])
    assert re.fullmatch(stamp + r"finished baseline/seed0 \(2/3 cells finished, 1 of them failed; 12 s\)", lines[1])
    assert "0.5" not in log.getvalue()
