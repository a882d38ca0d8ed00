"""The GPU path: the vLLM rollout backend colocated with training, on the tiny model (no download needed).

Skipped, with the reason, where CUDA or vllm is absent (the CPU CI). Run on a GPU machine with
``pip install -e '.[gpu,dev]' && pytest tests/test_gpu.py``.
"""

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
vllm = pytest.importorskip("vllm", reason="needs vllm: pip install 'sigx[gpu]'")

from sigx.config import load_recipe  # noqa: E402
from sigx.engine.shared import SharedEngine  # noqa: E402
from sigx.engine.trainer import GRPOTrainer  # noqa: E402
from sigx.engine.trajectory import collate  # noqa: E402
from sigx.engine.vllm_backend import VLLMRolloutBackend  # noqa: E402

RECIPES = Path(__file__).parents[2] / "recipes"
GPU_TINY = ["rollout.backend=vllm", "rollout.dtype=float32", "rollout.gpu_memory_utilization=0.2",
            "rollout.vllm_enforce_eager=true", "training.prompts_per_step=8", "training.eval_samples=1",
            "task.eval_prompts=32", "logging.wandb=disabled"]


@pytest.fixture(scope="module")
def engine():
    return SharedEngine(load_recipe(RECIPES / "tiny.yaml", GPU_TINY))


def _gap_after(trainer: GRPOTrainer) -> float:
    trajectories = trainer.rollout()
    batch = collate(trajectories, torch.zeros(len(trajectories)), trainer.tokenizer.pad_token_id)
    batch.old_logprobs = trainer._logprobs(trainer.model, batch)
    mask = (batch.loss_mask > 0) & ~torch.isnan(batch.sampling_logprobs)
    assert mask.sum() > 0, "vLLM reported no log-probs"
    return float((batch.sampling_logprobs[mask] - batch.old_logprobs[mask]).abs().max())


def test_vllm_samples_the_trained_weights_after_each_push(engine):
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", GPU_TINY), engine)
    assert isinstance(engine.rollout, VLLMRolloutBackend)
    assert _gap_after(trainer) < 1e-2  # the base weights were pushed when the run started
    with torch.no_grad():  # a large change the engine must see
        for p in engine.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert _gap_after(trainer) > 0.1  # not pushed yet: stale engine
    engine.rollout.sync_weights(engine.model)
    assert _gap_after(trainer) < 1e-2  # pushed in place: the engine samples the new weights


def test_vllm_run_trains_and_reports_throughput(engine):
    recipe = load_recipe(RECIPES / "tiny.yaml", GPU_TINY + ["training.steps=20", "training.eval_every=20"])
    history = []
    summary = GRPOTrainer(recipe, engine).train(on_step=lambda step, row: history.append(row))
    steps = [r for r in history if "step_s" in r]
    assert len(steps) == 20 and all(r["rollout/logprob_gap"] < 5e-2 for r in steps)
    assert summary["final_reward"] >= summary["start_reward"] - 0.1  # no collapse (20 steps is too few to gain)
    assert all(r["rollout_tokens_per_s"] > 0 for r in steps)
