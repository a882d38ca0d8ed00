"""GC-RL (arXiv 2602.22765) on hand-built rollouts: the data filter, the question-response cache, the critique
rewards of Eq. 2-4, the grouping of critiques with responses, and an exact resume of the cache."""

import io
import random
from collections import Counter
import statistics

import pytest
import torch

from sigx.config import ArithmeticTaskConfig, GCRLConfig
from sigx.engine.advantages import grpo_advantages
from sigx.engine.trajectory import Trajectory
from sigx.tasks.arithmetic import ArithmeticTask
from sigx.tasks.base import Problem, Segment
from sigx.techniques import TechniqueContext
from sigx.techniques.gcrl import (GCRL, CachedPair, CritiqueEnvironment, QuestionResponseCache, critique_group_ids,
                                  critique_reward, denoise_reward, filter_pairs)

TASK = ArithmeticTask(ArithmeticTaskConfig())
QUESTIONS = {"A": Problem("7+5-3=", "9", ("7+5=12", "12-3=9")), "B": Problem("1+1=", "2", ("1+1=2",)),
             "C": Problem("2+2=", "4", ("2+2=4",))}
RIGHT = {"A": "7+5=12;12-3=9#9", "B": "1+1=2#2", "C": "2+2=4#4"}
WRONG = {"A": "7+5=12;12-3=8#8", "B": "1+1=3#3", "C": "2+2=5#5"}


def response(question: str, group: int, right: bool) -> Trajectory:
    problem = QUESTIONS[question]
    t = Trajectory(problem=problem, group=group, prompt_ids=[0], segments=[Segment((RIGHT if right else WRONG)[question], True)])
    t.correct = TASK.score(problem, t.segments).correct
    t.reward = t.outcome_reward = float(t.correct)
    return t


def step_responses():
    """Question A: 2 right, 2 wrong (group 0); B: all right (group 1); C: all wrong (group 2)."""
    return ([response("A", 0, r) for r in (True, False, True, False)] + [response("B", 1, True) for _ in range(4)]
            + [response("C", 2, False) for _ in range(4)])


class ScriptedPolicy:
    """A generate function: critiques answer ``verdict``; self-corrections (asked through the task) answer
    the question rightly. It records what it was asked."""

    def __init__(self, verdict="no"):
        self.verdict, self.calls = verdict, []

    def __call__(self, environment, problems, groups, params, generator=None):
        self.calls.append((environment, list(problems), list(groups), params))
        out = []
        for problem, group in zip(problems, groups):
            critique = isinstance(environment, CritiqueEnvironment)
            text = self.verdict if critique else next(RIGHT[q] for q, p in QUESTIONS.items() if problem.prompt.endswith(p.prompt))
            out.append(Trajectory(problem=problem, group=group, prompt_ids=[0], completion_ids=[1], loss_mask=[1],
                                  turn_ids=[0], segments=[Segment(text, True)]))
        return out


def gcrl(policy, group_size=4, **config) -> GCRL:
    return GCRL(GCRLConfig(enabled=True, **config), TASK, TechniqueContext(seed=0, group_size=group_size, generate=policy))


# ------------------------------------------------------------------------------------------------ §3 data filter
def test_filter_keeps_one_right_and_one_wrong_per_mixed_question_only():
    pairs = filter_pairs(step_responses(), random.Random(0))
    assert [(p.question, p.correct) for p in pairs] == [("7+5-3=", True), ("7+5-3=", False)]
    assert len(filter_pairs(step_responses(), random.Random(0), data_filter=False)) == 6  # two per question


def test_without_the_filter_the_cache_holds_a_uniform_random_sample_of_the_steps_responses():
    """§5.1 / App. C: random sampling draws responses uniformly, so every response of the step is equally
    likely to reach the cache (16 slots, 64 responses: 1/4 each) and the labels keep the rollout's balance. The
    old reading put all 64 in and kept the last 16: the last 2 questions only."""
    questions, group_size, capacity, draws = 8, 8, 16, 3000
    responses = [Trajectory(problem=Problem(f"q{g}", ""), group=g, prompt_ids=[0], segments=[Segment(f"r{g}.{i}", True)],
                            correct=i % 4 == 0) for g in range(questions) for i in range(group_size)]
    rng, chosen, spans = random.Random(0), Counter(), []
    for _ in range(draws):
        cache = QuestionResponseCache(capacity)
        cache.add(filter_pairs(responses, rng, data_filter=False))
        chosen.update(p.transcript[0].text for p in cache.pairs)
        spans.append(len({p.question for p in cache.pairs}))
    shares = [chosen[t.segments[0].text] / draws for t in responses]
    assert all(abs(share - capacity / len(responses)) < 0.05 for share in shares)  # ~0.25 each, sd ~0.008
    assert sum(spans) / draws > 6  # questions represented (the FIFO reading: 2)
    label = sum(chosen[t.segments[0].text] for t in responses if t.correct) / (draws * capacity)
    assert abs(label - 0.25) < 0.01  # E[R(r)] = 1/4 of responses right


