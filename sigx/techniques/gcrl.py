"""GC-RL — joint generation and critique training through a second-order rollout (Yang et al., arXiv 2602.22765;
full text read: §3, §4, §5, App. A-C).

Stage: rollout and reward (dimension). What it changes: the batch. The first-order rollout samples n responses
per question; the second-order rollout samples n critiques per <question, response> pair, asking the same
policy whether the response is correct. A critique's reward is free, because the response's correctness is
already known. One step (§3, Figure 2), and the code that does it:

    Eq. 1  R(r) = 1 if the response is correct, else 0                      the task's verifier (the trainer)
    §3     data filter: per question, if its n responses are all right or all wrong, drop them; else one right
           and one wrong response, chosen at random, enter the question-response cache    filter_pairs
           (``data_filter: false``: §5.1's "random sampling": two responses per question drawn uniformly at
           random from the whole step's responses, App. C)
    §3     a batch of pairs is sampled from the cache without replacement               QuestionResponseCache.take
           (this step's filtered pairs are added first; the oldest leave past ``cache_capacity``)
    §3     n critiques per pair (n = the rollout group size unless set)                 GCRL.expand_rollouts
    Eq. 2  R(c) = 0.7 if Ext(c) matches the response's correctness, else 0 (no verdict: 0)     critique_reward
    Eq. 3  (option ``reward_reweighting``, §5.1) a matching verdict earns 0.35 / E[R(r)] on a correct response
           and 0.35 / (1 - E[R(r)]) on a wrong one; E[R(r)] is estimated by this step's mean response reward
           (clamped to [0.05, 0.95])                                                   critique_reward
    Eq. 4  (option ``denoise``, §5.2) the policy self-corrects the response given the critique, n' times; with
           k of them correct, R_q(c) = 0.1 k/n' if Ext(c) = correct, 0.7 k/n' if Ext(c) = wrong; the critique's
           reward is R(c) + R_q(c). The self-corrections only estimate the reward; they are not trained.
                                                                                      denoise_reward
    §3     "[responses and critiques] are mixed into the same group to acquire advantages with GRPO"
                                                                                      critique_group_ids

How sigx reads "mixed into the same group" (``critique_groups: question``, the default). In GRPO a group is the
set of samples whose rewards are normalised together. Read literally, critiques are normalised together with
responses, and the natural common key is the question: a critique of <q, r> joins q's group of responses when
q was rolled out in this step; a cached pair whose question was not rolled out this step forms a group with the
other critiques of that question. Two details of the paper support this reading over "one group per pair":
(i) the critique reward is 0.7, not 1: with each pair's critiques in a group of their own, GRPO's (r - mean)/std
normalisation makes 0.7 and 1 identical, so the value would be inert; mixed with responses (rewarded 1), it
makes a right verdict worth less than a right answer. (ii) Eq. 3's 0.35/E[R(r)] and Eq. 5-6's 0.6/0.8 are
calibrated against the response rewards' scale. ``critique_groups: pair`` gives each pair's critiques their own
group (verl's one-uid-per-prompt), the other reading, for comparison.

Not implemented: the cold-start SFT on ~1.3k distilled critiques (§4.2; sigx's tiny model gets critique
examples in its own warm start, ``model.tiny.sft_critique_fraction``); static critique data (§5.3: dynamic data
suits GC-RL); the precision/recall reward variants of §5.4 (Eq. 5-6). ``critique_weight`` (advantage scale of
critiques, 1 = the paper) and ``pairs_per_step`` / ``cache_capacity`` (sizes the paper does not give) are sigx's.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import torch

from sigx.config import GCRLConfig
from sigx.engine.hooks import Technique, register_technique
from sigx.engine.metrics import Room
from sigx.engine.rollout import SamplingParams
from sigx.tasks.base import Problem, Score, Segment

class CritiqueTask(Protocol):
    """What GC-RL needs of a task (sigx.tasks.base.Task gives defaults for all but score): the critique prompt of
    a (question, response) pair, the verdict read off a critique, the self-correction prompt of Eq. 4, the
    model's own text of a transcript, and the outcome that labels each response."""

    def critique_prompt(self, problem: Problem, transcript: list[Segment]) -> str:
        """Question + response -> a request for a verdict."""

    def parse_verdict(self, text: str) -> bool | None:
        """True / False for a verdict of correct / wrong; None without one."""

    def refinement_prompt(self, problem: Problem, transcript: list[Segment], critique: str) -> str:
        """The question asked again in the light of the critique (§5.2)."""

    def model_text(self, transcript: list[Segment]) -> str:
        """The model's own text of a transcript."""

    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        """Eq. 1's verifier."""


