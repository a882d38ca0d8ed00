"""A multi-turn search environment over a generated knowledge base (a miniature Search-R1 setting).

The knowledge base gives each person a ``boss`` and a ``friend`` (people) and a ``city``. A question names a
start person and a chain of relations, ``q:ann.boss.city``. The agent first writes a plan, then one search
per hop, then answers; the environment replies to each search with an observation (masked from the loss)::

    q:ann.boss.city            <- prompt
    p:boss.city                <- plan      \\  turn 0
    s[ann.boss]                <- search    /
    o:bob                      <- observation (environment)
    s[bob.city]                <- turn 1
    o:rome                     <- observation (environment)
    a[rome]                    <- turn 2: the answer ends the episode

The gold path (the search keys ``ann.boss``, ``bob.city``) is known to the environment.
"""

from __future__ import annotations

import itertools
import random
import re

from sigx.config import SearchTaskConfig
from sigx.tasks.base import Format, Problem, Score, Segment, Task, is_eval_split

PERSON_RELATIONS = ("boss", "friend")
RELATIONS = PERSON_RELATIONS + ("city",)
_ACTION = re.compile(r"([sa])\[([^\]]*)\]\s*$")
_PLAN = re.compile(r"p:([a-z.]*)")
_SEARCHES = re.compile(r"s\[([^\]]*)\]")


def _names(rng: random.Random, count: int, length: int, taken: set[str]) -> list[str]:
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    out = []
    while len(out) < count:
        name = "".join(rng.choice(consonants if i % 2 == 0 else vowels) for i in range(length))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


