"""The update's work-saving paths change the work, never the update: micro-batches (by rows or by a token
budget, each cut to its longest row) accumulate to the whole mini-batch's gradient, and rows left out for a
zero advantage were contributing exactly nothing. Checked against the plain path on the same rollout."""

import dataclasses
from pathlib import Path

import pytest
import torch

from sigx.config import load_recipe
from sigx.engine.losses import POLICY_LOSSES, PolicyLossInputs
from sigx.engine.shared import SharedEngine
from sigx.engine.trainer import GRPOTrainer
from sigx.techniques import policy_loss_with_defaults  # (importing sigx.techniques registers their losses)
from sigx.engine.trajectory import RolloutBatch, collate

RECIPES = Path(__file__).parents[2] / "recipes"
SHORT = ["training.steps=2", "training.eval_every=2", "training.prompts_per_step=4", "training.eval_samples=1",
         "rollout.group_size=4", "logging.wandb=disabled"]
SMALL = ["model.tiny.sft_steps=20", "model.tiny.hidden_size=64", "task.eval_prompts=8", "training.mini_batches=2"]


@pytest.fixture(scope="module")
def engine():
    return SharedEngine(load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL))


@pytest.fixture(scope="module")
def trajectories(engine):
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL), engine)
    return trainer.rollout()


def _update(engine, trajectories, advantages, overrides, optimizer="sgd", updates=1):
    """Weights, metrics and the rows each forward saw, after ``updates`` updates from the base weights on the
    same rollout; torch is seeded by the trainer, so every variant draws the same mini-batches."""
    recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + overrides)
    trainer = GRPOTrainer(recipe, engine)  # resets to the base weights; seeds torch
    if optimizer == "sgd":  # the weight change is the accumulated gradient itself (Adam's first step, ~g/|g|,
        trainer.optimizer = torch.optim.SGD(engine.model.parameters(), lr=1.0)  # would magnify rounding)
    forwarded = []
    hook = engine.model.register_forward_pre_hook(
        lambda module, args, kwargs: forwarded.append(kwargs["input_ids"].shape), with_kwargs=True)
    try:
        for advantage in advantages[:updates] if isinstance(advantages, list) else [advantages] * updates:
            metrics = trainer.update(collate(trajectories, advantage, engine.tokenizer.pad_token_id))
    finally:
        hook.remove()
    return {k: v.clone() for k, v in engine.model.state_dict().items()}, metrics, forwarded


def _same_weights(a, b, atol=1e-6):
    return all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_micro_batches_by_rows_and_by_token_budget(engine):
    """Hand-built lengths 5, 9, 7, 3, 8 (rows 0-4). A budget of 20 tokens, longest first: [1 (9), 4 (8)] is
    2 x 9 = 18 tokens, adding row 2 would make 27; then [2 (7), 0 (5)] = 14, adding row 3 gives 21 > 20;
    then [3]. Each micro-batch is cut to its own longest row."""
    lengths = [5, 9, 7, 3, 8]
    ids = torch.zeros(5, 10, dtype=torch.long)
    attention = torch.stack([torch.arange(10) < n for n in lengths]).long()
    batch = RolloutBatch(ids, attention, attention[:, 1:].float(), torch.zeros(5, 9, dtype=torch.long), torch.ones(5))
    trainer = GRPOTrainer(load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + ["training.micro_batch_tokens=20"]),
                          engine)
    parts = trainer._micro_batches(batch)
    assert [p.tolist() for p, _ in parts] == [[1, 4], [2, 0], [3]]
    assert [m.input_ids.shape[1] for _, m in parts] == [9, 7, 3]
    assert [m.loss_mask.shape[1] for _, m in parts] == [8, 6, 2]
    trainer.recipe.training.micro_batch_size = 1  # both bounds hold: rows one by one, longest first
    assert [p.tolist() for p, _ in trainer._micro_batches(batch)] == [[1], [4], [2], [0], [3]]
    trainer.recipe.training.micro_batch_tokens = trainer.recipe.training.micro_batch_size = None
    (whole, micro), = trainer._micro_batches(batch, torch.tensor([3, 0]))  # unbounded: as given, cut to 5
    assert whole.tolist() == [3, 0] and micro.input_ids.shape == (2, 5)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean", "token-sum-norm"])