#: Eq. 3's E[R(r)] is clamped into this range: a step whose responses are all right (or all wrong) would
#: otherwise divide by zero
EXPECTED_REWARD_RANGE = (0.05, 0.95)


class CritiqueEnvironment:
    """What the rollout needs of a task, for critiques: one turn, ended by EOS, no environment reply."""

    max_turns = 1
    turn_stop_strings: tuple[str, ...] = ()
    max_observation_tokens = None
    answers_every_turn = False

    def respond_batch(self, problems, turns):
        return [None] * len(problems)


@dataclass(frozen=True)
class CachedPair:
    """A <question, response> pair in the cache, with the response's known correctness (Eq. 1)."""

    problem: Problem
    transcript: tuple[Segment, ...]
    correct: bool

    @property
    def question(self) -> str:
        return self.problem.prompt

    def to_state(self) -> dict:  # plain data, for the checkpoint (loaded with weights_only)
        return {"problem": asdict(self.problem), "transcript": [(s.text, s.by_model) for s in self.transcript],
                "correct": self.correct}

    @classmethod
    def from_state(cls, state: dict) -> "CachedPair":
        p = state["problem"]
        problem = Problem(p["prompt"], p["answer"], tuple(p["reference_path"]), tuple(p.get("reference_plan", ())),
                          dict(p["meta"]))
        return cls(problem, tuple(Segment(text, by_model) for text, by_model in state["transcript"]), state["correct"])


def filter_pairs(responses, rng: random.Random, data_filter: bool = True) -> list[CachedPair]:
    """§3's data filter over one step's responses (a question's responses share their GRPO group): drop a
    question whose responses are all right or all wrong, else keep one right and one wrong, chosen at random.

    Without the filter, §5.1's "randomly sampling responses" (App. C: "responses are sampled uniformly at
    random", so the labels keep the rollout's E[R(r)] : 1 - E[R(r)] balance): as many pairs as the filter keeps
    at most, two per question, drawn uniformly at random from all of the step's responses, in random order (so
    that a cache cut to its capacity keeps a random subset, not the last questions' responses)."""
    pairs = [CachedPair(t.problem, tuple(t.segments), t.correct) for t in responses]
    by_question: dict[int, list[CachedPair]] = {}
    for traj, pair in zip(responses, pairs):
        by_question.setdefault(traj.group, []).append(pair)
    if not data_filter:
        return rng.sample(pairs, min(len(pairs), 2 * len(by_question)))
    kept = []
    for group in by_question.values():
        right = [p for p in group if p.correct]
        wrong = [p for p in group if not p.correct]
        if right and wrong:
            kept += [rng.choice(right), rng.choice(wrong)]
    return kept


