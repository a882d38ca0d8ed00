"""Observation tokens are context, never trained on: in rollouts, in the loss and in the SFT warm start."""

import torch

from sigx.config import SearchTaskConfig
from sigx.engine.losses import POLICY_LOSSES, PolicyLossInputs, aggregate_loss
from sigx.techniques import policy_loss_with_defaults
from sigx.engine.rollout import RolloutBackend, SamplingParams, TurnOutput
from sigx.engine.trajectory import collate
from sigx.models.tiny import encode_demonstration
from sigx.models.tokenizer import build_char_tokenizer
from sigx.tasks.search import SearchTask


class ScriptedBackend(RolloutBackend):
    """Plays a fixed list of model turns, so the test controls exactly what is 'generated'."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.turn = tokenizer, script, 0

    def generate_turn(self, contexts, stop_strings, params, generator=None):
        ids = self.tokenizer(self.script[self.turn], add_special_tokens=False)["input_ids"]
        self.turn += 1
        return [TurnOutput(ids, True) for _ in contexts]


def _episode():
    tok = build_char_tokenizer()
    task = SearchTask(SearchTaskConfig(num_people=6, num_cities=3, min_hops=2, max_hops=2))
    problem = next(p for p in task.eval_problems() + task._train if p.meta["plan"] == ("boss", "city"))
    k1, k2 = problem.reference_path
    script = [f"p:boss.city\ns[{k1}]", f"s[{k2}]", f"a[{problem.answer}]"]
    traj = ScriptedBackend(tok, script).rollout(task, [problem], [0], SamplingParams(16), tok)[0]
    return tok, task, problem, script, traj


def test_rollout_marks_observations_and_turns():
    tok, task, problem, script, traj = _episode()
    assert [s.by_model for s in traj.segments] == [True, False, True, False, True]
    first_hop = task.kb[problem.reference_path[0]]
    assert traj.segments[1].text == f"\no:{first_hop}\n"
    model_ids = [t for t, m in zip(traj.completion_ids, traj.loss_mask) if m]
    env_ids = [t for t, m in zip(traj.completion_ids, traj.loss_mask) if not m]
    assert tok.decode(model_ids) == "".join(script)
    assert tok.decode(env_ids) == traj.segments[1].text + traj.segments[3].text
    # turn ids: 0, 1, 2 on the model's turns, -1 on observations
    turns = [t for t, m in zip(traj.turn_ids, traj.loss_mask) if m]
    assert sorted(set(turns)) == [0, 1, 2] and all(t == -1 for t, m in zip(traj.turn_ids, traj.loss_mask) if not m)
    assert task.score(problem, traj.segments).correct


def test_collated_mask_is_aligned_with_predicted_tokens():
    tok, task, problem, script, traj = _episode()
    batch = collate([traj], torch.tensor([1.0]), tok.pad_token_id)
    predicted = batch.input_ids[0, 1:]
    assert tok.decode(predicted[batch.loss_mask[0] == 1].tolist()) == "".join(script)
    assert batch.loss_mask[0, : len(traj.prompt_ids) - 1].sum() == 0  # the prompt is not trained on either


def test_observation_logprobs_do_not_reach_the_loss():
    tok, task, problem, script, traj = _episode()
    batch = collate([traj], torch.tensor([1.5]), tok.pad_token_id)
    logp = torch.full(batch.loss_mask.shape, -0.3, requires_grad=True)
    x = PolicyLossInputs(logp, torch.full_like(logp, -0.3002), batch.advantages, batch.loss_mask, batch.turn_ids)
    for name in POLICY_LOSSES:
        per_token, _ = policy_loss_with_defaults(name)(x)
        loss = aggregate_loss(per_token, batch.loss_mask, "token-mean")
        (grad,) = torch.autograd.grad(loss, logp)
        assert grad[batch.loss_mask == 0].abs().max().item() == 0.0, name
        assert grad[batch.loss_mask == 1].abs().min().item() > 0.0, name


def test_sft_labels_mask_observations():
    tok = build_char_tokenizer()
    task = SearchTask(SearchTaskConfig())
    problem = task.eval_problems()[0]
    import random

    segments = task.demonstration(problem, random.Random(0), noise=0.0)
    ids, labels = encode_demonstration(tok, task, problem.prompt, segments)
    trained = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
    assert trained == "".join(s.text for s in segments if s.by_model)
    assert task.score(problem, segments).correct  # a noise-free demonstration is a correct solution
