"""The four techniques against hand-computed values: SSPO's gate, SORL's turn ratios, Search-P1's path scores,
GC-RL's critique rewards and batch; plus the compositions."""

import math
import random

import pytest
import torch

from sigx.config import GCRLConfig, SearchP1Config, SearchTaskConfig, SORLConfig, SSPOConfig, TechniquesConfig
from sigx.config import ArithmeticTaskConfig, TrainingConfig
from sigx.engine.losses import POLICY_LOSSES, PolicyLossInputs, aggregate_loss
from sigx.engine.rollout import RolloutBackend, TurnOutput
from sigx.engine.trajectory import Trajectory, collate
from sigx.models.tokenizer import build_char_tokenizer
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Problem, Segment
from sigx.tasks.search import SearchTask
from sigx.techniques import TECHNIQUES, resolve_policy_loss
from sigx.techniques.gcrl import GCRL, select_responses
from sigx.techniques.search_p1 import SearchP1, coverage


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def _x(log_ratio, adv, mask=None, turn_ids=None, techniques=None):
    """Inputs with old log-probs 0, so logprobs are the log-ratios; returns (leaf, inputs)."""
    logp = torch.tensor(log_ratio, dtype=torch.float32, requires_grad=True)
    mask = torch.ones_like(logp) if mask is None else torch.tensor(mask, dtype=torch.float32)
    turns = torch.zeros_like(logp, dtype=torch.long) if turn_ids is None else torch.tensor(turn_ids)
    return logp, PolicyLossInputs(logp, torch.zeros_like(logp), torch.tensor(adv, dtype=torch.float32), mask, turns,
                                  TrainingConfig(), techniques or TechniquesConfig())


def _grad(name, logp, x, aggregation="token-mean"):
    per_token, diag = POLICY_LOSSES[name](x)
    loss = aggregate_loss(per_token, x.mask, aggregation)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss, grad, diag


# ------------------------------------------------------------------------------------------------ SSPO
def test_sspo_weight_and_gradient_by_hand():
    # one sequence, token ratios 1 and 2, A = +1 (tau_pos = 1): f(1) = 4 sigma(0) = 2, f(2) = 4 sigma(1)
    logp, x = _x([[0.0, math.log(2.0)]], [1.0])
    f1, f2 = 4 * sigmoid(0), 4 * sigmoid(1)
    weight = math.sqrt(f1 * f2)  # geometric mean of the gated ratios
    loss, grad, diag = _grad("sspo", logp, x)
    assert loss.item() == pytest.approx(-weight, rel=1e-6)
    # d(-W)/d logp_t = -W * (1/2) * (f'(r_t) / f(r_t)) * r_t, with f'/f = tau (1 - sigma(tau (r - 1)))
    expected = [-weight * 0.5 * (1 - sigmoid(0)) * 1.0, -weight * 0.5 * (1 - sigmoid(1)) * 2.0]
    assert grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert diag["ratio_mean"].item() == pytest.approx(math.sqrt(2.0), rel=1e-6)


def test_sspo_negative_advantage_uses_tau_neg():
    techniques = TechniquesConfig(sspo=SSPOConfig(tau_pos=1.0, tau_neg=2.0))
    logp, x = _x([[math.log(0.5)]], [-1.0], techniques=techniques)
    loss, grad, _ = _grad("sspo", logp, x)
    f = 4 / 2.0 * sigmoid(2.0 * (0.5 - 1))
    assert loss.item() == pytest.approx(f, rel=1e-6)  # -W * A with A = -1
    assert grad.item() == pytest.approx(4 * sigmoid(-1.0) * (1 - sigmoid(-1.0)) * 0.5, rel=1e-5)


def test_sspo_at_ratio_one_is_plain_policy_gradient():
    torch.manual_seed(0)
    logp = torch.randn(4, 6, requires_grad=True)
    adv = torch.tensor([1.5, -0.5, 0.0, -2.0])
    mask = (torch.rand(4, 6) > 0.3).float()
    mask[:, 0] = 1
    x = PolicyLossInputs(logp, logp.detach().clone(), adv, mask, torch.zeros(4, 6, dtype=torch.long),
                         TrainingConfig(), TechniquesConfig())
    for aggregation in ("token-mean", "seq-mean"):
        _, grad, _ = _grad("sspo", logp, x, aggregation)
        plain = aggregate_loss(-adv[:, None] * logp, mask, aggregation)
        (expected,) = torch.autograd.grad(plain, logp)
        assert torch.allclose(grad, expected, atol=1e-6), aggregation