class QuestionResponseCache:
    """§3's question-response data cache: filtered pairs go in, a batch is taken out at random without
    replacement; past ``capacity`` the oldest pairs leave first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.pairs: list[CachedPair] = []

    def __len__(self) -> int:
        return len(self.pairs)

    def add(self, pairs: list[CachedPair]) -> None:
        self.pairs = (self.pairs + list(pairs))[-self.capacity:]

    def take(self, k: int, rng: random.Random) -> list[CachedPair]:
        chosen = sorted(rng.sample(range(len(self.pairs)), min(k, len(self.pairs))))
        taken = [self.pairs[i] for i in chosen]
        keep = set(range(len(self.pairs))) - set(chosen)
        self.pairs = [p for i, p in enumerate(self.pairs) if i in keep]
        return taken


def critique_reward(verdict: bool | None, response_correct: bool, config: GCRLConfig,
                    expected_response_reward: float = 0.5) -> float:
    """Eq. 2: ``critique_reward`` (0.7) when the verdict matches the response's correctness, else 0 (a critique
    without a verdict included). With ``reward_reweighting``, Eq. 3: 0.35 / E[R(r)] for a correct response,
    0.35 / (1 - E[R(r)]) for a wrong one (E clamped to EXPECTED_REWARD_RANGE)."""
    if verdict is None or verdict != response_correct:
        return 0.0
    if not config.reward_reweighting:
        return config.critique_reward
    low, high = EXPECTED_REWARD_RANGE
    expected = min(max(expected_response_reward, low), high)
    return 0.35 / expected if response_correct else 0.35 / (1.0 - expected)


def denoise_reward(verdict: bool | None, corrected: int, attempts: int) -> float:
    """Eq. 4: R_q(c) = 0.1 k/n when the critique says the response is correct, 0.7 k/n when it says wrong (k of
    n self-corrections correct); 0 without a verdict."""
    if verdict is None or attempts == 0:
        return 0.0
    return (0.1 if verdict else 0.7) * corrected / attempts


def critique_group_ids(pairs: list[CachedPair], question_groups: dict[str, int], next_group: int,
                       mode: str) -> list[int]:
    """The GRPO group of each pair's critiques. ``question``: the group of the pair's question's responses when
    it was rolled out this step (``question_groups``), else a new group per question; ``pair``: a new group per
    pair. New ids start at ``next_group``."""
    ids, new = [], {}
    for i, pair in enumerate(pairs):
        if mode == "question" and pair.question in question_groups:
            ids.append(question_groups[pair.question])
            continue
        key = pair.question if mode == "question" else i
        if key not in new:
            new[key] = next_group + len(new)
        ids.append(new[key])
    return ids


@register_technique
class GCRL(Technique):
    name = "gcrl"
    config_class = GCRLConfig
    task_protocol = CritiqueTask
    room = {"critique_accuracy_start": Room("critique_accuracy", "first", "GC-RL critique accuracy at the first "
                                            "step (a critic at chance gives its critiques nothing to learn from)")}
    summary_metrics = ("final_critique_accuracy",)

    def __init__(self, config, task, context=None):
        super().__init__(config, task, context)
        self.rng = random.Random(f"gcrl-{self.context.seed}")  # the filter's and the cache's choices
        self.sampler = self.context.generator("gcrl")  # the critiques' and self-corrections' token draws
        self.cache = QuestionResponseCache(config.cache_capacity)
        self.last: dict[str, float] = {}  # this step's cache and reward diagnostics, for metrics()

    @property
    def critiques_per_pair(self) -> int:
        n = self.config.critiques_per_response
        return self.context.group_size if n is None else n

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "sampler": self.sampler.get_state(),
                "cache": [p.to_state() for p in self.cache.pairs]}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.sampler.set_state(state["sampler"])
        self.cache.pairs = [CachedPair.from_state(p) for p in state.get("cache", [])]

    # ---------------------------------------------------------------------------------------- the rollout
    def expand_rollouts(self, trajectories, next_group):
        c, n = self.config, self.critiques_per_pair
        responses = [t for t in trajectories if t.kind == "generation"]
        self.cache.add(filter_pairs(responses, self.rng, c.data_filter))
        pairs = self.cache.take(c.pairs_per_step, self.rng) if n > 0 else []
        expected = sum(t.outcome_reward for t in responses) / max(len(responses), 1)
        self.last = {"cache_size": float(len(self.cache)), "pairs": float(len(pairs))}
        if c.reward_reweighting:
            self.last["expected_response_reward"] = expected
        if not pairs:
            return []
        question_groups: dict[str, int] = {}
        for t in responses:
            question_groups.setdefault(t.problem.prompt, t.group)
        groups = critique_group_ids(pairs, question_groups, next_group, c.critique_groups)
        problems = [Problem(prompt=self.task.critique_prompt(p.problem, list(p.transcript)),
                            answer="yes" if p.correct else "no", meta={"pair": i, "response_correct": p.correct})
                    for i, p in enumerate(pairs)]
        params = SamplingParams(c.critique_max_tokens, self.context.sampling.temperature, self.context.sampling.top_p)
        critiques = self.context.generate(CritiqueEnvironment(), [p for p in problems for _ in range(n)],
                                          [g for g in groups for _ in range(n)], params, self.sampler)
        for critique in critiques:
            verdict = self.task.parse_verdict(self.task.model_text(critique.segments))
            response_correct = critique.problem.meta["response_correct"]
            critique.kind = "critique"
            critique.correct = verdict is not None and verdict == response_correct
            critique.reward = critique.outcome_reward = critique_reward(verdict, response_correct, c, expected)
            critique.info["gcrl"] = {"verdict": verdict, "joined_responses": critique.group in question_groups.values()}
        if c.denoise:
            self._denoise(critiques, pairs)
        return critiques

    def _denoise(self, critiques, pairs: list[CachedPair]) -> None:
        """Eq. 4: self-corrections of each critiqued response, guided by the critique; add R_q to its reward."""
        k = self.config.refinements_per_critique
        refine = []
        for critique in critiques:
            pair = pairs[critique.problem.meta["pair"]]
            prompt = self.task.refinement_prompt(pair.problem, list(pair.transcript),
                                                 self.task.model_text(critique.segments))
            refine += [replace(pair.problem, prompt=prompt)] * k
        s = self.context.sampling
        refined = self.context.generate(self.task, refine, list(range(len(refine))), s, self.sampler)
        for i, critique in enumerate(critiques):
            batch = refined[i * k:(i + 1) * k]
            corrected = sum(self.task.score(r.problem, r.segments).correct for r in batch)
            bonus = denoise_reward(critique.info["gcrl"]["verdict"], corrected, k)
            critique.info["gcrl"].update(denoise=bonus, corrected=corrected / k)
            critique.reward = critique.outcome_reward = critique.reward + bonus

    # ---------------------------------------------------------------------------------------- advantages
    def adjust_advantages(self, trajectories, advantages: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor([self.config.critique_weight if t.kind == "critique" else 1.0 for t in trajectories])
        return advantages * weight

    # ---------------------------------------------------------------------------------------- diagnostics
    def metrics(self, trajectories) -> dict[str, float]:
        critiques = [t for t in trajectories if t.kind == "critique"]
        out = {**self.last, "critiques": float(len(critiques))}
        if not critiques:
            return out
        verdicts = [t.info["gcrl"]["verdict"] for t in critiques]
        out.update({
            "critique_reward": sum(t.reward for t in critiques) / len(critiques),
            "critique_accuracy": sum(t.correct for t in critiques) / len(critiques),
            "verdict_rate": sum(v is not None for v in verdicts) / len(verdicts),
            "says_correct": sum(v is True for v in verdicts) / len(verdicts),
            "label_correct_share": sum(t.problem.meta["response_correct"] for t in critiques) / len(critiques),
            "shared_group_share": sum(t.info["gcrl"]["joined_responses"] for t in critiques) / len(critiques),
        })
        if self.config.denoise:
            out["denoise_reward"] = sum(t.info["gcrl"]["denoise"] for t in critiques) / len(critiques)
            out["corrected_share"] = sum(t.info["gcrl"]["corrected"] for t in critiques) / len(critiques)
        return out

    def summary(self, history: list[dict]) -> dict:
        accuracy = [row["critique_accuracy"] for row in history if "critique_accuracy" in row]
        return {"final_critique_accuracy": sum(accuracy[-5:]) / len(accuracy[-5:])} if accuracy else {}
