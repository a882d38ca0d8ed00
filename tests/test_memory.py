"""The memory plan of `sigx validate`: its weights, gradients and optimizer lines are the bytes a run holds, its
activations within 10% of what the forward pass saves for the backward pass (counted on CPU), and the CLI says
whether a run fits the stated GPU memory."""

import re
from pathlib import Path

import torch
from typer.testing import CliRunner

from sigx.cli import app
from sigx.config import load_recipe
from sigx.memory import measure_held, plan

RECIPES = Path(__file__).parent.parent / "recipes"


def test_the_plan_counts_what_a_run_of_the_demo_holds():
    for extra in ([], ["training.lora.r=8"]):
        recipe = load_recipe(RECIPES / "tiny.yaml", extra)
        estimate = {line.component: line.bytes for line in plan(recipe, prompt_tokens=16)}
        measured = measure_held(recipe, 16)
        assert estimate["weights"] + estimate.get("LoRA adapters", 0) == measured["weights"]
        assert estimate["gradients"] == measured["gradients"]
        assert estimate["optimizer (AdamW)"] == measured["optimizer (AdamW)"]
        # activations and logits together, against the saved tensors (measured ratios 0.92 and 1.04)
        assert 0.85 < (estimate["activations"] + estimate["logits"]) / measured["activations + logits"] < 1.15, extra


def test_validate_prints_the_plan_and_says_when_it_does_not_fit(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(RECIPES / "tiny.yaml"), "--gpu-memory", "0.1"])
    assert result.exit_code == 0, result.output
    assert "activations" in result.output and re.search(r"memory per GPU: [0-9.]+ GiB; does NOT fit 0.1 GiB",
                                                       result.output), result.output
    result = runner.invoke(app, ["validate", str(RECIPES / "tiny.yaml"), "--gpu-memory", "80"])
    assert "fits 80 GiB" in result.output
    result = runner.invoke(app, ["validate", str(RECIPES / "tiny.yaml"), "--set", f"model.name={tmp_path}"])
    assert result.exit_code == 0 and "memory plan: unknown (model.name:" in result.output
    result = runner.invoke(app, ["validate", str(RECIPES / "tiny.yaml"), "--set", "training.lora.r=4",
                                 "--set", "training.lora.target_modules=[qproj]"])  # the plan adds the adapters
    assert result.exit_code == 2 and "ok:" not in result.output and "Traceback" not in result.output
    assert result.output.startswith(f"error: {RECIPES / 'tiny.yaml'}: training.lora.target_modules: ['qproj'] "
                                    "matches no layer of the model"), result.output


def test_a_plan_for_n_processes_divides_what_fsdp2_shards():
    recipe = load_recipe(RECIPES / "tiny.yaml")
    one = {line.component: line.bytes for line in plan(recipe, 16)}
    two = {line.component: line.bytes for line in plan(recipe, 16, nproc=2)}
    for part in ("weights", "gradients", "optimizer (AdamW)", "activations", "logits"):  # each trains half the rows
        assert two[part] == one[part] / 2, part
    assert two["rollout KV cache"] == one["rollout KV cache"]  # every process samples the whole step
    assert two["rollout: gathered weights"] == one["weights"] / 2  # the other half, whole for the rollout
    split = {line.component: line.bytes for line in plan(load_recipe(RECIPES / "tiny.yaml", ["rollout.seeding=sample"]),
                                                         16, nproc=2)}
    assert split["rollout KV cache"] == one["rollout KV cache"] / 2  # each process samples half the groups


def test_on_a_gpu_the_plan_is_weighed_against_the_gpus_free_memory_and_only_for_one_process(tmp_path, monkeypatch):
    """With a GPU, what the run puts on it (not host memory) is compared with the free memory CUDA reports; a run
    of several processes is not asked about (asking would put a CUDA context on GPU 0 for each of them)."""
    import yaml

    from sigx import memory
    from sigx.memory import gpu_total

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "hardening"))
    from hardening_fixtures import tiny_data

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_data(tmp_path)))
    recipe = load_recipe(path)
    need = gpu_total(plan(recipe, prompt_tokens=0))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(memory, "available_host_memory", lambda: 0)  # not what a GPU run is weighed against
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (int(need), 80 * 2**30))
    assert memory.shortfall(recipe) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (int(need) - 1, 80 * 2**30))
    assert memory.shortfall(recipe).startswith(f"by sigx's memory plan this run needs at least {need / 2**30:,.1f} "
                                               f"GiB and the GPU has {(need - 1) / 2**30:,.1f} GiB free")
    assert memory.shortfall(recipe, processes=2) is None and memory.shortfall(recipe, nproc=2) is None


def test_a_run_this_machine_cannot_hold_is_warned_of_once_and_still_runs(tmp_path, monkeypatch):
    """On a CPU an oversized run is killed by the kernel with no message (Linux overcommits): `sigx train` and
    `sigx ablate` say first that the plan, at its lower bound (prompts of no tokens), exceeds the memory
    available, times the processes that will hold it side by side; they still run (the plan is an estimate)."""
    import yaml

    from sigx import memory

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "hardening"))
    from hardening_fixtures import tiny_data

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU's path, also on a machine with a GPU
    data = tiny_data(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    recipe = load_recipe(path)
    need = sum(line.bytes for line in plan(recipe, prompt_tokens=0))
    monkeypatch.setattr(memory, "available_host_memory", lambda: int(need))  # just enough: no word
    assert memory.shortfall(recipe) is None
    monkeypatch.setattr(memory, "available_host_memory", lambda: int(need) - 1)
    line = memory.shortfall(recipe)
    assert line.startswith(f"by sigx's memory plan this run needs at least {need / 2**30:,.1f} GiB and this "
                           "machine has 0.0 GiB free (its largest part: ") and "`sigx validate` shows the plan" in line
    assert f"{2 * need / 2**30:,.1f} GiB (2 processes)" in memory.shortfall(recipe, processes=2)
    monkeypatch.setattr(memory, "available_host_memory", lambda: None)  # not Linux: nothing to compare
    assert memory.shortfall(recipe) is None

    monkeypatch.setattr(memory, "available_host_memory", lambda: 1024)
    result = CliRunner().invoke(app, ["train", str(path)])
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: by sigx's memory plan")]
    assert result.exit_code == 0 and len(warnings) == 1, result.output
    assert (tmp_path / "runs" / "hard" / "baseline" / "seed0" / "summary.json").is_file()
    result = CliRunner().invoke(app, ["ablate", str(path), "--workers", "2", "--dry-run"])
    assert "warning: by sigx's memory plan" not in result.output  # a dry run runs nothing
    result = CliRunner().invoke(app, ["ablate", str(path)])
    assert result.exit_code == 0 and result.output.count("warning: by sigx's memory plan") == 1, result.output