@pytest.mark.parametrize("log_ratio, adv", [(math.log(10.0), 1.0), (math.log(0.05), -1.0)])
def test_sspo_far_from_one_is_small_but_not_zero_where_the_hard_clip_is_zero(log_ratio, adv):
    logp, x = _x([[log_ratio]], [adv])
    _, sspo_grad, diag = _grad("sspo", logp, x)
    _, ppo_grad, _ = _grad("ppo_clip", logp, x)
    assert ppo_grad.item() == 0.0
    assert 0 < abs(sspo_grad.item()) < 0.3
    # the gate's own weight f'(r) decays above 1; below 1 it stays >= 4 sigma(-tau) (1 - sigma(-tau)) and
    # the ratio itself makes the gradient small
    assert diag["sspo/gated_fraction"].item() == (1.0 if log_ratio > 0 else 0.0)


# ------------------------------------------------------------------------------------------------ SORL
def _two_turns(second_turn_log_ratios, normalization=False):
    # tokens: turn 0 (2 tokens), an observation token (masked, turn -1), turn 1 (2 tokens)
    log_ratio = [[0.0, 0.02, 5.0, *second_turn_log_ratios]]
    techniques = TechniquesConfig(sorl=SORLConfig(clip_normalization=normalization))
    return _x(log_ratio, [1.0], mask=[[1, 1, 0, 1, 1]], turn_ids=[[0, 0, -1, 1, 1]], techniques=techniques)


def test_sorl_turn_ratios_by_hand():
    logp, x = _two_turns([0.1, 0.3])
    loss, grad, diag = _grad("sorl", logp, x)
    w0, w1 = math.exp(0.01), math.exp(0.2)  # geometric means of each turn's token ratios
    assert diag["ratio_mean"].item() == pytest.approx((2 * w0 + 2 * w1) / 4, rel=1e-6)
    # token-mean over 4 tokens of -w_k; d w_k / d logp_t = w_k / 2 for t in turn k; turn 1 (1.22 > 1.2) is clipped
    assert loss.item() == pytest.approx(-(2 * w0 + 2 * 1.2) / 4, rel=1e-6)
    assert grad[0].tolist() == pytest.approx([-w0 / 4, -w0 / 4, 0.0, 0.0, 0.0], rel=1e-5)
    assert diag["sorl/turn_clip_fraction"].item() == pytest.approx(0.5)


def test_sorl_one_drifted_turn_changes_only_that_turn():
    logp_a, x_a = _two_turns([0.0, 0.01])  # both turns near the behaviour policy
    logp_b, x_b = _two_turns([2.0, 3.0])  # turn 1 drifted far
    _, grad_a, _ = _grad("sorl", logp_a, x_a)
    _, grad_b, _ = _grad("sorl", logp_b, x_b)
    assert torch.allclose(grad_a[0, :2], grad_b[0, :2])  # turn 0 keeps its weight
    assert grad_b[0, 3:].abs().max().item() == 0.0 and grad_a[0, 3:].abs().min().item() > 0


def test_sorl_clipping_triggers_normalisation():
    logp, x = _two_turns([2.0, 3.0], normalization=True)
    _, grad, diag = _grad("sorl", logp, x)
    w0, w1 = math.exp(0.01), math.exp(2.5)
    bias = (2 * w1 * 1.0) / 4  # clipped turn's tokens, times |A| = 1, over the sample's 4 tokens
    scale = 1 / (1 + bias)
    assert grad[0, :2].tolist() == pytest.approx([-w0 / 4 * scale] * 2, rel=1e-5)
    assert diag["sorl/normalization_scale"].item() == pytest.approx(scale, rel=1e-6)
    # nothing clipped -> no normalisation
    logp, x = _two_turns([0.0, 0.01], normalization=True)
    _, _, diag = _grad("sorl", logp, x)
    assert diag["sorl/normalization_scale"].item() == 1.0 and diag["sorl/normalized_fraction"].item() == 0.0


def test_sorl_single_turn_is_sequence_level_clipped_is():
    logp, x = _x([[0.1, 0.2, 0.0]], [-1.0])
    loss, _, _ = _grad("sorl", logp, x)
    s = math.exp(0.1)  # geometric-mean ratio of the whole sequence
    assert loss.item() == pytest.approx(max(s, min(max(s, 0.8), 1.2)), rel=1e-6)


def test_sorl_sspo_composition():
    # single turn, normalisation off: exactly SSPO
    techniques = TechniquesConfig(sorl=SORLConfig(clip_normalization=False))
    logp, x = _x([[0.3, -0.2, 0.1]], [1.0], techniques=techniques)
    _, grad_composed, _ = _grad("sorl+sspo", logp, x)
    _, grad_sspo, _ = _grad("sspo", logp, x)
    assert torch.allclose(grad_composed, grad_sspo)
    # two turns: the gated geometric mean is taken per turn, so a drifted turn leaves the other turn alone
    logp_a, x_a = _two_turns([0.0, 0.01])
    logp_b, x_b = _two_turns([2.0, 3.0])
    _, grad_a, _ = _grad("sorl+sspo", logp_a, x_a)
    _, grad_b, diag = _grad("sorl+sspo", logp_b, x_b)
    assert torch.allclose(grad_a[0, :2], grad_b[0, :2])
    assert 0 < grad_b[0, 3:].abs().max().item() < grad_a[0, 3:].abs().min().item()  # soft, not cut


