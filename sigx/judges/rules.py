"""A rule-based judge for tasks that know their steps exactly (sigx's built-in tasks): Search-P1's evaluation
(arXiv 2602.22576 App. D.3) without an LLM, each field by a stated rule on the paper's own scale.

=====================  =========================================================================================
field (App. D.3)       rule
=====================  =========================================================================================
planner_score          no written plan: 0.2 (Bad; the self-consistency track is 0 anyway, n_plan = 0). With a
                       reference plan: the same steps in the same order 1.2 (Excellent); every reference step,
                       in another order or with extra steps, 1.0 (Good); at least half of them 0.6 (Average);
                       fewer 0.2 (Bad). Without a reference plan a written plan cannot be rated by rule: 1.0
                       (Good, a neutral multiplier), so S_self is its coverage times its efficiency.
model_plan_steps       the number of steps in the written plan (n_plan).
effective_steps_self   planned steps that were executed: |multiset(plan) ∩ multiset(actions as plan steps)|,
                       exact matching, order-agnostic, a repeated action counting once per planned step (n_exec).
                       The task maps actions to plan steps (``Task.executed_as_plan``); the search task counts a
                       search as a hop only when it queries the entity its chain of searches has reached.
effective_steps_ref    reference steps covered: |multiset(reference path) ∩ multiset(actions)| (n_covered).
outcome_accuracy       1.0 when correct; else partial answer credit by word overlap with a golden answer
                       (SQuAD's normalisation, token F1): F1 = 1 -> 1.0, F1 > 0 -> 0.5 (Partial), else 0.
                       The built-in tasks' answers are single tokens, so a wrong one earns no partial credit.
outcome_reasoning      reasoning quality from the share c of the reference path covered (of the written plan
                       when there is no reference path): c = 1 -> 1.0, c >= 1/2 -> 0.8, c > 0 -> 0.5, else 0.
=====================  =========================================================================================
"""

from __future__ import annotations

from collections import Counter

from sigx.answers import normalize_answer
from sigx.judges.base import Judge, PathEvaluation, PathRequest


def matched(required, done) -> int:
    """|multiset(required) ∩ multiset(done)|: how many required steps ``done`` covers, in any order, each at
    most as often as it is required."""
    return sum((Counter(required) & Counter(done)).values())


def planner_score(planned: tuple[str, ...], reference_plan: tuple[str, ...]) -> float:
    if not planned:
        return 0.2
    if not reference_plan:
        return 1.0
    if tuple(planned) == tuple(reference_plan):
        return 1.2
    covered = matched(reference_plan, planned) / len(reference_plan)
    return 1.0 if covered == 1 else 0.6 if covered >= 0.5 else 0.2


def token_f1(prediction: str, golden: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(golden).split()
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def accuracy_score(answer: str | None, golden: tuple[str, ...], correct: bool) -> float:
    if correct:
        return 1.0
    if answer is None or not golden:
        return 0.0
    f1 = max(token_f1(answer, g) for g in golden)
    return 1.0 if f1 == 1.0 else 0.5 if f1 > 0 else 0.0


def reasoning_score(covered: int, required: int) -> float:
    if required == 0:
        return 0.0
    share = covered / required
    return 1.0 if share == 1 else 0.8 if share >= 0.5 else 0.5 if share > 0 else 0.0


def rule_evaluation(r: PathRequest) -> PathEvaluation:
    exec_self = matched(r.planned, r.executed_as_planned)
    covered = matched(r.reference_path, r.executed)
    reasoning = reasoning_score(covered, len(r.reference_path)) if r.reference_path \
        else reasoning_score(exec_self, len(r.planned))
    return PathEvaluation(
        planner_score=planner_score(r.planned, r.reference_plan),
        model_plan_steps=len(r.planned),
        effective_steps_self=exec_self,
        effective_steps_ref=covered,
        outcome_accuracy_score=accuracy_score(r.answer, r.golden_answers, r.correct),
        outcome_reasoning_score=reasoning,
    )


class RuleJudge(Judge):
    def evaluate(self, requests: list[PathRequest]) -> list[PathEvaluation]:
        return [rule_evaluation(r) for r in requests]
