"""The search task in plain language, for hub instruct models (``task: {name: search, interface: natural}``).

Same knowledge base, questions, gold paths and environment as :mod:`sigx.tasks.search`; only the surface
changes, to the tag style of Search-R1 that instruct models follow from an instruction alone::

    user:       Answer the question by looking facts up ... Question: Which city does the boss of ann live in?
    assistant:  <plan>boss, city</plan> <search>ann.boss</search>
    environment:<result>bob</result>
    assistant:  <search>bob.city</search>
    environment:<result>rome</result>
    assistant:  <answer>rome</answer>

Observations (``<result>``) are environment tokens, masked from the loss. The names are made up, so the answer
cannot be recalled: the model must search. Critiques are asked in plain language (:mod:`sigx.tasks.natural`).
"""

from __future__ import annotations

import re

from sigx.tasks.base import Problem, Segment
from sigx.tasks.natural import NaturalCritique
from sigx.tasks.search import SearchTask

INSTRUCTION = (
    "Answer the question by looking facts up in a knowledge base. Every fact has a key made of a person's name "
    "and a relation: 'NAME.boss' (their boss), 'NAME.friend' (their friend) or 'NAME.city' (the city they live "
    "in). First write your plan, the relations you will follow, as <plan>relation, relation</plan>. Then look "
    "up one key at a time with <search>NAME.relation</search>; the result comes back as <result>value</result>. "
    "When you know the answer, write it as <answer>value</answer>."
)
_ACTION = re.compile(r"<(search|answer)>\s*([^<]*?)\s*</\1>\s*$")
_PLAN = re.compile(r"<plan>([^<]*)</plan>")
_SEARCHES = re.compile(r"<search>\s*([^<]*?)\s*</search>")
_PHRASES = {"boss": "the boss of {}", "friend": "the friend of {}", "city": "the city where {} lives"}


def question(start: str, relations: tuple[str, ...]) -> str:
    """``ann``, (boss, city) -> 'What is the city where the boss of ann lives?'"""
    subject = start
    for rel in relations:
        subject = _PHRASES[rel].format(subject)
    return f"What is {subject}?"


class NaturalSearchTask(NaturalCritique, SearchTask):
    name = "search"
    turn_stop_strings = ("</search>", "</answer>")
    action_pattern = _ACTION
    answer_kind = "answer"
    plan_pattern = _PLAN

    def _problem(self, start: str, relations: tuple[str, ...]) -> Problem:
        compact = super()._problem(start, relations)
        text = question(start, relations)
        return Problem(prompt=f"{INSTRUCTION}\n\nQuestion: {text}", answer=compact.answer,
                       reference_path=compact.reference_path, reference_plan=compact.reference_plan,
                       meta={**compact.meta, "question": text})

    def plan_text(self, relations: tuple[str, ...]) -> str:
        return f"<plan>{', '.join(relations)}</plan> "

    def search_text(self, key: str) -> str:
        return f"<search>{key}</search>"

    def observation_text(self, value: str) -> str:
        return f"\n<result>{value}</result>\n"

    def answer_text(self, value: str) -> str:
        return f"<answer>{value}</answer>"

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        text = self.model_text(transcript)
        plan = _PLAN.search(text)
        planned = [r.strip().lower() for r in re.split(r"[,.\s]+", plan.group(1)) if r.strip()] if plan else []
        return planned, [k.strip().lower() for k in _SEARCHES.findall(text)]
