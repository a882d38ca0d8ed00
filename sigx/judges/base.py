"""The judge interface and the evaluation it returns: the fields of Search-P1's dual-track evaluation prompt
(arXiv 2602.22576 App. D.3, Figure 9), on the paper's own scales."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sigx.config import RecipeError

#: App. D.3's scales. Planner: Bad / Average / Good / Excellent; outcome accuracy: Wrong / Partial / Correct;
#: reasoning quality: four levels
PLANNER_SCORES = (0.2, 0.6, 1.0, 1.2)
ACCURACY_SCORES = (0.0, 0.5, 1.0)
REASONING_SCORES = (0.0, 0.5, 0.8, 1.0)


class JudgeError(RecipeError):
    """A judge that cannot give an evaluation (endpoint down, replies that never parse): it stops the run with
    one line, like a recipe the engine cannot use, and the run resumes from its checkpoint once it is fixed."""

    def __init__(self, message: str):
        super().__init__([message])

    def __reduce__(self):
        return type(self), (self.problems[0],)


@dataclass(frozen=True)
class PathRequest:
    """One trajectory to evaluate, with what either judge needs: the text an LLM reads, and the steps a task
    reads off the transcript (its own parse) for the rules."""

    question: str
    golden_answers: tuple[str, ...]
    reference_plan: tuple[str, ...]  # () when the data has none
    reference_path: tuple[str, ...]  # () when the data has none: the reference track is off
    trajectory: str  # the whole transcript, observations included
    planned: tuple[str, ...]  # the written plan's steps (() without a plan)
    executed: tuple[str, ...]  # the actions taken (search keys; arithmetic steps)
    executed_as_planned: tuple[str, ...]  # the actions in the plan's vocabulary (search: the relation of a search
    # on the entity its chain has reached; any other search stays its key)
    answer: str | None
    correct: bool


@dataclass(frozen=True)
class PathEvaluation:
    """App. D.3's JSON: ``planner_score`` (0.2/0.6/1.0/1.2), ``model_plan_steps`` (n_plan),
    ``effective_steps_self`` (planned steps executed, n_exec), ``effective_steps_ref`` (reference steps covered,
    n_covered), ``outcome_accuracy_score`` (0/0.5/1 = r_acc), ``outcome_reasoning_score`` (0/0.5/0.8/1 = r_reason)."""

    planner_score: float
    model_plan_steps: int
    effective_steps_self: int
    effective_steps_ref: int
    outcome_accuracy_score: float
    outcome_reasoning_score: float


def snap(value: float, scale: tuple[float, ...]) -> float:
    """The scale's value nearest ``value`` (an evaluator may write 0.55 for 'partial')."""
    return min(scale, key=lambda s: (abs(s - value), s))


def consistent(e: PathEvaluation, n_actions: int, n_reference: int) -> PathEvaluation:
    """An evaluation made consistent with the counts the task parsed: scores on the paper's scales, counts
    non-negative, effective steps at most the steps they are drawn from and at most the actions taken (so each
    track's efficiency factor n_effective / n_actions stays <= 1)."""
    plan_steps = max(0, int(e.model_plan_steps))
    return PathEvaluation(
        planner_score=snap(e.planner_score, PLANNER_SCORES),
        model_plan_steps=plan_steps,
        effective_steps_self=max(0, min(int(e.effective_steps_self), plan_steps, n_actions)),
        effective_steps_ref=max(0, min(int(e.effective_steps_ref), n_reference, n_actions)),
        outcome_accuracy_score=snap(e.outcome_accuracy_score, ACCURACY_SCORES),
        outcome_reasoning_score=snap(e.outcome_reasoning_score, REASONING_SCORES),
    )


class Judge(ABC):
    @abstractmethod
    def evaluate(self, requests: list[PathRequest]) -> list[PathEvaluation]:
        """One evaluation per request, in order (a batch: an LLM judge sends them concurrently)."""

    def stats(self) -> dict[str, float]:
        """Counters for the step's diagnostics (an LLM judge: requests sent, cache hits)."""
        return {}