@pytest.mark.parametrize("bound", [["training.micro_batch_size=3"], ["training.micro_batch_tokens=60"],
                                   ["training.micro_batch_size=2", "training.micro_batch_tokens=40"]])
def test_micro_batching_accumulates_to_the_same_update(engine, trajectories, aggregation, bound):
    common = [f"training.loss_aggregation={aggregation}", "training.skip_zero_advantage=false"]
    advantages = torch.linspace(-1, 1, len(trajectories))
    whole, m_whole, f_whole = _update(engine, trajectories, advantages, common)
    micro, m_micro, f_micro = _update(engine, trajectories, advantages, common + bound)
    assert _same_weights(whole, micro)
    assert not _same_weights(whole, engine.base_state)  # the update is real
    assert len(f_micro) > len(f_whole)  # and was split
    assert m_whole["loss"] == pytest.approx(m_micro["loss"], abs=1e-5)
    assert m_whole["grad_norm"] == pytest.approx(m_micro["grad_norm"], rel=1e-4)
    assert m_whole["entropy"] == pytest.approx(m_micro["entropy"], rel=1e-4)


@pytest.mark.parametrize("overrides", [[], ["training.micro_batch_size=3"], ["training.inner_epochs=2"],
                                       ["training.micro_batch_size=3", "training.loss_aggregation=token-sum-norm"]])
def test_rows_with_zero_advantage_are_left_out_and_the_update_is_unchanged(engine, trajectories, overrides):
    n = len(trajectories)
    advantages = torch.linspace(-1, 1, n)
    advantages[::3] = 0.0  # a third of the rows carry no signal (as a group with equal rewards does)
    trained = int((advantages != 0).sum())
    plain, m_plain, f_plain = _update(engine, trajectories, advantages,
                                      overrides + ["training.skip_zero_advantage=false"])
    skipped, m_skip, f_skip = _update(engine, trajectories, advantages, overrides)
    assert _same_weights(plain, skipped)
    assert m_plain["loss"] == pytest.approx(m_skip["loss"], abs=1e-6)  # left-out rows add exactly 0 to it
    assert m_plain["grad_norm"] == pytest.approx(m_skip["grad_norm"], rel=1e-5)
    epochs = 2 if "training.inner_epochs=2" in overrides else 1
    # every row: one training forward per epoch, plus the behaviour pass of the second mini-batch's rows
    assert sum(s[0] for s in f_plain) == epochs * n + n // 2
    # the trained rows only (the behaviour pass counts those that fell in the second mini-batch)
    assert epochs * trained < sum(s[0] for s in f_skip) < epochs * trained + trained
    assert m_skip["trained_fraction"] == pytest.approx(trained / n) and m_plain["trained_fraction"] == 1.0


def test_a_mini_batch_with_nothing_to_train_still_steps_adamw(engine, trajectories):
    """After a real update, AdamW's momentum moves the weights even on a zero gradient: leaving every row out
    must give the same step as computing their zero gradients."""
    advantages = [torch.linspace(-1, 1, len(trajectories)), torch.zeros(len(trajectories))]
    plain, _, _ = _update(engine, trajectories, advantages, ["training.skip_zero_advantage=false"], "adamw", 2)
    skipped, metrics, forwarded = _update(engine, trajectories, advantages, [], "adamw", 2)
    once, _, _ = _update(engine, trajectories, advantages, [], "adamw", 1)
    assert _same_weights(plain, skipped, atol=1e-7)
    assert not _same_weights(skipped, once, atol=1e-7)  # the second (empty) update did move the weights
    assert metrics["trained_fraction"] == 0.0 and metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0


def test_zero_advantage_rows_are_kept_when_their_gradient_is_not_zero(engine, trajectories):
    """A KL term pulls every row towards the reference, advantage or not: nothing may be left out."""
    advantages = torch.zeros(len(trajectories))
    _, metrics, forwarded = _update(engine, trajectories, advantages, ["training.kl_beta=0.1"])
    n = len(trajectories)  # the policy sees every row: the training forward, and the behaviour pass of half
    assert metrics["trained_fraction"] == 1.0 and sum(s[0] for s in forwarded) == n + n // 2


