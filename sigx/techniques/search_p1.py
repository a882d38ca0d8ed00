"""Search-P1 — path-centric reward shaping (Xia et al., arXiv 2602.22576).

Stage: reward (density). What it changes: the reward of *failed* trajectories. With an outcome reward a wrong
answer scores 0 whether the agent searched the right things and slipped at the end or wandered aimlessly, so a
group of failures carries no signal. Search-P1 scores the path itself, on two tracks ("dual-track path
scoring"), each an **order-agnostic step coverage** (the abstract's term: which required steps appear anywhere
in the path, counted with multiplicity, so repeating a step earns nothing twice):

    coverage(required, done) = | multiset(required) ∩ multiset(done) | / | required |

    self-consistency   SC = coverage(planned steps, executed steps mapped into the plan's vocabulary)
                       did the agent do what its own plan said? (search: plan "p:boss.city" vs the relation
                       of each executed search)
    reference          RA = coverage(reference path, executed steps)
                       how much of the task's gold path did it walk? (search: the gold search keys;
                       arithmetic: the gold steps "7+5=12", "12-3=9")
    path score         P = w * SC + (1 - w) * RA,   or P = RA when the transcript has no written plan
                       (the arithmetic task has none: its reference track is the whole score)
    shaped reward      R = R_outcome                 if the answer is correct (full reward kept)
                       R = failure_cap * P           otherwise, a soft score in [0, failure_cap]

The cap keeps every failure strictly below every success, so the shaped reward never prefers a good-looking
wrong path to a right answer; it only ranks failures. The reference path stands in for the paper's
offline-generated reference planner: sigx's tasks know their gold path exactly.

Sources and defaults. The method section was not readable from this environment (the search tool returns each
paper's opening only); the abstract commits to order-agnostic step coverage, soft scoring of failed samples and
the two tracks, which is what is implemented. ``failure_cap = 0.5`` and ``self_consistency_weight = 0.5``
(equal tracks) are sigx's defaults, not the paper's.
"""

from __future__ import annotations

from collections import Counter

from sigx.config import SearchP1Config
from sigx.engine.hooks import Technique
from sigx.techniques import register_technique


def coverage(required: list[str] | tuple[str, ...], done: list[str]) -> float:
    """Order-agnostic step coverage: the share of required steps present in ``done`` (with multiplicity)."""
    if not required:
        return 0.0
    matched = Counter(required) & Counter(done)
    return sum(matched.values()) / len(required)


def path_scores(task, problem, transcript, config: SearchP1Config) -> dict[str, float | None]:
    """The two tracks and their combination for one transcript (SC is None when there is no written plan)."""
    planned, executed = task.path_steps(problem, transcript)
    reference = coverage(problem.reference_path, executed)
    if planned:
        consistency = coverage(planned, [task.plan_step(s) for s in executed])
        w = config.self_consistency_weight
        path = w * consistency + (1 - w) * reference
    else:
        consistency, path = None, reference
    return {"self_consistency": consistency, "reference_alignment": reference, "path": path}


@register_technique
class SearchP1(Technique):
    name = "search_p1"
    config_class = SearchP1Config

    def shape_rewards(self, trajectories) -> None:
        for traj in trajectories:
            if traj.kind != "generation":
                continue
            scores = path_scores(self.task, traj.problem, traj.segments, self.config)
            traj.info["search_p1"] = scores
            if not traj.correct:
                traj.reward = self.config.failure_cap * scores["path"]

    def metrics(self, trajectories) -> dict[str, float]:
        scored = [t for t in trajectories if "search_p1" in t.info]
        failed = [t for t in scored if not t.correct]
        out = {"path_score": _mean(t.info["search_p1"]["path"] for t in scored),
               "reference_alignment": _mean(t.info["search_p1"]["reference_alignment"] for t in scored)}
        planned = [t.info["search_p1"]["self_consistency"] for t in scored if t.info["search_p1"]["self_consistency"] is not None]
        if planned:
            out["self_consistency"] = _mean(planned)
        if failed:
            out["soft_score"] = _mean(t.reward for t in failed)
            out["failed_with_signal"] = _mean(float(t.reward > 0) for t in failed)
        return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