def test_cache_takes_without_replacement_and_drops_the_oldest():
    cache = QuestionResponseCache(capacity=3)
    pairs = [CachedPair(Problem(str(i), ""), (), i % 2 == 0) for i in range(5)]
    cache.add(pairs[:2])
    cache.add(pairs[2:])
    assert [p.question for p in cache.pairs] == ["2", "3", "4"]  # the oldest two left
    rng = random.Random(1)
    first, second = cache.take(2, rng), cache.take(2, rng)
    assert len(first) == 2 and len(second) == 1 and len(cache) == 0
    assert {p.question for p in first + second} == {"2", "3", "4"}  # each pair at most once


# ------------------------------------------------------------------------------------------------ Eq. 2-4
@pytest.mark.parametrize("verdict, response_correct, reward", [
    (True, True, 0.7), (False, False, 0.7), (True, False, 0.0), (False, True, 0.0), (None, True, 0.0), (None, False, 0.0),
])
def test_eq2_critique_reward(verdict, response_correct, reward):
    assert critique_reward(verdict, response_correct, GCRLConfig()) == reward


def test_eq3_reweighted_reward_is_unbiased_on_imbalanced_labels():
    c = GCRLConfig(reward_reweighting=True)
    assert critique_reward(True, True, c, expected_response_reward=0.25) == pytest.approx(0.35 / 0.25)
    assert critique_reward(False, False, c, expected_response_reward=0.25) == pytest.approx(0.35 / 0.75)
    assert critique_reward(True, False, c, expected_response_reward=0.25) == 0.0
    assert critique_reward(True, True, c, expected_response_reward=0.0) == pytest.approx(0.35 / 0.05)  # clamped
    # App. C, Eq. 9: E[R(c)] = E[R(r)] P1 0.35/E[R(r)] + (1 - E[R(r)]) P2 0.35/(1 - E[R(r)]) = 0.35 (P1 + P2)
    p, p1, p2 = 0.25, 0.9, 0.6
    expected = p * p1 * critique_reward(True, True, c, p) + (1 - p) * p2 * critique_reward(False, False, c, p)
    assert expected == pytest.approx(0.7 * (p1 + p2) / 2)


def test_eq4_denoised_reward():
    assert denoise_reward(True, corrected=1, attempts=2) == pytest.approx(0.1 * 1 / 2)
    assert denoise_reward(False, corrected=2, attempts=2) == pytest.approx(0.7)
    assert denoise_reward(None, corrected=2, attempts=2) == 0.0


# ------------------------------------------------------------------------------------------------ the step
def test_critiques_join_their_questions_group_and_get_grpo_advantages_with_the_responses():
    policy = ScriptedPolicy("no")
    technique = gcrl(policy)
    responses = step_responses()
    critiques = technique.expand_rollouts(responses, next_group=3)
    environment, problems, groups, params = policy.calls[0]
    assert isinstance(environment, CritiqueEnvironment) and params.max_new_tokens == 48
    assert len(critiques) == 2 * 4  # 2 pairs (A's right and wrong response), n = group size = 4 critiques each
    assert set(groups) == {0}  # mixed into question A's group of responses (§3)
    assert all(p.prompt.startswith("7+5-3=7+5=12;12-3=") and p.prompt.endswith("\nverdict:7+5-3=") for p in problems)
    assert sorted(c.reward for c in critiques) == [0.0] * 4 + [0.7] * 4  # "no" is right for the wrong response only
    rewards = torch.tensor([t.reward for t in responses + critiques])
    groups_all = torch.tensor([t.group for t in responses + critiques])
    advantages = grpo_advantages(rewards, groups_all)
    group_a = [1.0, 0.0, 1.0, 0.0] + [0.0] * 4 + [0.7] * 4
    mean, std = statistics.mean(group_a), statistics.stdev(group_a)
    assert advantages[0].item() == pytest.approx((1.0 - mean) / (std + 1e-4), rel=1e-5)
    assert advantages[-1].item() == pytest.approx((0.7 - mean) / (std + 1e-4), rel=1e-5)
    metrics = technique.metrics(responses + critiques)
    assert metrics["shared_group_share"] == 1.0 and metrics["cache_size"] == 0 and metrics["pairs"] == 2
    assert metrics["critique_accuracy"] == 0.5 and metrics["critique_reward"] == pytest.approx(0.35)