class SearchTask(Task):
    name = "search"
    turn_stop_strings = ("]",)
    #: a turn's closing action, (kind, argument); the kind that answers (the others search); the written plan
    action_pattern = _ACTION
    answer_kind = "a"
    plan_pattern = _PLAN

    def __init__(self, config: SearchTaskConfig):
        self.config = config
        self.max_turns = config.max_turns
        rng = random.Random(config.seed)
        taken: set[str] = set()
        self.people = _names(rng, config.num_people, 3, taken)
        self.cities = _names(rng, config.num_cities, 4, taken)
        self.kb: dict[str, str] = {}
        for person in self.people:
            for rel in PERSON_RELATIONS:
                self.kb[f"{person}.{rel}"] = rng.choice([p for p in self.people if p != person])
            self.kb[f"{person}.city"] = rng.choice(self.cities)
        self._all = self._enumerate()
        self._train = [p for p in self._all if not is_eval_split(p.prompt, 0.25)]
        held_out = [p for p in self._all if is_eval_split(p.prompt, 0.25)]
        random.Random(config.seed + 1).shuffle(held_out)
        self._eval = held_out[: config.eval_prompts]

    def _problem(self, start: str, relations: tuple[str, ...]) -> Problem:
        entity, keys = start, []
        for rel in relations:
            key = f"{entity}.{rel}"
            keys.append(key)
            entity = self.kb[key]
        return Problem(
            prompt=f"q:{start}.{'.'.join(relations)}\n",
            answer=entity,
            reference_path=tuple(keys),
            reference_plan=tuple(relations),
            meta={"plan": relations, "start": start},
        )

    def _enumerate(self) -> list[Problem]:
        out = []
        for hops in range(self.config.min_hops, self.config.max_hops + 1):
            for middle in itertools.product(PERSON_RELATIONS, repeat=hops - 1):
                for last in RELATIONS:
                    for person in self.people:
                        out.append(self._problem(person, middle + (last,)))
        return out

    def train_problem(self, rng: random.Random) -> Problem:
        return rng.choice(self._train)

    def eval_problems(self) -> list[Problem]:
        return self._eval

    # ---------------------------------------------------------------- environment
    def respond(self, problem: Problem, turns: list[str]) -> str | None:
        match = self.action_pattern.search(turns[-1])
        if match is None or match.group(1) == self.answer_kind or len(turns) >= self.max_turns:
            return None
        return self.observation_text(self.kb.get(match.group(2).strip().lower(), "none"))

    def demonstration(self, problem: Problem, rng: random.Random, noise: float) -> list[Segment]:
        relations = problem.meta["plan"]
        # With probability `noise`, one hop searches a wrong entity; the rest follows from what it returned.
        bad_hop = rng.randrange(len(relations)) if rng.random() < noise else -1
        entity = problem.meta["start"]
        segments = [Segment(self.plan_text(relations), True)]
        for hop, rel in enumerate(relations):
            if hop == bad_hop:
                entity = rng.choice([p for p in self.people if p != entity])
            entity_next = self.kb[f"{entity}.{rel}"]
            segments.append(Segment(self.search_text(f"{entity}.{rel}"), True))
            segments.append(Segment(self.observation_text(entity_next), False))
            entity = entity_next
        segments.append(Segment(self.answer_text(entity), True))
        return segments

    # The surface of the four moves; the natural-language interface overrides only these and the parsers.
    def plan_text(self, relations: tuple[str, ...]) -> str:
        return f"p:{'.'.join(relations)}\n"

    def search_text(self, key: str) -> str:
        return f"s[{key}]"

    def observation_text(self, value: str) -> str:
        return f"\no:{value}\n"

    def answer_text(self, value: str) -> str:
        return f"a[{value}]"

    # ---------------------------------------------------------------- reward
    def score(self, problem: Problem, transcript: list[Segment]) -> Score:
        model_turns = [s.text for s in transcript if s.by_model]
        if not model_turns:
            return Score(0.0, False, None)
        match = self.action_pattern.search(model_turns[-1])
        if match is None or match.group(1) != self.answer_kind:
            return Score(0.0, False, None)
        answer = match.group(2).strip().lower()
        correct = answer == problem.answer
        return Score(1.0 if correct else 0.0, correct, answer)

    def turn_is_well_formed(self, text: str, first: bool) -> bool:
        """A turn is its action (and, the first, the plan before it) and nothing else but whitespace."""
        rest = text.lstrip()
        if first:
            plan = self.plan_pattern.match(rest)
            if plan is None:
                return False
            rest = rest[plan.end():]
        action = self.action_pattern.search(rest)
        return action is not None and not rest[: action.start()].strip()

    def format_check(self, problem: Problem, transcript: list[Segment]) -> Format:
        """Alg. 3 of Search-P1: valid = every turn well formed, an answer and at least one search; partial = an
        answer and at least one observation, but a malformed turn (or no plan); invalid otherwise."""
        turns = [s.text for s in transcript if s.by_model]
        has_answer = self.score(problem, transcript).answer is not None
        actions = [self.action_pattern.search(t) for t in turns]
        has_search = any(a is not None and a.group(1) != self.answer_kind for a in actions)
        has_observation = any(not s.by_model for s in transcript)
        if has_answer and has_search and all(self.turn_is_well_formed(t, i == 0) for i, t in enumerate(turns)):
            return "valid"
        return "partial" if has_answer and has_observation else "invalid"

    def path_steps(self, problem: Problem, transcript: list[Segment]) -> tuple[list[str], list[str]]:
        text = self.model_text(transcript)
        plan = _PLAN.search(text)
        planned = [r for r in plan.group(1).split(".") if r] if plan else []
        return planned, [k.strip() for k in _SEARCHES.findall(text)]

    def executed_as_plan(self, problem: Problem, executed: list[str]) -> list[str]:
        """Each search as the plan hop it executes: ``bob.city`` is the hop ``city`` only when ``bob`` is the
        entity the chain of searches has reached (the question's start, then what each counted search returned);
        a search of any other entity executes no hop and stays its key, which no plan holds. Matching the
        relation alone paid Search-P1's self-consistency in full for well-formed searches of the wrong entity
        (S_self 1.2 on a wrong answer), and learning on this task slowed under Search-P1."""
        entity, out = problem.meta["start"], []
        for key in executed:
            subject, _, relation = key.strip().lower().rpartition(".")
            if subject == entity and f"{subject}.{relation}" in self.kb:
                out.append(relation)
                entity = self.kb[f"{subject}.{relation}"]
            else:
                out.append(key)
        return out

    # ---------------------------------------------------------------- critiques
    def critique_demonstration(self, problem: Problem, transcript: list[Segment], correct: bool,
                               verify: bool = False) -> list[Segment]:
        """With ``verify``, the critic re-walks the chain before its verdict: for each search, the entity the
        chain has reached (the question's start, then each observation), the entity searched, and a mark right
        after the pair, ``+`` when the two are the same name, ``-`` when not; then the answer against the last
        observation the same way; then the verdict: ``tad=tad+ fin=lap- dal=dal+ no`` (GC-RL's cold-start
        critiques "verify step by step", arXiv 2602.22765 App. A). The mark makes each comparison local (the
        name just written against the one before ``=``) and the verdict a look-up of any ``-``. The tiny critic
        judged at chance without the marks (GC-RL pilot 3) and with them on 20% flipped verdicts (pilot 4); with
        them and clean verdicts it judges at balanced 0.82-0.83 (pilots 5-6, docs/benchmarks.md).
        ``correct`` is the verdict to teach (it may be flipped)."""
        if not verify:
            return super().critique_demonstration(problem, transcript, correct)
        reached, pairs = problem.meta["start"], []
        for segment in transcript:
            if segment.by_model:
                for key in _SEARCHES.findall(segment.text):
                    pairs.append((reached, key.strip().rpartition(".")[0]))
                answer = self.action_pattern.search(segment.text)
                if answer is not None and answer.group(1) == self.answer_kind:
                    pairs.append((reached, answer.group(2).strip()))
            elif segment.text.strip().startswith("o:"):
                reached = segment.text.strip()[2:]
        checks = [f"{a}={b}{'+' if a == b else '-'}" for a, b in pairs]
        return [Segment(" ".join(checks + ["yes" if correct else "no"]), True)]

    @staticmethod
    def alphabet() -> str:
        return "abcdefghijklmnopqrstuvwxyz.:[]\n"
