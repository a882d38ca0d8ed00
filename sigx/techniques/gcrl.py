"""GC-RL — joint generation and critique training through a second-order rollout (Yang et al., arXiv 2602.22765).

Stage: rollout and reward (dimension). What it changes: the batch. A first-order rollout samples k responses
per question; the second-order rollout samples m critiques per response, asking the same policy whether the
response is correct. The critique's reward is free, because the response's correctness is already known:

    critique prompt    c_j = question + response_j + "verdict:"          (Task.critique_prompt)
    m critiques        v_{j,1..m} ~ pi_theta( . | c_j)                    same backend, same sampling settings
    critique reward    R(v_{j,l}) = 1  if verdict(v_{j,l}) == correct(response_j)  else 0  (no verdict: 0)
    advantages         group-normalised within each response's m critiques (each c_j is its own GRPO group)
    joint objective    J = J_generation + lambda * J_critique   (lambda scales the critique advantages, so
                       both kinds share one policy-loss call, one aggregation and one optimizer step)

Label balance (the paper's finding that critique training needs it): with ``balance_labels`` the responses sent
to critique are drawn half correct, half incorrect (as many of each as the smaller side has, up to
``responses_per_step``); otherwise a policy that is mostly right would learn that "yes" is always right.

m = 0 (or ``responses_per_step = 0``) adds nothing: the step is exactly the baseline GRPO step (tested).

Sources and defaults. The method section was not readable from this environment (the search tool returns each
paper's opening only). The abstract commits to the second-order rollout, joint training on GRPO and label
balance; the paper's noise mitigation by sampling is not implemented. m = 4, 16 critiqued responses per step
and lambda = 1 are sigx's defaults for the CPU demo, not the paper's.
"""

from __future__ import annotations

import random

import torch

from sigx.config import GCRLConfig
from sigx.engine.hooks import Technique
from sigx.engine.rollout import SamplingParams
from sigx.tasks.base import Problem
from sigx.techniques import register_technique


class CritiqueEnvironment:
    """What the rollout backend needs of a task, for critiques: one turn, ended by EOS, no environment reply."""

    max_turns = 1
    turn_stop_strings: tuple[str, ...] = ()

    def respond(self, problem, turns):
        return None


def select_responses(responses, config: GCRLConfig, rng: random.Random) -> list:
    """The responses to critique: balanced between correct and incorrect when asked, at most
    ``responses_per_step``."""
    if config.balance_labels:
        right = [t for t in responses if t.correct]
        wrong = [t for t in responses if not t.correct]
        each = min(len(right), len(wrong), config.responses_per_step // 2)
        return rng.sample(right, each) + rng.sample(wrong, each)
    return rng.sample(responses, min(len(responses), config.responses_per_step))


@register_technique
class GCRL(Technique):
    name = "gcrl"
    config_class = GCRLConfig

    def __init__(self, config, task, engine=None, recipe=None):
        super().__init__(config, task, engine, recipe)
        self.rng = random.Random(f"gcrl-{recipe.seed if recipe is not None else 0}")

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(state["rng"])

    def expand_rollouts(self, trajectories, next_group):
        c = self.config
        responses = [t for t in trajectories if t.kind == "generation"]
        chosen = select_responses(responses, c, self.rng) if c.critiques_per_response > 0 else []
        if not chosen:
            return []
        problems, groups = [], []
        for j, response in enumerate(chosen):
            prompt = self.task.critique_prompt(response.problem, response.segments)
            problem = Problem(prompt=prompt, answer="yes" if response.correct else "no",
                              meta={"response_correct": response.correct})
            problems += [problem] * c.critiques_per_response
            groups += [next_group + j] * c.critiques_per_response
        r = self.recipe.rollout
        params = SamplingParams(c.critique_max_tokens, r.temperature, r.top_p)
        critiques = self.engine.rollout.rollout(CritiqueEnvironment(), problems, groups, params, self.engine.tokenizer)
        for critique in critiques:
            self.score_critique(critique)
        return critiques

    def score_critique(self, critique) -> None:
        verdict = self.task.parse_verdict(self.task.model_text(critique.segments))
        critique.kind = "critique"
        critique.correct = verdict is not None and verdict == critique.problem.meta["response_correct"]
        critique.reward = critique.outcome_reward = 1.0 if critique.correct else 0.0
        critique.info["gcrl"] = {"verdict": verdict}

    def adjust_advantages(self, trajectories, advantages: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor([self.config.critique_weight if t.kind == "critique" else 1.0 for t in trajectories])
        return advantages * weight

    def metrics(self, trajectories) -> dict[str, float]:
        critiques = [t for t in trajectories if t.kind == "critique"]
        if not critiques:
            return {"critiques": 0.0}
        verdicts = [t.info["gcrl"]["verdict"] for t in critiques]
        return {
            "critiques": float(len(critiques)),
            "critique_accuracy": sum(t.correct for t in critiques) / len(critiques),
            "verdict_rate": sum(v is not None for v in verdicts) / len(verdicts),
            "says_correct": sum(v is True for v in verdicts) / len(verdicts),
            "label_correct_share": sum(t.problem.meta["response_correct"] for t in critiques) / len(critiques),
        }
