"""The built-in tiny model: a reproducible, cached warm start."""

import torch
from safetensors.torch import load_file

from sigx.config import ArithmeticTaskConfig, TinyModelConfig
from sigx.models.tiny import ensure_tiny_base
from sigx.tasks.arithmetic import ArithmeticTask

SMALL = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                        sft_steps=3, sft_batch_size=4)
TASK = ArithmeticTaskConfig(eval_prompts=4)


def test_base_does_not_depend_on_the_process_rng_state(tmp_path, monkeypatch):
    weights = []
    for i in range(2):
        monkeypatch.setenv("SIGX_CACHE", str(tmp_path / f"cache{i}"))
        torch.manual_seed(100 + i)  # whatever ran before the build must not change the cached base
        torch.rand(17)
        path = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=lambda _: None)
        weights.append(load_file(path / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_base_is_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGX_CACHE", str(tmp_path))
    logs = []
    first = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=logs.append)
    built = len(logs)
    second = ensure_tiny_base(SMALL, ArithmeticTask(TASK), TASK, log=logs.append)
    assert first == second and built >= 1 and len(logs) == built  # no second build
    other = ensure_tiny_base(SMALL.model_copy(update={"sft_noise": 0.1}), ArithmeticTask(TASK), TASK, log=logs.append)
    assert other != first  # a different warm start gets its own cache entry
    assert not [p for p in tmp_path.joinpath("tiny").iterdir() if p.name.startswith(".")]  # no temp dirs left