def test_both_ratio_techniques_resolve_to_the_composition():
    recipe_techniques = TechniquesConfig(sspo=SSPOConfig(enabled=True), sorl=SORLConfig(enabled=True))
    built = [TECHNIQUES[n](getattr(recipe_techniques, n), None) for n in recipe_techniques.enabled_names()]
    assert resolve_policy_loss(built, "ppo_clip") == "sorl+sspo"


# ------------------------------------------------------------------------------------------------ Search-P1
def test_coverage_is_order_agnostic_and_counts_multiplicity():
    assert coverage(["a", "b"], ["b", "a"]) == 1.0
    assert coverage(["a", "b"], ["a", "a", "x"]) == 0.5
    assert coverage(["a", "a"], ["a"]) == 0.5
    assert coverage([], ["a"]) == 0.0


def _traj(task, problem, segments):
    t = Trajectory(problem=problem, group=0, prompt_ids=[], segments=segments)
    t.correct = task.score(problem, segments).correct
    t.reward = t.outcome_reward = float(t.correct)
    return t


def test_search_p1_arithmetic_rewards_by_hand():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    right = _traj(task, problem, [Segment("7+5=12;12-3=9#9", True)])
    good_fail = _traj(task, problem, [Segment("7+5=12;12-3=8#8", True)])  # first step right
    bad_fail = _traj(task, problem, [Segment("7+5=11;11-3=8#8", True)])  # nothing right
    SearchP1(SearchP1Config(failure_cap=0.5), task).shape_rewards([right, good_fail, bad_fail])
    assert [right.reward, good_fail.reward, bad_fail.reward] == [1.0, 0.25, 0.0]
    assert good_fail.info["search_p1"]["self_consistency"] is None  # no written plan in arithmetic


def test_search_p1_search_dual_track_by_hand():
    task = SearchTask(SearchTaskConfig(num_people=6, num_cities=3, min_hops=2, max_hops=2))
    problem = next(p for p in task._all if p.meta["plan"] == ("boss", "city"))
    k1, _ = problem.reference_path
    wrong_city = next(c for c in task.cities if c != problem.answer)

    def episode(*turns):
        segs = []
        for turn in turns:
            segs += [Segment(turn, True), Segment("\no:x\n", False)]
        return _traj(task, problem, segs[:-1])

    followed_plan = episode(f"p:boss.city\ns[{k1}]", "s[zzz.city]", f"a[{wrong_city}]")  # SC 1, RA 1/2
    own_plan_only = episode("p:friend\ns[abc.friend]", f"a[{wrong_city}]")  # SC 1, RA 0
    aimless = episode("p:boss.city\n", f"a[{wrong_city}]")  # SC 0, RA 0
    SearchP1(SearchP1Config(failure_cap=0.5, self_consistency_weight=0.5), task).shape_rewards(
        [followed_plan, own_plan_only, aimless])
    assert followed_plan.info["search_p1"] == {"self_consistency": 1.0, "reference_alignment": 0.5, "path": 0.75}
    assert [followed_plan.reward, own_plan_only.reward, aimless.reward] == [0.375, 0.25, 0.0]


def test_search_p1_failed_but_good_outranks_failed_and_bad_and_never_a_success():
    task = ArithmeticTask(ArithmeticTaskConfig())
    problem = Problem("1+2+3+4=", "10", ("1+2=3", "3+3=6", "6+4=10"))
    texts = ["1+2=3;3+3=6;6+4=10#10", "1+2=3;3+3=6;6+4=11#11", "1+2=3;3+3=7;7+4=11#11", "1+2=4;4+3=7;7+4=11#11"]
    trajs = [_traj(task, problem, [Segment(t, True)]) for t in texts]
    SearchP1(SearchP1Config(failure_cap=0.9), task).shape_rewards(trajs)
    rewards = [t.reward for t in trajs]
    assert rewards == sorted(rewards, reverse=True) and len(set(rewards)) == 4
    assert max(rewards[1:]) < rewards[0]


