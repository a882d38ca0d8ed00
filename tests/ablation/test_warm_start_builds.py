"""A store's runs all start from one build of their warm start: a sigx/tiny warm start rebuilt on another machine
(other CPU kernels, other floating point) can have other weights under the same cache key, and a store continued
there would mix two base models. Each run records its build's digest; a store refuses a cell from another build;
the report names the builds."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ablation_fixtures import SMALL, small_recipe, write_recipe
from sigx.ablation.runner import run_ablation
from sigx.cli import app
from sigx.config import load_recipe
from sigx.models.tiny import warm_start_weights
from sigx.report.load import load_ablation
from sigx.report.build import build_report
from sigx.train import run_training


def fresh_process(monkeypatch):
    """What a new `sigx ablate` process has: no engine built yet (it would hold the old base in memory)."""
    from sigx.ablation import cell

    monkeypatch.setattr(cell, "_ENGINE", {"key": None, "engine": None, "setup_s": 0.0, "cells": 0})


def rebuild_elsewhere(base: Path) -> None:
    """What another machine's build of the same recipe looks like: the same cache key, other weights (one
    element off by a rounding's worth)."""
    weights = load_file(base / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] += 1e-6
    save_file(weights, base / "model.safetensors", metadata={"format": "pt"})


def test_the_digest_is_the_builds_weights_and_only_a_sigx_tiny_build_has_one(tmp_path):
    base = tmp_path / "tiny" / "abc"
    base.mkdir(parents=True)
    save_file({"w": torch.arange(4.0)}, base / "model.safetensors")
    assert warm_start_weights(base) is None  # no sigx_tiny.json: a user's own model, named by its path
    (base / "sigx_tiny.json").write_text("{}")
    first = warm_start_weights(base)
    assert len(first) == 16 and int(first, 16) >= 0
    save_file({"w": torch.arange(4.0) + 1e-6}, base / "model.safetensors")
    assert warm_start_weights(base) != first


def test_runs_record_their_build_and_the_machine_and_a_store_refuses_another_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    fresh_process(monkeypatch)
    root = Path(run_ablation(small_recipe(tmp_path, seeds=[0])).root)
    first = [json.loads(p.read_text()) for p in root.glob("*/seed0/summary.json")]
    assert len(first) == 4
    base = Path(first[0]["base"])
    digest = warm_start_weights(base)
    assert {s["base_weights"] for s in first} == {digest}
    assert all(s["provenance"]["cpu"] == torch.backends.cpu.get_cpu_capability() for s in first)

    rebuild_elsewhere(base)  # the store is continued on a machine whose build differs
    fresh_process(monkeypatch)
    result = CliRunner().invoke(app, ["ablate", str(write_recipe(tmp_path, seeds=[0, 1]))])
    message = result.output.splitlines()[-1]  # after the plan's table: the error, on one line
    assert result.exit_code == 2 and message.startswith("error: ") and "Traceback" not in result.output, result.output
    assert str(root) in message and f"4 finished run(s) started from the warm start {base.name} with weights " \
        f"{digest}" in message and f"this machine built it with weights {warm_start_weights(base)}" in message
    assert "$SIGX_CACHE/tiny/" in message, message
    assert not list(root.glob("*/seed1")), "no cell may run from the other build"

    fresh_process(monkeypatch)  # the same store where its build is (here: a rebuild from the recipe, as made)
    shutil.rmtree(base)
    outcome = run_ablation(small_recipe(tmp_path, seeds=[0, 1]))
    assert outcome.count("done") == 8 and len(outcome.results) == 4
    assert {json.loads(p.read_text())["base_weights"] for p in root.glob("*/seed*/summary.json")} == {digest}


