"""The executors (local workers, Ray, Slurm through submitit): kill -9 and the same command resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablation_fixtures import SMALL, small_recipe, summaries, write_recipe
from sigx.ablation.plan import expand
from sigx.ablation.runner import run_ablation
from sigx.cli import app
from sigx.config import load_recipe
from sigx.runs import read_jsonl


# ------------------------------------------------------------------------------------------------ executors
def test_ray_executor_runs_cells_as_tasks_reusing_engines(tmp_path):
    pytest.importorskip("ray")
    outcome = run_ablation(small_recipe(tmp_path, seeds=[0, 1], executor="ray", ray={"cpus_per_cell": 1}))
    assert outcome.count("done") == 8
    pids = [r["pid"] for r in outcome.results]
    assert len(set(pids)) < len(pids)  # Ray worker processes are reused, each with its shared engine
    assert max(r["engine_cells"] for r in outcome.results) >= 2


def test_ray_cells_across_more_nodes_than_the_cluster_has_is_one_line(tmp_path, monkeypatch):
    """The default (no ray.address) starts its own local cluster, even where another was started on this machine
    last (here one of 2 nodes: Ray's own default would join it, and run there)."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from sigx.ablation.store import StoreError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    other = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    other.add_node(num_cpus=1)
    try:
        with pytest.raises(StoreError, match=r"^ablation.ray.nodes_per_cell: each cell asks for 2 nodes; the "
                                             r"cluster has 1$"):
            run_ablation(small_recipe(tmp_path, seeds=[0], executor="ray", ray={"nodes_per_cell": 2}))
    finally:
        other.shutdown()
    assert not list((tmp_path).rglob("summary.json"))  # nothing ran


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
    assert len(errors) == 1 and f"model.name: cannot load '{empty}': a directory without config.json, not a " \
        "saved model; name a model directory" in errors[0], result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------ slurm
SLURM_LOCAL = {"executor": "slurm", "slurm": {"local": True, "cpus_per_cell": 1}}


def test_the_slurm_executor_runs_each_cell_as_a_job(tmp_path):
    pytest.importorskip("submitit")
    outcome = run_ablation(small_recipe(tmp_path, factors=["sspo"], seeds=[0], **SLURM_LOCAL))
    assert outcome.count("done") == 2 and len(outcome.results) == 2
    jobs = json.loads((Path(outcome.root) / ".slurm" / "jobs.json").read_text())
    assert sorted(jobs) == sorted(c.id for c in outcome.cells)
    assert len({r["pid"] for r in outcome.results}) == 2  # one job (process) per cell


def _job_processes(root: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
    return out.stdout.split()


def test_slurm_kill_minus_nine_then_same_command_resumes_with_no_duplicate_and_no_missing_cell(tmp_path):
    pytest.importorskip("submitit")
    path = write_recipe(tmp_path, {"training": {**SMALL["training"], "steps": 12, "eval_every": 4,
                                                "checkpoint_every": 2}}, factors=["sspo"], seeds=[0],
                        **SLURM_LOCAL)  # 2 cells, each a job: a process start (~10 s of imports) per cell and launch
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


def test_more_local_workers_than_devices_is_said_before_they_start():
    """Workers beyond the GPUs take turns; beyond the CPU cores (no GPU) they share the cores at one thread each,
    so the ablation is no faster and each holds its own model: both said in one line, nothing when they fit."""
    from sigx.ablation.launchers.local import sharing_warning

    assert sharing_warning(2, 0, 2) is None and sharing_warning(4, 4, 2) is None
    assert sharing_warning(3, 0, 2) == ("3 workers on 2 CPU core(s): each gets 1 thread and they share the cores "
                                        "(no faster than --workers 2; each holds its own model in memory)")
    assert sharing_warning(5, 4, 64) == "5 workers on 4 GPU(s): workers share GPUs round-robin"