def test_pair_grouping_gives_each_pair_its_own_group():
    assert critique_group_ids([CachedPair(Problem("q1", ""), (), True), CachedPair(Problem("q1", ""), (), False),
                               CachedPair(Problem("q2", ""), (), True)], {"q1": 0}, 5, "pair") == [5, 6, 7]
    # question mode: q1 joins its responses' group 0; q2, not rolled out this step, gets a group per question
    assert critique_group_ids([CachedPair(Problem("q1", ""), (), True), CachedPair(Problem("q2", ""), (), True),
                               CachedPair(Problem("q2", ""), (), False)], {"q1": 0}, 5, "question") == [0, 5, 5]


def test_cached_pairs_of_earlier_steps_are_critiqued_later():
    technique = gcrl(ScriptedPolicy("yes"), pairs_per_step=1, critiques_per_response=2)
    first = technique.expand_rollouts(step_responses(), next_group=3)
    assert len(first) == 2 and len(technique.cache) == 1  # one of A's two pairs is left for later
    later = technique.expand_rollouts([response("B", 0, True) for _ in range(4)], next_group=1)
    assert len(later) == 2 and {c.group for c in later} == {1} and len(technique.cache) == 0  # A: not rolled out now


def test_no_critiques_when_n_or_pairs_are_zero():
    for config in ({"critiques_per_response": 0}, {"pairs_per_step": 0}):
        policy = ScriptedPolicy()
        assert gcrl(policy, **config).expand_rollouts(step_responses(), 3) == [] and policy.calls == []


def test_denoised_critique_reward_adds_self_correction_credit():
    policy = ScriptedPolicy("no")
    technique = gcrl(policy, denoise=True, refinements_per_critique=1, critiques_per_response=1)
    critiques = technique.expand_rollouts(step_responses(), next_group=3)
    environment, refine_problems, _, _ = policy.calls[1]
    assert environment is TASK and len(refine_problems) == 2
    assert refine_problems[0].prompt.endswith("\nverdict:7+5-3=no\n7+5-3=")  # critique context, critique, question
    # both self-corrections are right (k/n = 1) and both critiques say "wrong": R_q = 0.7 each
    by_label = {c.problem.meta["response_correct"]: c.reward for c in critiques}
    assert by_label == {False: pytest.approx(0.7 + 0.7), True: pytest.approx(0.0 + 0.7)}
    assert technique.metrics(critiques)["denoise_reward"] == pytest.approx(0.7)


def test_the_cache_and_rng_resume_exactly_from_a_checkpoint():
    original = gcrl(ScriptedPolicy("yes"), pairs_per_step=1, cache_capacity=16, data_filter=False)
    original.expand_rollouts(step_responses(), next_group=3)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = gcrl(ScriptedPolicy("yes"), pairs_per_step=1, cache_capacity=16, data_filter=False)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert [p.to_state() for p in resumed.cache.pairs] == [p.to_state() for p in original.cache.pairs]
    a = original.expand_rollouts(step_responses(), next_group=3)
    b = resumed.expand_rollouts(step_responses(), next_group=3)
    assert [(c.problem.prompt, c.group, c.reward) for c in a] == [(c.problem.prompt, c.group, c.reward) for c in b]


def test_critique_weight_scales_critique_advantages_only():
    technique = gcrl(ScriptedPolicy(), critique_weight=0.5)
    critique = Trajectory(problem=Problem("q", ""), group=0, prompt_ids=[0], kind="critique")
    adjusted = technique.adjust_advantages([response("A", 0, True), critique], torch.tensor([1.0, 1.0]))
    assert adjusted.tolist() == [1.0, 0.5]


def test_the_summary_writes_the_numbers_it_declares_as_metrics():
    """An ablation may declare ``final_critique_accuracy`` as its metric because GC-RL declares it: the summary
    writes exactly the numbers declared, the mean of the last five steps' critique accuracy."""
    rows = [{"critique_accuracy": a} for a in (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)]
    summary = gcrl(ScriptedPolicy()).summary(rows)
    assert set(summary) == set(GCRL.summary_metrics) and summary["final_critique_accuracy"] == pytest.approx(0.6)
