"""The task interface: how sigx asks a task for prompts, demonstrations, environment steps and rewards.

A task is both a data set (``train_problem``/``eval_problems``) and, for multi-turn tasks, an environment
(``respond``). A technique that needs more of a task states it in a protocol beside the technique (Search-P1's
``PathTask``, GC-RL's ``CritiqueTask``), checked when the technique is built. Everything is text; the rollout engine owns tokenisation, so a task works with any model.
Add your own task by subclassing :class:`Task` and registering it with :func:`sigx.tasks.register_task`.
"""

from __future__ import annotations

import random
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One prompt with everything needed to judge an answer to it."""

    prompt: str
    answer: str
    #: the gold steps (arithmetic steps, search keys, a dataset's reference path): Search-P1's reference track
    reference_path: tuple[str, ...] = ()
    #: the reference plan in the vocabulary of a written plan (search: the relations to follow), when known
    reference_plan: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Segment:
    """A piece of a transcript: ``by_model`` text is trained on, environment text (observations) is not."""

    text: str
    by_model: bool


#: a transcript's format, as Search-P1's Alg. 3 grades it
Format = Literal["valid", "partial", "invalid"]


@dataclass(frozen=True)
class Score:
    reward: float
    correct: bool
    answer: str | None = None
    #: further measures of the same answer, averaged per held-out set in evaluation (e.g. QA's ``em``, ``acc``)
    metrics: dict = field(default_factory=dict, compare=False, hash=False)


def is_eval_split(prompt: str, fraction: float = 0.2) -> bool:
    """Deterministic held-out split by prompt text, so train sampling never draws an evaluation prompt."""
    return zlib.crc32(prompt.encode()) % 1000 < fraction * 1000


class Task(ABC):
    name: str = "task"
    #: a turn ends when the model emits one of these (besides EOS); the environment then replies
    turn_stop_strings: tuple[str, ...] = ()
    max_turns: int = 1
    #: environment tokens one reply may hold (per turn; the rollout cuts what is over, never a reply's kept
    #: tail); None: no cap
    max_observation_tokens: int | None = None
    #: False: a turn cut by ``max_new_tokens`` or ended by EOS ends the episode. True: the environment is asked
    #: after every turn (Search-R1 answers a turn without an action with a message, and the episode goes on)
    answers_every_turn: bool = False

    @abstractmethod
    def train_problem(self, rng: random.Random) -> Problem:
        """A training problem, never one from the evaluation split."""

    @abstractmethod
    def eval_problems(self) -> list[Problem]:
        """A fixed held-out set."""

    @abstractmethod
    def demonstration(self, problem: Problem, rng: random.Random, noise: float) -> list[Segment]:
        """A solved transcript for the SFT warm start; with probability ``noise`` it contains one wrong step."""

    def respond(self, problem: Problem, turns: list[str]) -> str | None:
        """The environment's reply to the model's latest turn, or None when the episode is over."""
        return None

    def respond_batch(self, problems: list[Problem], turns: list[list[str]]) -> list[str | tuple[str, str] | None]:
        """The replies to every episode still running after a turn, in one call: a task whose environment is a
        service (a retriever) answers them in one request. By default, :meth:`respond` for each. A reply may be
        ``(observation, tail)``: the rollout's per-turn cap on observation tokens cuts the observation, never the
        tail (a closing tag, an answer tag the environment opens)."""
        return [self.respond(p, t) for p, t in zip(problems, turns)]

    @abstractmethod
    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        """Outcome reward of a finished transcript (the completion only, prompt excluded)."""

    # ---------------------------------------------------------------- paths (Search-P1's path-centric reward)
    # Search-P1 also needs ``path_steps`` (its protocol, sigx.techniques.search_p1.PathTask): a task that never
    # meets Search-P1 need not read paths. These two have defaults that suit a task without tools.
    def executed_as_plan(self, problem: Problem, executed: list[str]) -> list[str]:
        """The executed steps in the vocabulary of the plan, for matching against it (Search-P1's n_exec). A
        step that does not execute a plan step may map to anything a plan never holds (e.g. itself). By default
        the steps themselves."""
        return list(executed)

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """Search-P1's format grade (Alg. 3, lines 2-7): ``valid`` when well formed with an answer (and, for a
        task with tools, at least one tool call), ``partial`` when it has an answer and a tool response but is
        not well formed, ``invalid`` otherwise. By default: valid when the task can read an answer."""
        return "valid" if self.score(problem, transcript).answer is not None else "invalid"

    # ---------------------------------------------------------------- critiques (GC-RL's second-order rollout)
    #: verdict words; a critique's last word decides (it may reason first)
    VERDICTS = {"yes": True, "no": False}

    def critique_prompt(self, problem: Problem, transcript: list[Segment]) -> str:
        """Question + the full transcript (observations included) -> a request for a verdict."""
        return f"{problem.prompt}{''.join(s.text for s in transcript)}\nverdict:"

    def refinement_prompt(self, problem: Problem, transcript: list[Segment], critique: str) -> str:
        """GC-RL's self-correction prompt (arXiv 2602.22765 §5.2): the critique context and the critique, then
        the question again, so that the policy answers it anew in the light of the critique."""
        return f"{self.critique_prompt(problem, transcript)}{critique}\n{problem.prompt}"

    def critique_demonstration(self, problem: Problem, transcript: list[Segment], correct: bool,
                               verify: bool = False) -> list[Segment]:
        """A critique of ``transcript`` for the SFT warm start: the bare verdict, or with ``verify``
        (single-turn tasks) the question solved anew, the response's own answer beside it, then the verdict: a
        critic that checks a response by re-deriving it (GC-RL's cold-start critiques "verify step by step",
        arXiv 2602.22765 App. A, Figure 6). ``correct`` is the verdict to teach (it may be a flipped label)."""
        verdict = "yes" if correct else "no"
        if verify and self.max_turns == 1:
            solution = self.model_text(self.demonstration(problem, random.Random(0), noise=0.0))
            claimed = self.score(problem, transcript).answer
            return [Segment(f"{solution} vs {claimed if claimed is not None else 'none'} {verdict}", True)]
        return [Segment(verdict, True)]

    def parse_verdict(self, text: str) -> bool | None:
        """True/False for a verdict of 'correct'/'incorrect', None when the critique ends without a verdict."""
        words = text.strip().split()
        return self.VERDICTS.get(words[-1].strip(".,!").lower()) if words else None

    def model_text(self, transcript: list[Segment]) -> str:
        return "".join(s.text for s in transcript if s.by_model)

    @staticmethod
    def alphabet() -> str:
        """Characters the task's text uses (the built-in tokenizer is built from these)."""
        return ""
