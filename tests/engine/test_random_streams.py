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


@pytest.mark.parametrize("recipe_name, warm_start", [("tiny.yaml", SMALL[:2]),
                                                     ("tiny-search.yaml", ["model.tiny.sft_steps=80", SMALL[1]])])
def test_a_stream_per_sample_draws_its_tokens_whichever_process_samples_its_group(recipe_name, warm_start):
    """`rollout.seeding: sample`, what lets `--nproc N` split the rollout: the shares two processes sample apart
    (whole groups each, their streams from the one rollout stream) are the whole batch's samples, turn by turn."""
    import random

    from sigx.engine.distributed import World
    from sigx.engine.rollout import SamplingParams, sample_streams

    recipe = load_recipe(RECIPES / recipe_name, warm_start + ["task.eval_prompts=8", "rollout.seeding=sample"])
    engine = SharedEngine(recipe)
    backend, task, rng = engine.rollout, engine.task, random.Random(0)
    problems = [task.train_problem(rng) for _ in range(4)]
    expanded, groups = [p for p in problems for _ in range(4)], [g for g in range(4) for _ in range(4)]
    params = SamplingParams(recipe.rollout.max_new_tokens)

    def share(rank: int, generator) -> list:
        rows = World(rank, 2).share(groups)
        return rows, backend._rollout(task, [expanded[i] for i in rows], [groups[i] for i in rows], params,
                                      engine.tokenizer, generator(rows))

    whole = backend.rollout(task, expanded, groups, params, engine.tokenizer, torch.Generator().manual_seed(7))
    completions = [t.completion_ids for t in whole]
    assert len({tuple(c) for c in completions}) > len(problems)  # samples of one prompt differ: real draws
    streams = sample_streams(len(expanded), torch.Generator().manual_seed(7))
    for rank in (0, 1):
        rows, part = share(rank, lambda rows: [streams[i] for i in rows])
        assert sorted({groups[i] for i in rows}) == [g for g in range(4) if g % 2 == rank]  # whole groups
        assert [t.completion_ids for t in part] == [completions[i] for i in rows]
        assert [t.segments for t in part] == [whole[i].segments for i in rows]  # the same turns and replies
    if recipe_name == "tiny-search.yaml":
        assert max(len([s for s in t.segments if s.by_model]) for t in whole) >= 2  # (80 SFT steps: searches)
    # one stream for the batch has no such property: the same share sampled apart draws other tokens
    rows, part = share(0, lambda rows: torch.Generator().manual_seed(7))
    assert [t.completion_ids for t in part] != [completions[i] for i in rows]
