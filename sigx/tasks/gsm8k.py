"""GSM8K-style math word problems from a dataset: the single-turn task for real (hub) models.

Rows have a ``question`` and an ``answer`` that is a worked solution ending in ``#### <number>`` (GSM8K's own
format, with calculator annotations such as ``<<48/2=24>>``). They come from a local JSONL/Parquet copy
(``task.path``, what an offline cluster uses) or from the Hugging Face hub (``task.dataset``, default
``openai/gsm8k``; needs the ``datasets`` package and a network, or a warm HF cache).

- **Prompt**: the question, then ``task.instruction`` (by default: reason step by step and end with
  ``#### <number>``, GSM8K's answer line). Sent as a user message through the model's chat template.
- **Reward** (outcome, 0/1): the number on the last ``####`` line equals the reference answer;
  ``answer_format: flexible`` (the default) falls back to the last number in the response, as verl's
  GSM8K reward does in its flexible mode; ``strict`` requires the ``####`` line.
- **Path** (for Search-P1): the reference path is the list of intermediate results in the reference solution's
  calculator annotations (``<<48/2=24>>`` -> ``24``); the executed path is every number the response derives
  after an ``=``. Coverage then says how many of the gold intermediate quantities the response reached, so a
  wrong final answer built on mostly right intermediate steps scores above a wrong one built on nothing.
  There is no written plan, so Search-P1's self-consistency track scores 0 and the reference track decides. A
  dataset row may carry its own ``reference_path`` / ``reference_plan`` (a list, or a step per line).
- **Critiques** (for GC-RL): in plain language (:mod:`sigx.tasks.natural`).
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sigx.config import GSM8KTaskConfig, RecipeError
from sigx.tasks.base import Format, Problem, Score, Segment, Task
from sigx.tasks.natural import NaturalCritique
from sigx.tasks.rows import check_step_columns, read_rows, steps_column

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_DERIVED = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")


def normalize_number(text: str) -> str | None:
    """'1,234.50' / '$1234.5' / '1234.5.' -> '1234.5'; None when it is not a number."""
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return format(value.normalize(), "f") if value != value.to_integral() else str(int(value))


def final_answer(text: str, flexible: bool) -> str | None:
    found = _FINAL.findall(text)
    if found:
        return normalize_number(found[-1])
    if flexible:
        numbers = _NUMBER.findall(text)
        return normalize_number(numbers[-1]) if numbers else None
    return None


def reference_steps(solution: str) -> tuple[str, ...]:
    """Intermediate results of the calculator annotations, in order: ``<<48/2=24>>`` -> ``24``."""
    steps = []
    for expression in _ANNOTATION.findall(solution):
        if "=" in expression:
            value = normalize_number(expression.rsplit("=", 1)[1])
            if value is not None:
                steps.append(value)
    return tuple(steps)


def load_rows(config: GSM8KTaskConfig, split: str) -> list[dict]:
    """The split's rows, from ``task.path`` (a directory holding ``<split>.jsonl``/``.parquet``, or one file
    whose name starts with the split) or from the hub; every failure is a one-line :class:`RecipeError`."""
    if config.path:
        root = Path(config.path).expanduser()
        if not root.exists():
            raise RecipeError([f"task.path: {str(root)!r} does not exist"])
        candidates = [root] if root.is_file() else sorted(
            p for p in root.iterdir() if p.name.startswith(split) and p.suffix in (".jsonl", ".parquet"))
        if not candidates:
            raise RecipeError([f"task.path: no {split}.jsonl or {split}.parquet in {str(root)!r}"])
        rows = read_rows(candidates[0], "task.path")
    else:
        try:
            import datasets
        except ImportError:
            raise RecipeError(["task.dataset: loading from the hub needs the datasets package: "
                               "pip install 'sigx[gpu]' (or set task.path to a local copy)"]) from None
        try:
            rows = list(datasets.load_dataset(config.dataset, config.subset, split=split))
        except Exception as err:  # network, unknown name, unknown split: all end the same way for the user
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise RecipeError([f"task.dataset: cannot load {config.dataset!r} ({config.subset}, split {split!r}): "
                               f"{first}; download it where there is a network or set task.path"]) from None
    if not rows:
        raise RecipeError([f"task: split {split!r} has no rows"])
    for number, row in enumerate(rows, 1):
        missing = [k for k in ("question", "answer") if not isinstance(row.get(k), str) or not row.get(k).strip()]
        if missing:
            raise RecipeError([f"task: split {split!r} row {number} has no {' or '.join(repr(m) for m in missing)} "
                               "(each row needs a question and an answer ending in '#### <number>')"])
        check_step_columns(row, f"task: split {split!r} row {number}")
    return rows


class GSM8KTask(NaturalCritique, Task):
    name = "gsm8k"

    def __init__(self, config: GSM8KTaskConfig):
        self.config = config
        self._train = [self._problem(r) for r in load_rows(config, config.train_split)]
        held_out = [self._problem(r) for r in load_rows(config, config.eval_split)]
        random.Random(config.seed).shuffle(held_out)
        self._eval = held_out[: config.eval_prompts]

    def _problem(self, row: dict) -> Problem:
        solution = str(row["answer"])
        answer = final_answer(solution, flexible=False)
        if answer is None:
            raise RecipeError([f"task: a reference answer has no '#### <number>' line: {solution[-60:]!r}"])
        question = str(row["question"]).strip()
        # A dataset may carry its own reference path and plan (Search-P1's reference track); else the path is
        # the reference solution's calculator results and there is no reference plan.
        path = steps_column(row.get("reference_path")) or reference_steps(solution)
        return Problem(prompt=f"{question}\n\n{self.config.instruction}", answer=answer, reference_path=path,
                       reference_plan=steps_column(row.get("reference_plan")),
                       meta={"question": question, "solution": solution})

    def train_problem(self, rng: random.Random) -> Problem:
        return rng.choice(self._train)

    def eval_problems(self) -> list[Problem]:
        return self._eval

    def demonstration(self, problem: Problem, rng: random.Random, noise: float) -> list[Segment]:
        """The reference solution without its calculator annotations; with probability ``noise`` the final
        answer is off by a small amount (a slip at the end)."""
        text = _ANNOTATION.sub("", problem.meta["solution"])
        if rng.random() < noise:
            wrong = str(int(Decimal(problem.answer)) + rng.choice([-2, -1, 1, 2])) if "." not in problem.answer \
                else problem.answer + "1"
            text = _FINAL.sub(f"#### {wrong}", text)
        return [Segment(text, True)]

    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        answer = final_answer(self.model_text(transcript), flexible=self.config.answer_format == "flexible")
        correct = answer is not None and answer == problem.answer
        return Score(1.0 if correct else 0.0, correct, answer)

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """No tools: valid = a ``#### <number>`` line; partial = only a number the flexible reading would take;
        invalid = no number at all."""
        text = self.model_text(transcript)
        if final_answer(text, flexible=False) is not None:
            return "valid"
        return "partial" if final_answer(text, flexible=True) is not None else "invalid"

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        derived = [normalize_number(x) for x in _DERIVED.findall(self.model_text(transcript))]
        return [], [x for x in derived if x is not None]