def test_the_report_says_when_one_warm_start_came_in_two_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    fresh_process(monkeypatch)
    root = Path(run_ablation(small_recipe(tmp_path, seeds=[0, 1])).root)
    key = Path(json.loads(next(root.glob("*/seed0/summary.json")).read_text())["base"]).name
    line = build_report(load_ablation(root)).warm_start
    assert line.startswith(f"warm start: {key} (weights ") and line.endswith("(8 runs)"), line

    def relabel(seed: int, value):
        for path in root.glob(f"*/seed{seed}/summary.json"):
            summary = json.loads(path.read_text())
            summary["base_weights"] = value
            path.write_text(json.dumps(summary))

    relabel(1, "0123456789abcdef")  # seed 1's runs came from another machine's build
    line = build_report(load_ablation(root)).warm_start
    assert "(weights 0123456789abcdef) (4 runs)" in line and \
        f"{key}: built with different weights on different machines" in line, line

    relabel(1, None)  # older runs, recorded before the digest: nothing to compare, no claim either way
    line = build_report(load_ablation(root)).warm_start
    assert f"{key} (4 runs)" in line and "different weights" not in line, line


def test_an_archive_neither_takes_nor_restores_a_run_of_another_build(tmp_path, monkeypatch):
    """Moving cells between a store and an archive mixes no builds either: a store whose runs started from other
    weights than the archive's is refused before anything is written, and an archived run of another build is not
    restored into a store of this one (each with one line). A store that already holds two builds is archived as
    it is (the mixture is not made by the move, and the report names it)."""
    from sigx.ablation.archive import archive_store
    from sigx.ablation.store import StoreError

    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    fresh_process(monkeypatch)
    root = Path(run_ablation(small_recipe(tmp_path / "m1", seeds=[0, 1])).root)
    digest = json.loads(next(root.glob("*/seed0/summary.json")).read_text())["base_weights"]
    archive = tmp_path / "archive"

    def relabel(where: Path, seed: int, value):
        for path in sorted(where.glob(f"*/seed{seed}/summary.json")):
            summary = json.loads(path.read_text())
            summary["base_weights"] = value
            path.write_text(json.dumps(summary))

    shutil.copytree(root, tmp_path / "elsewhere")
    relabel(tmp_path / "elsewhere", 1, "0123456789abcdef")  # a store of two builds (made before sigx checked)
    archive_store(tmp_path / "elsewhere", archive)  # is kept as it is: the report names its two builds
    assert "built with different weights" in build_report(load_ablation(archive)).warm_start
    shutil.rmtree(archive)

    archive_store(root, archive)  # seeds 0 and 1, one build
    relabel(root, 0, "0123456789abcdef")  # the store, all of it, from another machine's build
    relabel(root, 1, "0123456789abcdef")
    for seed in (0, 1):
        shutil.rmtree(archive / "sspo" / f"seed{seed}")
    held = {str(p.relative_to(archive)): p.read_bytes() for p in archive.rglob("*") if p.is_file()}
    with pytest.raises(StoreError, match=r"sspo/seed0: started from the warm-start build with weights "
                                         rf"0123456789abcdef, and the 6 finished run\(s\) in the archive "
                                         rf"\S+archive started from weights {digest} \(.*\): archive this store to "
                                         r"another directory$"):
        archive_store(root, archive)
    assert held == {str(p.relative_to(archive)): p.read_bytes() for p in archive.rglob("*") if p.is_file()}, \
        "nothing written"

    archive_store(root, tmp_path / "other-build")  # its own archive takes it
    fresh_process(monkeypatch)
    store = Path(run_ablation(small_recipe(tmp_path / "m2", seeds=[0])).root)  # seed 0 run here, this build
    fresh_process(monkeypatch)
    with pytest.raises(StoreError, match=r"seed1: started from the warm-start build with weights 0123456789abcdef, "
                                         rf"and the 4 finished run\(s\) in the store \S+ started from weights "
                                         rf"{digest} \(.*\): restore it into a store of its own build, or remove it"):
        run_ablation(small_recipe(tmp_path / "m2", seeds=[0, 1]), restore_from=str(tmp_path / "other-build"))
    assert {json.loads(p.read_text())["base_weights"] for p in store.glob("*/seed*/summary.json")} == {digest}


