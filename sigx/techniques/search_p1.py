"""Search-P1 — path-centric reward shaping (Xia et al., arXiv 2602.22576; full text read: §3, §4, §5, App. B-D).

Stage: reward (density). What it changes: the reward of EVERY trajectory, correct or not, which becomes a
weighted sum of a path score, a soft outcome score and a format score, so that failed trajectories keep a
graded signal and successes are ranked by how they were reached.

Equations, and the function of this module that computes each:

    Eq. 4   R_total  = lambda_p R_path + lambda_a R_outcome + lambda_f R_format          total_reward
            (App. B.2: lambda_p 0.3, lambda_a 0.6, lambda_f 0.1); Alg. 3 line 7: an invalid trajectory gets
            R_total = 0, whatever its answer.
    Eq. 6   S_self   = r_planner * n_exec / n_plan * n_exec / n_actions                    self_consistency
            r_planner the plan's rating (0.2 / 0.6 / 1.0 / 1.2, App. D.3), n_plan the written plan's steps,
            n_exec the planned steps executed, n_actions all actions taken. No plan: S_self = 0.
    Eq. 7   S_ref    = n_covered / |R_ref| * n_covered / n_actions                         reference_alignment
            n_covered the reference steps accomplished, in any order. No reference path in the data: the
            track is off (None), R_path = S_self, and the run's summary says so.
    §3.2.2  R_path   = max(S_self, S_ref)   (the maximum, not a weighted mean: a better strategy of the model's
            own is not diluted by a low reference score, and vice versa)                   path_reward
    Eq. 8   R_outcome = 1 if correct, else alpha r_acc + (1 - alpha) r_reason, alpha = 0.8  soft_outcome
            r_acc partial answer credit (0 / 0.5 / 1), r_reason reasoning quality (0 / 0.5 / 0.8 / 1).
    Alg. 3  R_format: valid (well formed, an answer, a tool call) / partial (an answer and a tool response)
            / invalid (-> R_total = 0).                                                  FORMAT_SCORES, Task.format_check

The efficiency factors n / n_actions of Eq. 6-7 ("to prevent reward hacking through excessive redundant steps",
§3.2.2) are on by default (``efficiency``); Alg. 3 omits them, and ``efficiency: false`` follows Alg. 3.
The plan rating, step matching, r_acc and r_reason come from a judge (:mod:`sigx.judges`): the paper's LLM
evaluator with the App. D.3 rubric (``judge: llm``, any OpenAI-compatible endpoint), or exact rules for tasks
that know their steps (``judge: rules``, the default for sigx's built-in tasks; each rule and how it maps to
the paper's scale is in :mod:`sigx.judges.rules`).

Where the paper's parts disagree, and what sigx follows:
- Alg. 3 writes r_f = 0.1 (valid) / 0.05 (partial) and then adds lambda_f r_f with lambda_f = 0.1, which would
  make format worth 0.01; §3.2 defines R_format as a reward term weighted by lambda_f. sigx reads Alg. 3's 0.1 /
  0.05 as the weighted contributions: R_format = 1 (valid) / 0.5 (partial), so lambda_f R_format = 0.1 / 0.05.
- App. B.2 says self-consistency is scored by "pairwise agreement using Jaccard similarity" over 3 sampled
  reasoning paths; §3.2.2 (Eq. 6), Alg. 3 and App. D.3 all score the model's execution of its own plan. sigx
  follows Eq. 6; the Jaccard variant is not implemented.
- App. B.2's "decay factor of 0.5 for partial matches" is the Partial level (0.5) of r_acc.
- Reference planners (§3.2.1, Eq. 5) are generated offline by rejection sampling and LLM voting; sigx does not
  generate them: the built-in tasks know their gold paths and plans, and a dataset may carry them per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sigx.config import SearchP1Config
from sigx.engine.hooks import Technique, register_technique
from sigx.engine.metrics import Room
from sigx.judges import PathEvaluation, PathRequest, build_judge
from sigx.tasks.base import Format, Problem, Score, Segment

class PathTask(Protocol):
    """What Search-P1 needs of a task: its plan and actions read off a transcript, those actions in the plan's
    vocabulary, Alg. 3's format grade and the outcome. sigx.tasks.base.Task gives the last three defaults."""

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        """(planned steps, executed steps) read off a transcript; path-level rewards compare these with
        ``problem.reference_path``. A task without an explicit plan returns an empty plan."""

    def executed_as_plan(self, problem: Problem, executed: list[str]) -> list[str]:
        """The executed steps in the plan's vocabulary (n_exec of Eq. 6)."""

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """Alg. 3's valid / partial / invalid."""

    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        """The outcome: correct or not, and the answer read."""


#: Alg. 3's format grades as R_format (see the module docstring for the scale); "invalid" zeroes R_total
FORMAT_SCORES = {"valid": 1.0, "partial": 0.5, "invalid": 0.0}


def self_consistency(e: PathEvaluation, n_actions: int, efficiency: bool = True) -> float:
    """Eq. 6: S_self = r_planner * n_exec / n_plan [* n_exec / n_actions]; 0 without a plan or an action."""
    if e.model_plan_steps == 0 or (efficiency and n_actions == 0):
        return 0.0
    score = e.planner_score * e.effective_steps_self / e.model_plan_steps
    return score * e.effective_steps_self / n_actions if efficiency else score


