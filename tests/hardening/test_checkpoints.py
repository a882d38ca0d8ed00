"""A checkpoint that cannot be written, or that is not what sigx wrote (issue #26, items 3 and 4): one line
naming the file and what is wrong, nothing lost, and the same command resumes."""

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, tiny_data
from sigx.cli import app


def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_data(tmp_path, training={"steps": 3, "checkpoint_every": 1})))
    return path


def train(recipe: Path, run_dir: Path, *extra: str):
    return CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(run_dir), *extra])


@pytest.fixture
def interrupted(tmp_path, monkeypatch, cwd):
    """A run stopped by a failed checkpoint write at step 2: its step-1 checkpoint on disk."""
    real_save = torch.save
    calls = []

    def disk_full_on_second_write(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file "
                               "data/3: file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr("sigx.checkpoint.torch.save", disk_full_on_second_write)
    recipe, run = recipe_file(tmp_path), tmp_path / "run"
    line = one_error_line(train(recipe, run))
    monkeypatch.setattr("sigx.checkpoint.torch.save", real_save)
    return recipe, run, line


def test_a_full_disk_is_one_line_that_says_the_same_command_resumes(interrupted):
    recipe, run, line = interrupted
    assert f"{run / 'checkpoint.pt'}: cannot write the checkpoint of step 2" in line
    assert "file write failed" in line and "the previous checkpoint is intact" in line
    assert "run the same command again to resume" in line
    assert not list(run.glob(".checkpoint.pt.*"))  # the partial temporary file is gone
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 1
    resumed = train(recipe, run)
    assert resumed.exit_code == 0 and "checkpoint at step 1" in " ".join(resumed.output.split()), resumed.output


def test_temporary_files_a_kill_left_are_cleaned_up_by_the_next_run(interrupted):
    recipe, run, _ = interrupted
    for name in (".checkpoint.pt.k9x2", ".summary.json.ab12", ".config.json.zz"):
        (run / name).write_bytes(b"")  # what SIGTERM during a write leaves (no cleanup runs)
    assert train(recipe, run).exit_code == 0
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_a_torch_file_of_another_program_is_one_line(tmp_path, cwd):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"weights": torch.ones(3)}, run / "checkpoint.pt")
    line = one_error_line(train(recipe_file(tmp_path), run))
    assert f"{run / 'checkpoint.pt'}: not a sigx checkpoint (lacks step, trainer" in line and "--fresh" in line


def _rewrite(path: Path, change) -> None:
    from sigx.checkpoint import digest

    state = torch.load(path, weights_only=True)
    change(state)
    state["digest"] = digest(state)
    torch.save(state, path)


def test_a_checkpoint_without_its_trainer_state_is_one_line(interrupted):
    recipe, run, _ = interrupted
    _rewrite(run / "checkpoint.pt", lambda s: s.pop("trainer"))
    assert "not a sigx checkpoint (lacks trainer)" in one_error_line(train(recipe, run))


def test_a_trainer_state_that_does_not_fit_is_one_line(interrupted):
    recipe, run, _ = interrupted
    _rewrite(run / "checkpoint.pt", lambda s: s["trainer"].pop("optimizer"))
    line = one_error_line(train(recipe, run))
    assert "its trainer state does not fit this run (KeyError" in line and "--fresh" in line


def test_flipped_bytes_in_the_weights_are_found_on_load(interrupted):
    recipe, run, _ = interrupted
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    weight = max(state["trainer"]["model"].values(), key=lambda t: t.numel())
    data = bytearray(path.read_bytes())
    at = data.find(weight.reshape(-1)[:16].cpu().numpy().tobytes())  # saved on a GPU, it loads there
    assert at > 0
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])  # 64 bytes of one tensor, flipped in place
    path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path, weights_only=True)["trainer"]["model"][
        max(state["trainer"]["model"], key=lambda k: state["trainer"]["model"][k].numel())], weight)
    line = one_error_line(train(recipe, run))
    assert f"{path}: damaged (its contents do not match the checksum written with it)" in line
    fresh = train(recipe, run, "--fresh")
    assert fresh.exit_code == 0, fresh.output
