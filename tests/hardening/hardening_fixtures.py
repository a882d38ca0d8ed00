"""What the hardening tests share: the smallest recipe that trains, and the one-error-line check (the `cwd`
fixture that must stay empty is in tests/conftest.py, shared with tests/test_hardening.py)."""

from __future__ import annotations

from pathlib import Path


def tiny_data(tmp_path: Path, **sections) -> dict:
    """A recipe (as data) that trains in a second or two: a 1-layer model, 2 steps, 2 prompts of 2 samples."""
    data = {
        "name": "hard", "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                                           "intermediate_size": 64, "sft_steps": 5}},
        "task": {"eval_prompts": 4}, "rollout": {"group_size": 2, "max_new_tokens": 16},
        "training": {"steps": 2, "prompts_per_step": 2, "eval_every": 2, "eval_samples": 1},
        "ablation": {"factors": ["sspo"], "seeds": [0], "output_dir": str(tmp_path / "ablations")},
        "logging": {"wandb": "disabled", "output_dir": str(tmp_path / "runs")}}
    for section, value in sections.items():
        data[section] = {**data.get(section, {}), **value} if isinstance(value, dict) else value
    return data


def one_error_line(result) -> str:
    """The command failed with exactly one ``error:`` line and no traceback; that line. (Progress a training
    printed before it failed may come first.)"""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and len(errors) == 1, result.output
    assert result.output.rstrip().endswith(errors[0].rstrip()), result.output
    return errors[0]

