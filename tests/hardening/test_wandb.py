"""W&B that cannot start (issue #26, item 8): a bad WANDB_MODE and an unreachable server are one line, and a run
that asked to go on offline does so, said in one warning line."""

import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hardening_fixtures import one_error_line, tiny_data
from sigx.cli import app
from sigx.nodes import free_port


def recipe(tmp_path: Path, **logging) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_data(tmp_path, logging={"wandb": "offline", **logging})))
    return path


def test_a_wandb_mode_that_is_no_mode_is_one_line(tmp_path, monkeypatch, cwd):
    monkeypatch.setenv("WANDB_MODE", "bogus")
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe(tmp_path)), "--run-dir", str(tmp_path / "r")]))
    assert "WANDB_MODE=bogus: not a W&B mode (it overrides logging.wandb); allowed: online, offline" in line


def _unreachable_wandb(monkeypatch) -> None:
    pytest.importorskip("wandb")  # W&B's own errors are what these cases read
    port = free_port()  # nothing listens there once the probe is closed
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "3")


def test_online_with_w_and_b_unreachable_is_one_line(tmp_path, monkeypatch, cwd):
    _unreachable_wandb(monkeypatch)
    run = tmp_path / "r"
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe(tmp_path, wandb="online")), "--run-dir",
                                                   str(run)]))
    assert "logging.wandb: online: W&B did not start (CommError" in line
    assert "logging.wandb_unreachable: offline" in line
    assert not (run / "metrics.jsonl").exists()  # nothing begun


def test_online_with_w_and_b_unreachable_goes_on_offline_when_asked(tmp_path, monkeypatch, cwd):
    _unreachable_wandb(monkeypatch)
    run = tmp_path / "r"
    result = CliRunner().invoke(app, ["train", str(recipe(tmp_path, wandb="online", wandb_unreachable="offline")),
                                      "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: logging.wandb: W&B cannot be reached (CommError" in said and "going on offline" in said
    assert list((run / "wandb").glob("offline-run-*"))


def test_a_missing_wandb_package_is_one_line_saying_how_to_go_on(tmp_path, monkeypatch, cwd):
    """wandb is a dependency, yet an environment can lack it (the GPU image does): `import wandb` was a traceback."""
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run = tmp_path / "r"
    line = one_error_line(CliRunner().invoke(app, ["train", str(recipe(tmp_path, wandb="offline")), "--run-dir",
                                                   str(run)]))
    assert ": logging.wandb: offline needs the wandb package, which cannot be imported (" in line
    assert line.endswith("pip install wandb, or set logging.wandb: disabled")
    assert not (run / "metrics.jsonl").exists()  # nothing begun