def reference_alignment(e: PathEvaluation, n_reference: int, n_actions: int, efficiency: bool = True) -> float | None:
    """Eq. 7: S_ref = n_covered / |R_ref| [* n_covered / n_actions]; None when there is no reference path."""
    if n_reference == 0:
        return None
    if efficiency and n_actions == 0:
        return 0.0
    score = e.effective_steps_ref / n_reference
    return score * e.effective_steps_ref / n_actions if efficiency else score


def path_reward(s_self: float, s_ref: float | None) -> float:
    """§3.2.2: R_path = max(S_self, S_ref) (S_self alone when the reference track is off)."""
    return s_self if s_ref is None else max(s_self, s_ref)


def soft_outcome(correct: bool, e: PathEvaluation, alpha: float, soft: bool = True) -> float:
    """Eq. 8: 1 when correct, else alpha r_acc + (1 - alpha) r_reason (0 with ``soft`` off: binary outcome)."""
    if correct:
        return 1.0
    return alpha * e.outcome_accuracy_score + (1 - alpha) * e.outcome_reasoning_score if soft else 0.0


def total_reward(fmt: str, r_path: float, r_outcome: float, config: SearchP1Config) -> float:
    """Eq. 4, with Alg. 3's gate: 0 for an invalid trajectory, else
    lambda_p R_path + lambda_a R_outcome + lambda_f R_format."""
    if fmt == "invalid":
        return 0.0
    return config.path_weight * r_path + config.outcome_weight * r_outcome + config.format_weight * FORMAT_SCORES[fmt]


@dataclass(frozen=True)
class PathScore:
    """Every term of one trajectory's reward (logged per step as ``search_p1/<term>``)."""

    s_self: float
    s_ref: float | None
    r_path: float
    r_outcome: float
    format: str
    r_format: float
    total: float
    evaluation: PathEvaluation


def score_path(e: PathEvaluation, fmt: str, correct: bool, n_actions: int, n_reference: int,
               config: SearchP1Config) -> PathScore:
    s_self = self_consistency(e, n_actions, config.efficiency)
    s_ref = reference_alignment(e, n_reference, n_actions, config.efficiency)
    r_path = path_reward(s_self, s_ref)
    r_outcome = soft_outcome(correct, e, config.outcome_alpha, config.soft_outcome)
    return PathScore(s_self, s_ref, r_path, r_outcome, fmt, FORMAT_SCORES[fmt],
                     total_reward(fmt, r_path, r_outcome, config), e)


def path_request(task, trajectory) -> PathRequest:
    """What a judge needs of one trajectory: the task's parse of its plan and actions, and its text."""
    problem, segments = trajectory.problem, trajectory.segments
    planned, executed = task.path_steps(problem, segments)
    return PathRequest(
        question=problem.meta.get("question", problem.prompt),
        golden_answers=(problem.answer, *problem.meta.get("golden_answers", ())),
        reference_plan=tuple(problem.reference_plan),
        reference_path=tuple(problem.reference_path),
        trajectory="".join(s.text for s in segments),
        planned=tuple(planned),
        executed=tuple(executed),
        executed_as_planned=tuple(task.executed_as_plan(problem, list(executed))),
        answer=task.score(problem, segments).answer,
        correct=trajectory.correct,
    )


@register_technique
class SearchP1(Technique):
    name = "search_p1"
    config_class = SearchP1Config
    task_protocol = PathTask
    room = {"failed_with_signal": Room("failed_with_signal", "mean", "share of failed trajectories Search-P1 gives "
                                       "a reward > 0")}
    summary_metrics = ("search_p1_reference_share",)

    def __init__(self, config, task, context=None):
        super().__init__(config, task, context)
        self.judge = build_judge(config)

    def shape_rewards(self, trajectories) -> None:
        generated = [t for t in trajectories if t.kind == "generation"]  # critiques keep their own reward
        requests = [path_request(self.task, t) for t in generated]
        for traj, request, evaluation in zip(generated, requests, self.judge.evaluate(requests)):
            fmt = self.task.format_check(traj.problem, traj.segments)
            score = score_path(evaluation, fmt, traj.correct, len(request.executed), len(request.reference_path),
                               self.config)
            traj.info["search_p1"] = score
            traj.reward = score.total

    def metrics(self, trajectories) -> dict[str, float]:
        scores = [t.info["search_p1"] for t in trajectories if "search_p1" in t.info]
        if not scores:
            return {}
        failed = [t.reward for t in trajectories if "search_p1" in t.info and not t.correct]
        with_reference = [s.s_ref for s in scores if s.s_ref is not None]
        out = {
            "r_path": _mean(s.r_path for s in scores),
            "s_self": _mean(s.s_self for s in scores),
            "r_outcome": _mean(s.r_outcome for s in scores),
            "r_format": _mean(s.r_format for s in scores),
            "format_invalid": _mean(float(s.format == "invalid") for s in scores),
            "planner_score": _mean(s.evaluation.planner_score for s in scores),
            "reward": _mean(s.total for s in scores),
            "reference_share": len(with_reference) / len(scores),
        }
        if with_reference:
            out["s_ref"] = _mean(with_reference)
        if failed:
            out["failed_reward"] = _mean(failed)
            out["failed_with_signal"] = _mean(float(r > 0) for r in failed)
        out.update(self.judge.stats())
        return out

    def summary(self, history: list[dict]) -> dict:
        shares = [row["reference_share"] for row in history if "reference_share" in row]
        if not shares:
            return {}
        share = sum(shares) / len(shares)
        note = ("both tracks" if share == 1 else
                "self-consistency track only: the data has no reference paths" if share == 0 else
                f"reference track on {share:.0%} of trajectories (the rest have no reference path)")
        return {"search_p1_reference_share": share, "search_p1_tracks": note}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0