# ------------------------------------------------------------------------------------------------ GC-RL
class VerdictBackend(RolloutBackend):
    """Answers every critique with a fixed text, and records the contexts it was asked to continue."""

    def __init__(self, tokenizer, text):
        self.tokenizer, self.text, self.contexts = tokenizer, text, []

    def generate_turn(self, contexts, stop_strings, params):
        self.contexts += contexts
        ids = self.tokenizer(self.text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return [TurnOutput(ids, True) for _ in contexts]


class FakeEngine:
    def __init__(self, text):
        self.tokenizer = build_char_tokenizer()
        self.rollout = VerdictBackend(self.tokenizer, text)


class FakeRecipe:
    seed = 0

    class rollout:
        temperature, top_p = 1.0, 1.0


def _responses(task, n_right, n_wrong):
    problem = Problem("7+5-3=", "9", ("7+5=12", "12-3=9"))
    right = [_traj(task, problem, [Segment("7+5=12;12-3=9#9", True)]) for _ in range(n_right)]
    wrong = [_traj(task, problem, [Segment("7+5=12;12-3=8#8", True)]) for _ in range(n_wrong)]
    tok = build_char_tokenizer()
    for i, t in enumerate(right + wrong):
        t.group, t.prompt_ids = 0, tok(problem.prompt)["input_ids"]
        t.completion_ids = tok(t.segments[0].text, add_special_tokens=False)["input_ids"]
        t.loss_mask, t.turn_ids = [1] * len(t.completion_ids), [0] * len(t.completion_ids)
    return right + wrong


@pytest.mark.parametrize("verdict_text, response_correct, reward", [
    ("yes", True, 1.0), ("yes", False, 0.0), ("no", True, 0.0), ("no", False, 1.0), ("maybe", True, 0.0),
    ("", False, 0.0),
])
def test_critique_reward_table(verdict_text, response_correct, reward):
    task = ArithmeticTask(ArithmeticTaskConfig())
    critique = Trajectory(problem=Problem("q", "", meta={"response_correct": response_correct}), group=0,
                          prompt_ids=[], segments=[Segment(verdict_text, True)])
    GCRL(GCRLConfig(), task, None, FakeRecipe()).score_critique(critique)
    assert critique.reward == reward and critique.kind == "critique"


def test_label_balance():
    task = ArithmeticTask(ArithmeticTaskConfig())
    responses = _responses(task, 10, 3)
    chosen = select_responses(responses, GCRLConfig(responses_per_step=16), random.Random(0))
    assert sum(t.correct for t in chosen) == 3 and len(chosen) == 6
    chosen = select_responses(responses, GCRLConfig(responses_per_step=4), random.Random(0))
    assert sum(t.correct for t in chosen) == 2 and len(chosen) == 4
    chosen = select_responses(responses, GCRLConfig(responses_per_step=16, balance_labels=False), random.Random(0))
    assert len(chosen) == 13


def test_critique_batch_has_both_kinds_with_correct_masks():
    task = ArithmeticTask(ArithmeticTaskConfig())
    responses = _responses(task, 3, 2)
    engine = FakeEngine("no")
    gcrl = GCRL(GCRLConfig(critiques_per_response=3, responses_per_step=8, critique_weight=0.5), task, engine,
                FakeRecipe())
    critiques = gcrl.expand_rollouts(responses, next_group=1)
    assert len(critiques) == 4 * 3  # 2 right + 2 wrong responses, m = 3 each
    groups = [c.group for c in critiques]
    assert sorted(set(groups)) == [1, 2, 3, 4] and all(groups.count(g) == 3 for g in set(groups))
    # the critique prompt holds the question and the response it judges; the verdict "no" is right for wrong ones
    tok = engine.tokenizer
    assert all(tok.decode(ctx, skip_special_tokens=True).startswith("7+5-3=7+5=12;12-3=") for ctx in engine.rollout.contexts)
    assert [c.reward for c in critiques] == [0.0 if c.problem.meta["response_correct"] else 1.0 for c in critiques]
    batch_trajs = responses + critiques
    adv = gcrl.adjust_advantages(batch_trajs, torch.ones(len(batch_trajs)))
    assert adv.tolist() == [1.0] * 5 + [0.5] * 12  # lambda scales the critique advantages only
    batch = collate(batch_trajs, adv, tok.pad_token_id)
    predicted = batch.input_ids[:, 1:]
    for i, t in enumerate(batch_trajs):
        trained = tok.decode(predicted[i][batch.loss_mask[i] == 1].tolist(), skip_special_tokens=True)
        assert trained == ("no" if t.kind == "critique" else t.segments[0].text)
    metrics = gcrl.metrics(batch_trajs)
    assert metrics["critique_accuracy"] == 0.5 and metrics["label_correct_share"] == 0.5


def test_no_critiques_when_m_is_zero():
    task = ArithmeticTask(ArithmeticTaskConfig())
    engine = FakeEngine("yes")
    gcrl = GCRL(GCRLConfig(critiques_per_response=0), task, engine, FakeRecipe())
    assert gcrl.expand_rollouts(_responses(task, 3, 3), next_group=1) == [] and engine.rollout.contexts == []
