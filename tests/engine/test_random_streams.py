"""Common random numbers: cells with the same seed see the same training prompts in the same order and the same
noise draws; each consumer of randomness has its own stream, so switching a technique on does not shift the
rollout's draws."""

from pathlib import Path

import pytest
import torch

from sigx.config import load_recipe
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.techniques import build

RECIPES = Path(__file__).parents[2] / "recipes"
SMALL = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8", "training.prompts_per_step=4",
         "training.eval_samples=1", "rollout.group_size=4", "logging.wandb=disabled",
         "techniques.gcrl.pairs_per_step=2", "techniques.gcrl.data_filter=false"]


@pytest.fixture(scope="module")
def engine():
    return SharedEngine(load_recipe(RECIPES / "tiny.yaml", SMALL))


def trainer_with(engine, *techniques, seed=0):
    recipe = load_recipe(RECIPES / "tiny.yaml", SMALL + [f"seed={seed}"] +
                         [f"techniques.{t}.enabled=true" for t in techniques])
    return GRPOTrainer(recipe, engine, build(recipe, engine))


def test_a_technique_does_not_shift_the_prompts_or_the_rollouts_draws(engine):
    runs = {}
    for techniques in [(), ("gcrl",), ("sspo",), ("gcrl", "sspo", "search_p1")]:
        trainer = trainer_with(engine, *techniques)
        first = trainer.rollout()
        responses = [t for t in first if t.kind == "generation"]
        state_after_rollout = trainer.sampler.get_state()
        prompts = [t.problem.prompt for t in responses]
        for _ in range(3):
            trainer.step()  # the policies now differ, the prompt stream must not
        prompts += [trainer.task.train_problem(trainer.rng).prompt for _ in range(4)]
        runs[techniques] = ([t.completion_ids for t in responses], state_after_rollout, prompts,
                            any(t.kind == "critique" for t in first))
    base_completions, base_state, base_prompts, _ = runs[()]
    for techniques, (completions, state, prompts, critiqued) in runs.items():
        assert completions == base_completions, techniques  # the same first responses, token for token
        assert torch.equal(state, base_state), techniques  # critiques drew from their own stream
        assert prompts == base_prompts, techniques  # the same prompts in the same order, steps later too
    assert runs[("gcrl",)][3]  # GC-RL did sample critiques in that first step


def test_different_seeds_get_different_streams_and_the_same_evaluation_draws(engine):
    a, b = trainer_with(engine, seed=0), trainer_with(engine, seed=1)
    assert not torch.equal(a.sampler.get_state(), b.sampler.get_state())
    assert a.evaluate() == trainer_with(engine, seed=1).evaluate()  # same weights, same evaluation noise
