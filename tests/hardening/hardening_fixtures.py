"""What the hardening tests share: the smallest recipe that trains, a hand-made store to report, and the
one-error-line check (the `cwd` fixture that must stay empty is in tests/conftest.py, shared with tests/test_hardening.py)."""

from __future__ import annotations

import json
from pathlib import Path

from sigx.runs import write_json_atomic


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


def store(root: Path, seeds=(0, 1), summaries=None, metrics=None, plan_cells=None) -> Path:
    """A two-cell x seeds store (baseline, sspo) whose files the case replaces."""
    cells = [{"id": f"{c}/seed{s}", "combination": c, "factors_on": [] if c == "baseline" else ["sspo"],
              "techniques": [], "seed": s} for c in ("baseline", "sspo") for s in seeds]
    write_json_atomic(root / "plan.json", {"name": root.name, "factors": ["sspo"], "seeds": list(seeds),
                                           "cells": plan_cells if plan_cells is not None else cells})
    for i, cell in enumerate(cells):
        run = root / cell["id"]
        run.mkdir(parents=True, exist_ok=True)
        summary = (summaries or {}).get(cell["id"], {"status": "completed", "final_reward": 0.5 + 0.01 * i,
                                                     "reward_auc": 0.4 + 0.01 * i})
        (run / "summary.json").write_bytes(summary if isinstance(summary, bytes) else json.dumps(summary).encode())
        rows = (metrics or {}).get(cell["id"], b'{"step": 0, "eval/reward": 0.5}\n{"step": 1, "eval/reward": 0.6}\n')
        (run / "metrics.jsonl").write_bytes(rows)
    return root


def one_error_line(result) -> str:
    """The command failed with exactly one ``error:`` line and no traceback; that line. (Progress a training
    printed before it failed may come first.)"""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and len(errors) == 1, result.output
    assert result.output.rstrip().endswith(errors[0].rstrip()), result.output
    return errors[0]

