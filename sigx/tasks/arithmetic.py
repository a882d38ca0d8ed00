"""Multi-step arithmetic: a single-turn reasoning task with a checkable answer and a step-by-step path.

Prompt ``7+5-3=``; a solution is evaluated left to right, one step per ``;``: ``7+5=12;12-3=9#9``. The
answer follows ``#``. The gold steps (``7+5=12``, ``12-3=9``) are the reference path for path-level rewards.
"""

from __future__ import annotations

import random
import re

from sigx.config import ArithmeticTaskConfig
from sigx.tasks.base import Format, Problem, Score, Segment, Task, is_eval_split

_STEP = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


class ArithmeticTask(Task):
    name = "arithmetic"

    def __init__(self, config: ArithmeticTaskConfig):
        self.config = config
        self._eval = self._make_eval()

    # ---------------------------------------------------------------- problems
    def _random_problem(self, rng: random.Random) -> Problem:
        c = self.config
        n_ops = rng.randint(c.min_ops, c.max_ops)
        numbers = [rng.randint(0, c.max_operand) for _ in range(n_ops + 1)]
        ops = [rng.choice("+-") for _ in range(n_ops)]
        prompt = str(numbers[0]) + "".join(o + str(n) for o, n in zip(ops, numbers[1:])) + "="
        value, steps = numbers[0], []
        for op, n in zip(ops, numbers[1:]):
            new = _apply(value, op, n)
            steps.append(f"{value}{op}{n}={new}")
            value = new
        return Problem(prompt=prompt, answer=str(value), reference_path=tuple(steps))

    def train_problem(self, rng: random.Random) -> Problem:
        while True:
            problem = self._random_problem(rng)
            if not is_eval_split(problem.prompt):
                return problem

    def _make_eval(self) -> list[Problem]:
        rng = random.Random(self.config.seed)
        seen: dict[str, Problem] = {}
        for _ in range(200_000):
            if len(seen) == self.config.eval_prompts:
                break
            p = self._random_problem(rng)
            if is_eval_split(p.prompt):
                seen.setdefault(p.prompt, p)
        return list(seen.values())

    def eval_problems(self) -> list[Problem]:
        return self._eval

    # ---------------------------------------------------------------- SFT
    def demonstration(self, problem: Problem, rng: random.Random, noise: float) -> list[Segment]:
        steps = list(problem.reference_path)
        if rng.random() < noise:
            # One arithmetic slip, carried through the rest of the chain: a plausible, wrong demonstration.
            bad = rng.randrange(len(steps))
            a, op, b, _ = _STEP.match(steps[bad]).groups()
            value = _apply(int(a), op, int(b)) + rng.choice([-2, -1, 1, 2])
            steps[bad] = f"{a}{op}{b}={value}"
            for i in range(bad + 1, len(steps)):
                _, op, b, _ = _STEP.match(steps[i]).groups()
                new = _apply(value, op, int(b))
                steps[i] = f"{value}{op}{b}={new}"
                value = new
        answer = _STEP.match(steps[-1]).group(4)
        return [Segment(";".join(steps) + "#" + answer, by_model=True)]

    # ---------------------------------------------------------------- critiques
    def critique_prompt(self, problem: Problem, transcript: list[Segment]) -> str:
        """Question + response, then the question again after ``verdict:``: a critic that verifies by solving
        anew (``model.tiny.sft_critique_style: verify``) starts from the question itself, right where it
        writes, instead of copying the response it judges; a bare verdict follows the same prompt."""
        return f"{super().critique_prompt(problem, transcript)}{problem.prompt}"

    def critique_demonstration(self, problem: Problem, transcript: list[Segment], correct: bool,
                               verify: bool = False) -> list[Segment]:
        """With ``verify``: the question solved anew, then the difference between that answer and the response's
        (``12-3=9#9 9-8=1 no``): the check is one more subtraction, which the policy already knows, and the
        verdict follows from whether it is 0. (Comparing the two numbers directly, ``9 vs 8 no``, was measured
        at chance for the tiny model: it copied both numbers but did not learn equality.)"""
        claimed = self.score(problem, transcript).answer
        if not verify or claimed is None or not re.fullmatch(r"-?\d+", claimed):
            return super().critique_demonstration(problem, transcript, correct, verify)
        solution = self.model_text(self.demonstration(problem, random.Random(0), noise=0.0))
        check = f"{problem.answer}-{claimed}={int(problem.answer) - int(claimed)}".replace("--", "+")
        return [Segment(f"{solution} {check} {'yes' if correct else 'no'}", True)]

    # ---------------------------------------------------------------- reward
    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        text = self.model_text(transcript)
        if "#" not in text:
            return Score(0.0, False, None)
        answer = text.rsplit("#", 1)[1].strip()
        correct = answer == problem.answer
        return Score(1.0 if correct else 0.0, correct, answer)

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """No tools here: valid = every step ``a op b = c`` well formed and a number after ``#``; partial = an
        answer after ``#`` but a malformed step; invalid = no answer."""
        text = self.model_text(transcript)
        if "#" not in text:
            return "invalid"
        body, answer = text.rsplit("#", 1)
        steps = body.split(";")
        well_formed = re.fullmatch(r"-?\d+", answer.strip()) and all(_STEP.match(s) for s in steps)
        return "valid" if well_formed else "partial"

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        body = self.model_text(transcript).split("#", 1)[0]
        return [], [s for s in body.split(";") if s]

    @staticmethod
    def alphabet() -> str:
        return "0123456789+-*=;#"