def test_a_checkpoint_is_not_resumed_on_another_build(tmp_path, monkeypatch):
    """A run interrupted after a checkpoint, resumed where the warm start was built with other weights: one line
    (not a run recorded as from a build it did not start from); where the build matches, it resumes."""
    monkeypatch.setenv("SIGX_CACHE", str(tmp_path / "cache"))
    path = write_recipe(tmp_path, {"training": {**SMALL["training"], "steps": 4, "checkpoint_every": 2}})
    run = tmp_path / "run"

    def stop_at_3(step, stats):
        if step == 3:
            raise KeyboardInterrupt  # a kill after the step-2 checkpoint

    try:
        run_training(load_recipe(path), run_dir=run, on_progress=stop_at_3)
    except KeyboardInterrupt:
        pass
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    base = next((tmp_path / "cache" / "tiny").iterdir())
    digest = warm_start_weights(base)
    assert state["step"] == 2 and state["meta"]["base_weights"] == digest
    assert state["meta"]["cpu"] == torch.backends.cpu.get_cpu_capability()

    kept = tmp_path / "kept.safetensors"
    shutil.copy(base / "model.safetensors", kept)
    rebuild_elsewhere(base)
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run)])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert f"{run / 'checkpoint.pt'}: its run started from the warm start {base.name} with weights {digest}, and " \
        f"this machine built it with weights {warm_start_weights(base)}" in errors[0]
    assert "--fresh" in errors[0] and torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2

    shutil.copy(kept, base / "model.safetensors")  # that build put back: the run resumes and records it
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run)])
    assert result.exit_code == 0 and "checkpoint at step 2" in " ".join(result.output.split()), result.output
    assert json.loads((run / "summary.json").read_text())["base_weights"] == digest


def test_the_refusal_names_the_way_out_the_two_machines_kernels_allow(monkeypatch):
    """A CPU with AVX-512 can run an AVX2 machine's kernels (the line gives the settings); an AVX2 CPU cannot run
    AVX-512's (no such advice); a process capped by ATEN_CPU_CAPABILITY is told to lift the cap."""
    from sigx import provenance

    def line(theirs_cpu, here_cpu):
        monkeypatch.setattr(provenance, "machine_kind", lambda: {"cpu": here_cpu})
        return provenance.another_build("store: 3 finished run(s)", "/cache/tiny/4f0ccf8198b53922", "b16d4ef49c55820a",
                                        "db13cd5af4d37d92", theirs_cpu, "finish it on the machine its runs ran on")

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    emulate = line("AVX2", "AVX512")
    assert emulate.startswith("store: 3 finished run(s) started from the warm start 4f0ccf8198b53922 with weights "
                              "b16d4ef49c55820a, and this machine built it with weights db13cd5af4d37d92 (a build's "
                              "floating point depends on the machine's CPU kernels: AVX2 there, AVX512 here): "), emulate
    assert "run it here with ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2" in emulate
    assert emulate.endswith("; or finish it on the machine its runs ran on; or put that build in "
                            "$SIGX_CACHE/tiny/4f0ccf8198b53922"), emulate
    assert "\n" not in emulate

    upward = line("AVX512", "AVX2")
    assert "AVX512 there, AVX2 here" in upward and "ATEN_CPU_CAPABILITY" not in upward, upward
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    capped = line("AVX512", "AVX2")
    assert "unset ATEN_CPU_CAPABILITY (it caps this process's kernels at AVX2); or finish it" in capped, capped
    unknown = line(None, "AVX512")
    assert "(a build's floating point depends on the machine's CPU kernels: AVX512 here)" in unknown, unknown
    assert "ATEN_CPU_CAPABILITY" not in unknown, unknown


def test_the_record_says_when_settings_chose_the_kernels(monkeypatch):
    """A run on an AVX-512 CPU told to run AVX2's kernels records AVX2 (what its numbers are made of) and the
    settings that chose them, so a reader is not left to think it ran on an AVX2 CPU."""
    from sigx.provenance import AVX2_KERNELS, machine_kind

    for key in AVX2_KERNELS:
        monkeypatch.delenv(key, raising=False)
    assert "cpu_settings" not in machine_kind()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    kind = machine_kind()
    assert kind["cpu"] == torch.backends.cpu.get_cpu_capability()  # read by torch at start-up, not here
    assert kind["cpu_settings"] == "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2", kind