ZERO_AT_ZERO_ADVANTAGE = sorted(name for name, spec in POLICY_LOSSES.items() if spec.zero_at_zero_advantage)


def test_every_built_in_loss_declares_it():
    assert {"ppo_clip", "gspo", "sspo", "sorl", "sorl+sspo"} <= set(ZERO_AT_ZERO_ADVANTAGE)


@pytest.mark.parametrize("name", ZERO_AT_ZERO_ADVANTAGE)
def test_losses_that_declare_it_give_zero_advantage_rows_no_gradient_and_no_influence(name):
    """The premise of leaving rows out, for every loss that claims it: a row with A = 0 has zero loss and zero
    gradient, and the other rows' losses are the same with or without it in the batch."""
    torch.manual_seed(0)
    b, t = 6, 7
    old = -torch.rand(b, t) * 2
    logp = (old + 0.3 * torch.randn(b, t)).requires_grad_()
    mask = (torch.rand(b, t) > 0.2).float()
    turns = torch.where(mask > 0, torch.arange(t).div(3, rounding_mode="floor").expand(b, t), -1)
    advantages = torch.tensor([1.5, 0.0, -0.7, 0.0, 2.0, -1.2])
    loss_fn = policy_loss_with_defaults(name)
    loss, _ = loss_fn(PolicyLossInputs(logp, old, advantages, mask, turns))
    (loss * mask).sum().backward()
    zero = advantages == 0
    assert torch.all(loss[zero] == 0) and torch.all(logp.grad[zero] == 0)
    assert logp.grad[~zero].abs().sum() > 0
    keep = ~zero
    alone, _ = loss_fn(PolicyLossInputs(logp.detach()[keep], old[keep], advantages[keep], mask[keep], turns[keep]))
    assert torch.allclose(alone, loss.detach()[keep], atol=1e-7)


def test_masked_truncated_responses_train_as_if_left_out_their_rewards_kept(engine, trajectories):
    """training.mask_truncated (DAPO's overlong filtering): a truncated response keeps its place in its group's
    advantages but adds nothing to the update, so the update equals one over the other rows alone (in one
    mini-batch, where token-mean's normaliser then counts the same tokens)."""
    cut = [dataclasses.replace(t, truncated=i % 3 == 0) for i, t in enumerate(trajectories)]
    advantages = torch.linspace(-1, 1, len(cut))
    kept = [i for i, t in enumerate(cut) if not t.truncated]
    batch = collate(cut, advantages, engine.tokenizer.pad_token_id, mask_truncated=True)
    assert batch.loss_mask[[i for i, t in enumerate(cut) if t.truncated]].sum() == 0
    assert torch.equal(batch.loss_mask[kept], collate(cut, advantages, engine.tokenizer.pad_token_id).loss_mask[kept])
    one = ["training.mini_batches=1"]
    updates = {}
    for skip in ("false", "true"):  # with the skip on, the masked rows (no loss token) get no forward at all
        recipe = load_recipe(RECIPES / "tiny.yaml", SHORT + SMALL + one + [f"training.skip_zero_advantage={skip}"])
        trainer = GRPOTrainer(recipe, engine)
        trainer.optimizer = torch.optim.SGD(engine.model.parameters(), lr=1.0)
        rows = []
        hook = engine.model.register_forward_pre_hook(lambda m, a, kw: rows.append(kw["input_ids"].shape[0]),
                                                      with_kwargs=True)
        try:
            metrics = trainer.update(batch)
        finally:
            hook.remove()
        updates[skip] = {k: v.clone() for k, v in engine.model.state_dict().items()}, sum(rows), metrics
    every = one + ["training.skip_zero_advantage=false"]
    alone, _, _ = _update(engine, [cut[i] for i in kept], advantages[kept], every)
    plain, _, _ = _update(engine, cut, advantages, every)
    assert _same_weights(updates["false"][0], alone) and _same_weights(updates["true"][0], alone)
    assert not _same_weights(updates["false"][0], plain)  # the truncated rows did move the plain update
    assert updates["false"][1] == len(cut) and updates["true"][1] == len(kept)  # (no advantage is exactly 0 here)
    assert updates["true"][2]["trained_fraction"] == pytest.approx(len(kept) / len(cut))
